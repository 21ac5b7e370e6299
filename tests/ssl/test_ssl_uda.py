"""UDA: the consistency loss against a hand computation, TSA, the `UDA` model's step, and
Mirrored (2 logical CPUs) == one device with gradient clipping.

`python tests/ssl/test_ssl_uda.py mirrored` runs the 2-logical-CPU scenario in a fresh process
(logical devices must be configured before TensorFlow initialises its devices).
"""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_scenario

from keras_cnn.distribute import train_step as train_step_module
from keras_cnn.ssl.uda import UDA, tsa_mask, tsa_threshold, uda_consistency_loss


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _hand_uda(weak, strong, temperature, threshold):
    target = _softmax(weak / temperature)
    kl = (target * (np.log(target) - np.log(_softmax(strong)))).sum(-1)
    mask = (_softmax(weak).max(-1) > threshold).astype("float32") if threshold is not None else np.ones(len(weak))
    return kl * mask, mask


WEAK = np.array([[4.0, 0.0, 0.0], [0.5, 0.2, 0.0], [0.0, 0.0, 6.0]], "float32")
STRONG = np.array([[1.0, 0.5, -1.0], [0.0, 1.0, 0.0], [2.0, 0.0, 1.0]], "float32")


@pytest.mark.parametrize("temperature,threshold", [(0.4, 0.8), (1.0, None), (0.5, 0.0)])
def test_consistency_loss_matches_hand_computation(temperature, threshold):
    loss, mask = uda_consistency_loss(WEAK, STRONG, temperature=temperature, threshold=threshold)
    want_loss, want_mask = _hand_uda(WEAK, STRONG, temperature, threshold)
    np.testing.assert_allclose(np.asarray(mask), want_mask)
    np.testing.assert_allclose(np.asarray(loss), want_loss, rtol=1e-5, atol=1e-6)


def test_mpl_mask_rule_thresholds_the_sharpened_distribution_inclusively():
    # Raw max probability 0.5, sharpened at T=0.5 to 2/3: the UDA release (raw, >) masks it,
    # the MPL release (sharpened, >=) keeps it, also at exact equality.
    weak = np.log(np.array([[0.5, 0.25, 0.25]], "float32"))
    strong = np.zeros((1, 3), "float32")
    sharpened = _softmax(weak / 0.5).max()
    assert sharpened == pytest.approx(2 / 3, abs=1e-6)
    _, uda_mask = uda_consistency_loss(weak, strong, temperature=0.5, threshold=0.6, mask_rule="uda")
    _, mpl_mask = uda_consistency_loss(weak, strong, temperature=0.5, threshold=0.6, mask_rule="mpl")
    assert float(uda_mask[0]) == 0.0 and float(mpl_mask[0]) == 1.0
    _, at_equality = uda_consistency_loss(weak, strong, temperature=0.5, threshold=float(sharpened), mask_rule="mpl")
    _, raw_equality = uda_consistency_loss(weak, strong, temperature=1.0, threshold=0.5, mask_rule="uda")
    assert float(at_equality[0]) == 1.0 and float(raw_equality[0]) == 0.0
    with pytest.raises(ValueError, match="mask_rule='fixmatch'"):
        uda_consistency_loss(weak, strong, mask_rule="fixmatch")


def test_threshold_masks_the_unconfident_example_and_sharpening_changes_the_target():
    loss, mask = uda_consistency_loss(WEAK, STRONG, temperature=0.4, threshold=0.8)
    # Row 1 (probabilities ~0.40/0.30/0.30) is under 0.8: masked, contributes 0.
    np.testing.assert_array_equal(np.asarray(mask), [1.0, 0.0, 1.0])
    assert float(loss[1]) == 0.0
    sharp, _ = uda_consistency_loss(WEAK, STRONG, temperature=0.4, threshold=None)
    flat, _ = uda_consistency_loss(WEAK, STRONG, temperature=1.0, threshold=None)
    assert not np.allclose(np.asarray(sharp), np.asarray(flat))


