"""Pseudo-labels: alpha ramp, offline labeling, class balancing and the joint-training model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.ssl.pseudo_labels import PseudoLabelModel, alpha_ramp, balance_classes, pseudo_label


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("step,want", [(0, 0.0), (99, 0.0), (100, 0.0), (350, 1.5), (600, 3.0), (10_000, 3.0)])
def test_alpha_ramp_values(step, want):
    np.testing.assert_allclose(float(alpha_ramp(step, t1=100, t2=600, alpha_f=3.0)), want, rtol=1e-6)


def test_alpha_ramp_jump_tensor_step_and_bad_arguments():
    assert float(alpha_ramp(4, t1=5, t2=5, alpha_f=2.0)) == 0.0
    assert float(alpha_ramp(tf.Variable(5, dtype="int64"), t1=5, t2=5, alpha_f=2.0)) == 2.0
    for kwargs, name in [({"t1": -1}, "t1"), ({"t2": 1}, "t2"), ({"alpha_f": -0.5}, "alpha_f")]:
        with pytest.raises(ValueError, match=name):
            alpha_ramp(0, **{"t1": 2, "t2": 4, "alpha_f": 1.0, **kwargs})


class _FixedLogits(keras.layers.Layer):
    """Returns the logits stored for each example id (input[:, 0]); records `training`."""

    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = tf.constant(table, "float32")
        self.training_flags = []

    def call(self, x, training=None):
        self.training_flags.append(training)
        return tf.gather(self.table, tf.cast(x[:, 0], "int32"))


TABLE = np.log(np.array([
    [0.90, 0.05, 0.05], [0.20, 0.70, 0.10], [0.34, 0.33, 0.33], [0.05, 0.05, 0.90], [0.10, 0.85, 0.05],
], "float32"))


def _teacher():
    inputs = keras.Input((1,))
    layer = _FixedLogits(TABLE)
    return keras.Model(inputs, layer(inputs)), layer


IDS = np.arange(5, dtype="float32")[:, None]


def test_hard_pseudo_labels_with_and_without_threshold():
    teacher, layer = _teacher()
    out = pseudo_label(teacher, IDS, batch_size=2, verbose=0)
    np.testing.assert_array_equal(out.labels, [0, 1, 0, 2, 1])
    np.testing.assert_allclose(out.confidence, [0.90, 0.70, 0.34, 0.90, 0.85], rtol=1e-5)
    np.testing.assert_array_equal(out.indices, np.arange(5))
    assert out.x is None
    kept = pseudo_label(teacher, IDS, threshold=0.8, return_inputs=True, verbose=0)
    np.testing.assert_array_equal(kept.indices, [0, 3, 4])
    np.testing.assert_array_equal(kept.labels, [0, 2, 1])
    np.testing.assert_array_equal(kept.x[:, 0], [0, 3, 4])
    # The teacher predicts on clean inputs: inference mode only.
    assert layer.training_flags and not any(layer.training_flags)


def test_soft_pseudo_labels_from_a_dataset_and_from_probabilities():
    teacher, _ = _teacher()
    dataset = tf.data.Dataset.from_tensor_slices((IDS, np.zeros(5)))  # labels are ignored
    out = pseudo_label(teacher, dataset, mode="soft", threshold=0.5, batch_size=2, verbose=0)
    np.testing.assert_array_equal(out.indices, [0, 1, 3, 4])
    np.testing.assert_allclose(out.labels, np.exp(TABLE)[[0, 1, 3, 4]], rtol=1e-5)
    probs_model = keras.Sequential([keras.Input((3,)), keras.layers.Softmax()])
    direct = pseudo_label(probs_model, TABLE, mode="soft", from_logits=False, verbose=0)
    np.testing.assert_allclose(direct.labels, np.exp(TABLE), rtol=1e-5)


def test_pseudo_label_shows_a_progress_bar(capsys):
    teacher, _ = _teacher()
    pseudo_label(teacher, IDS, batch_size=2, verbose=1)
    assert "5/5" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs,name", [({"mode": "sharp"}, "mode"), ({"threshold": 1.2}, "threshold"),
                                         ({"batch_size": 0}, "batch_size"), ({"verbose": 3}, "verbose")])
def test_pseudo_label_rejects_bad_arguments(kwargs, name):
    teacher, _ = _teacher()
    with pytest.raises(ValueError, match=name):
        pseudo_label(teacher, IDS, **kwargs)


LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 0])
CONF = np.array([0.9, 0.8, 0.2, 0.7, 0.95, 0.6, 0.5, 0.55, 0.1, 0.85])


def test_balance_classes_keeps_the_most_confident_and_duplicates_the_rest():
    idx = balance_classes(LABELS, CONF, per_class=3, threshold=0.3, seed=0)
    counts = np.bincount(LABELS[idx], minlength=3)
    np.testing.assert_array_equal(counts, [3, 3, 3])
    # Class 0 has 4 confident examples (0, 1, 3, 9): the 3 most confident are 0, 9, 1.
    assert sorted(idx[LABELS[idx] == 0]) == [0, 1, 9]
    # Class 1 has 2 (4, 5): both, and one of them twice.
    class1 = sorted(idx[LABELS[idx] == 1])
    assert set(class1) == {4, 5} and len(class1) == 3
    # Class 2 keeps 6 and 7, never 8 (under the threshold).
    assert 8 not in idx and set(idx[LABELS[idx] == 2]) == {6, 7}
    # Deterministic per seed.
    np.testing.assert_array_equal(idx, balance_classes(LABELS, CONF, per_class=3, threshold=0.3, seed=0))


def test_balance_classes_default_per_class_soft_labels_and_seeds():
    probs = np.eye(3)[LABELS] * 0.9 + 0.03
    idx = balance_classes(probs, CONF, threshold=0.3)
    np.testing.assert_array_equal(np.bincount(LABELS[idx], minlength=3), [4, 4, 4])  # largest class: 4
    big = np.repeat(np.arange(2), [3, 50])
    draws = {tuple(balance_classes(big, np.ones(53), per_class=50, seed=s)) for s in range(6)}
    assert len(draws) > 1  # the remainder of the duplicates depends on the seed
    assert len(balance_classes(LABELS, CONF, threshold=1.0)) == 0


@pytest.mark.parametrize("kwargs,name", [({"per_class": 0}, "per_class"), ({"threshold": -0.1}, "threshold"),
                                         ({"seed": -1}, "seed"), ({"confidence": np.ones(3)}, "confidence")])
def test_balance_classes_rejects_bad_arguments(kwargs, name):
    args = {"labels_or_probs": LABELS, "confidence": CONF, **kwargs}
    with pytest.raises(ValueError, match=name):
        balance_classes(**args)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    frozen = keras.layers.Dense(6, activation="tanh", name="frozen")
    frozen.trainable = False
    return keras.Sequential([keras.Input((4,)), frozen, keras.layers.Dense(6, activation="tanh"),
                             keras.layers.Dense(3)])


@pytest.mark.parametrize("mode,threshold", [("hard", 0.62), ("soft", None), ("soft", 0.62)])
def test_pseudo_label_model_step_loss_and_changed_weights(mode, threshold):
    model = _model()
    plm = PseudoLabelModel(model, t1=0, t2=4, alpha_f=3.0, mode=mode, threshold=threshold)
    plm.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x_l, y_l = rng.normal(size=(5, 4)).astype("float32"), rng.integers(0, 3, 5)
    x_u = (rng.normal(size=(8, 4)) * 3).astype("float32")
    plm.optimizer.iterations.assign(1)  # alpha(1) = 0.75
    trainable = [np.array(v) for v in model.trainable_variables]
    frozen = [np.array(v) for v in model.non_trainable_variables]

    p_l, p_u = _softmax(np.asarray(model(x_l))), _softmax(np.asarray(model(x_u)))
    labeled = -np.log(p_l[np.arange(5), y_l]).mean()
    confidence, targets = p_u.max(-1), p_u.argmax(-1)
    weights = confidence if mode == "soft" else np.ones(8)
    if threshold is not None:
        weights = weights * (confidence >= threshold)
    assert 0 < (weights > 0).sum() < 8 or threshold is None
    pseudo = (-np.log(p_u[np.arange(8), targets]) * weights).sum() / 8
    want = labeled + 0.75 * pseudo

    logs = plm.train_step(((x_l, y_l), x_u))
    np.testing.assert_allclose(float(logs["loss"]), want, rtol=1e-5)
    np.testing.assert_allclose(float(logs["alpha"]), 0.75)
    np.testing.assert_allclose(float(logs["pseudo_loss"]), pseudo, rtol=1e-5)
    assert all(not np.allclose(a, np.array(b)) for a, b in zip(trainable, model.trainable_variables))
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(frozen, model.non_trainable_variables))


def test_pseudo_label_model_before_t1_is_supervised_training():
    # alpha(0) = 0: the step equals a supervised step on the labeled batch.
    rng = np.random.default_rng(2)
    x_l, y_l = rng.normal(size=(5, 4)).astype("float32"), rng.integers(0, 3, 5)
    x_u = rng.normal(size=(8, 4)).astype("float32")
    plm = PseudoLabelModel(_model(), t1=10, t2=20, alpha_f=3.0)
    plm.compile(optimizer=keras.optimizers.SGD(0.5))
    plm.train_step(((x_l, y_l), (x_u,)))
    reference = _model()
    reference.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    reference.train_on_batch(x_l, y_l)
    for a, b in zip(plm.model.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)


def test_pseudo_label_model_fits_and_rejects_bad_arguments():
    rng = np.random.default_rng(3)
    labeled = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(8, 4)).astype("float32"), rng.integers(0, 3, 8))).batch(4).repeat()
    unlabeled = tf.data.Dataset.from_tensor_slices(rng.normal(size=(16, 4)).astype("float32")).batch(8).repeat()
    plm = PseudoLabelModel(_model(), t1=1, t2=3, alpha_f=1.0, threshold=0.5)
    plm.compile(optimizer="adam", metrics=["accuracy"])
    history = plm.fit(tf.data.Dataset.zip((labeled, unlabeled)), steps_per_epoch=2, epochs=2, verbose=0)
    assert history.history["alpha"][-1] > 0
    assert {"loss", "labeled_loss", "pseudo_loss", "pseudo_rate", "accuracy"} <= set(history.history)
    for kwargs, name in [({"mode": "x"}, "mode"), ({"t1": 5, "t2": 1}, "t2"), ({"threshold": 3}, "threshold")]:
        with pytest.raises(ValueError, match=name):
            PseudoLabelModel(_model(), **kwargs)