def test_sample_weight_multiplies_and_mixed_precision_logits_give_float32():
    weights = np.array([2.0, 1.0, 0.0], "float32")
    loss, _ = uda_consistency_loss(WEAK, STRONG, threshold=None, sample_weight=weights)
    base, _ = uda_consistency_loss(WEAK, STRONG, threshold=None)
    np.testing.assert_allclose(np.asarray(loss), np.asarray(base) * weights, rtol=1e-6)
    half, _ = uda_consistency_loss(WEAK.astype("float16"), STRONG.astype("float16"), threshold=None)
    assert half.dtype == tf.float32


def test_gradient_flows_only_through_the_strong_branch():
    weak, strong = tf.Variable(WEAK), tf.Variable(STRONG)
    with tf.GradientTape() as tape:
        loss, _ = uda_consistency_loss(weak, strong, threshold=None)
        total = tf.reduce_sum(loss)
    grad_weak, grad_strong = tape.gradient(total, [weak, strong])
    assert grad_weak is None or not np.any(np.asarray(grad_weak))
    # d KL / d z_strong = softmax(z_strong) - target
    want = _softmax(STRONG) - _softmax(WEAK / 0.4)
    np.testing.assert_allclose(np.asarray(grad_strong), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"temperature": -1.0}, {"threshold": 1.5},
                                    {"threshold": "high"}])
def test_consistency_loss_rejects_bad_arguments(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        uda_consistency_loss(WEAK, STRONG, **kwargs)


@pytest.mark.parametrize("schedule,step,want", [
    ("linear", 0, 0.1), ("linear", 50, 0.55), ("linear", 100, 1.0), ("linear", 500, 1.0),
    ("log", 0, 0.1), ("log", 50, (1 - np.exp(-2.5)) * 0.9 + 0.1), ("log", 100, (1 - np.exp(-5)) * 0.9 + 0.1),
    ("exp", 0, np.exp(-5) * 0.9 + 0.1), ("exp", 50, np.exp(-2.5) * 0.9 + 0.1), ("exp", 100, 1.0),
])
def test_tsa_threshold_values(schedule, step, want):
    got = float(tsa_threshold(step, 100, 10, schedule))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_tsa_threshold_accepts_the_optimizer_step_and_rejects_bad_arguments():
    assert np.isclose(float(tsa_threshold(tf.Variable(25, dtype="int64"), 100, 2)), 0.625)
    for kwargs, name in [({"total_steps": 0}, "total_steps"), ({"num_classes": 0}, "num_classes"),
                         ({"schedule": "cosine"}, "schedule")]:
        args = {"step": 0, "total_steps": 10, "num_classes": 10, **kwargs}
        with pytest.raises(ValueError, match=name):
            tsa_threshold(**args)


def test_tsa_mask_drops_confident_correct_examples():
    logits = np.log(np.array([[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]], "float32"))
    labels = np.array([0, 0, 2])
    # correct-class probabilities 0.9, 0.3, 0.6
    np.testing.assert_array_equal(np.asarray(tsa_mask(logits, labels, 0.5)), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(tsa_mask(logits, labels, 0.95)), [1, 1, 1])
    one_hot = np.eye(3, dtype="float32")[labels]
    np.testing.assert_array_equal(np.asarray(tsa_mask(logits, one_hot, 0.7)), [0, 1, 1])


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x_l = rng.normal(size=(6, 4)).astype("float32") * 3
    y_l = rng.integers(0, 3, 6)
    x_w = rng.normal(size=(8, 4)).astype("float32") * 3
    x_s = x_w + rng.normal(size=(8, 4)).astype("float32")
    return (x_l, y_l), (x_w, x_s)


def test_uda_step_loss_equals_hand_computation_and_updates_the_model():
    model = _mlp()
    uda = UDA(model, unsup_weight=2.0, temperature=0.5, threshold=0.6, tsa="linear", total_steps=4)
    uda.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
    (x_l, y_l), (x_w, x_s) = _batch()
    z_l, z_w, z_s = (np.asarray(model(x)) for x in (x_l, x_w, x_s))
    before = [np.array(w) for w in model.trainable_weights]

    eta = 1 / 3  # step 0 of the linear schedule
    p_correct = _softmax(z_l)[np.arange(6), y_l]
    keep = (p_correct <= eta).astype("float32")
    ce = -np.log(p_correct)
    sup = (ce * keep).sum() / max(keep.sum(), 1)
    kl, mask = _hand_uda(z_w, z_s, 0.5, 0.6)
    want = sup + 2.0 * kl.mean()

    logs = uda.train_step(((x_l, y_l), (x_w, x_s)))
    np.testing.assert_allclose(float(logs["loss"]), want, rtol=1e-5)
    np.testing.assert_allclose(float(logs["sup_loss"]), sup, rtol=1e-5)
    np.testing.assert_allclose(float(logs["mask_rate"]), mask.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(logs["tsa_rate"]), keep.mean(), rtol=1e-6)
    assert "accuracy" in logs
    assert all(not np.allclose(a, np.array(b)) for a, b in zip(before, model.trainable_weights))


def test_uda_fits_a_zipped_dataset_and_evaluates_the_wrapped_model():
    uda = UDA(_mlp(), threshold=None)
    uda.compile(optimizer="adam", metrics=["accuracy"])
    (x_l, y_l), (x_w, x_s) = _batch()
    data = tf.data.Dataset.zip((
        tf.data.Dataset.from_tensor_slices((x_l, y_l)).batch(3).repeat(),
        tf.data.Dataset.from_tensor_slices((x_w, x_s)).batch(4).repeat(),
    ))
    history = uda.fit(data, steps_per_epoch=2, epochs=2, verbose=0, validation_data=(x_l, y_l))
    assert {"loss", "sup_loss", "unsup_loss", "mask_rate", "accuracy", "val_loss"} <= set(history.history)
    assert "val_sup_loss" not in history.history
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("kwargs,name", [
    ({"unsup_weight": -1.0}, "unsup_weight"), ({"tsa": "cosine", "total_steps": 5}, "tsa"),
    ({"tsa": "linear"}, "total_steps"), ({"threshold": 2.0}, "threshold"),
])
def test_uda_model_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        UDA(_mlp(), **kwargs)


# --- Mirrored(2 logical CPUs) == one device, with global_clipnorm ------------------------


def _mirrored_scenario():
    """Run in a fresh process (see the module docstring)."""
    (x_l, y_l), (x_w, x_s) = _batch(seed=5)
    x_l, y_l = x_l[:4], y_l[:4]  # 4 labeled and 8 unlabeled examples: 2 and 4 per replica
    dataset = tf.data.Dataset.from_tensors(((x_l, y_l), (x_w, x_s))).repeat(3)

    def train(strategy, fix=True):
        train_step_module.CROSS_REPLICA_CLIPPING = fix
        with strategy.scope():
            model = _mlp(seed=0)
            uda = UDA(model, unsup_weight=2.0, temperature=0.5, threshold=None, tsa="linear", total_steps=6)
            uda.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9, global_clipnorm=0.3))
        logs = uda.fit(dataset, epochs=1, verbose=0).history
        return logs, [w.numpy() for w in model.weights]

    one_logs, one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two_logs, two = train(mirrored)
    _, keras_clipping = train(mirrored, fix=False)
    return {
        "replicas": mirrored.num_replicas_in_sync,
        "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
        "keras_clipping_diff": max(float(np.abs(a - b).max()) for a, b in zip(one, keras_clipping)),
        "loss": [one_logs["loss"][0], two_logs["loss"][0]],
        "tsa_rate": [one_logs["tsa_rate"][0], two_logs["tsa_rate"][0]],
    }


def test_mirrored_two_replicas_equal_one_device_with_clipping():
    result = run_scenario(__file__, "mirrored")
    assert result["replicas"] == 2
    assert result["max_weight_diff"] < 1e-5
    np.testing.assert_allclose(*result["loss"], rtol=1e-5)
    np.testing.assert_allclose(*result["tsa_rate"], rtol=1e-6)
    # The clipping is active (the gradient norm exceeds global_clipnorm): plain Keras, which
    # clips each replica's share, gives other weights.
    assert result["keras_clipping_diff"] > 1e-3


if __name__ == "__main__":
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    print("RESULT " + json.dumps({"mirrored": _mirrored_scenario}[sys.argv[1]]()), flush=True)
