"""keras_cnn.layers.BatchNormalization: Keras' layer, with a fused training step on TensorFlow."""

import unittest.mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.layers import BatchNormalization, tf_kernels

CASES = [
    ("float32", (4, 5, 6, 7), {}, 2e-5),
    ("float32", (1, 1, 1, 3), {}, 2e-5),  # one value per channel: zero biased variance
    ("float32", (2, 3, 3, 3, 4), {}, 2e-5),  # NDHWC
    ("float32", (4, 5, 6, 7), {"center": False, "scale": False}, 2e-5),
    ("mixed_bfloat16", (4, 5, 6, 7), {}, 2e-2),
    ("mixed_float16", (4, 5, 6, 7), {}, 2e-3),
]


def _step(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    return y, tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize("policy, shape, kwargs, tol", CASES)
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_fused_training_step_equals_keras_layer(policy, shape, kwargs, tol, graph):
    """Same outputs, gradients and moving statistics as keras.layers.BatchNormalization,
    and the fused kernel really ran (not the fallback)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, shape), keras.mixed_precision.Policy(policy).compute_dtype)
    upstream = tf.constant(rng.normal(size=shape), "float32")
    gamma, beta = rng.normal(size=(2, shape[-1])).astype("float32")
    results = []
    for cls in (keras.layers.BatchNormalization, BatchNormalization):
        layer = cls(momentum=0.9, epsilon=1e-3, dtype=policy, **kwargs)
        layer.build(shape)
        if layer.scale:
            layer.gamma.assign(gamma)
            layer.beta.assign(beta)
        step = tf.function(_step) if graph else _step
        with unittest.mock.patch.object(tf_kernels, "fused_batch_norm_training",
                                        wraps=tf_kernels.fused_batch_norm_training) as fused:
            for _ in range(2):  # the second step starts from updated moving statistics
                y, grads = step(layer, x, upstream)
        assert fused.called == (cls is BatchNormalization)
        assert y.dtype == x.dtype
        results.append((y, grads, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y_keras, g_keras, mean_keras, var_keras), (y_fused, g_fused, mean_fused, var_fused) = results
    np.testing.assert_allclose(np.float32(y_fused), np.float32(y_keras), atol=tol * 4, rtol=tol)
    for a, b in zip(g_fused, g_keras):
        a, b = np.float32(a), np.float32(b)
        assert np.abs(a - b).max() <= tol * np.abs(b).max() + 1e-6
    np.testing.assert_allclose(mean_fused, mean_keras, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var_fused, var_keras, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["inference", "frozen", "mask", "channels_first", "renorm", "rank3"])
def test_other_cases_are_keras_own_computation(case):
    shape = {"rank3": (4, 6, 5), "mask": (4, 6, 5)}.get(case, (4, 3, 3, 5))
    kwargs = {"channels_first": {"axis": 1}, "renorm": {"renorm": True}}.get(case, {})
    x = tf.constant(np.random.default_rng(1).normal(size=shape), "float32")
    call = {"training": case != "inference"}
    if case == "mask":
        call["mask"] = tf.constant(np.arange(24).reshape(4, 6) % 5 != 0)
    layers = []
    for cls in (keras.layers.BatchNormalization, BatchNormalization):
        layer = cls(**kwargs)
        layer.trainable = case != "frozen"
        layers.append(layer)
    with unittest.mock.patch.object(tf_kernels, "fused_batch_norm_training") as fused:
        outputs = [layer(x, **call) for layer in layers]
    fused.assert_not_called()
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_saves_and_loads_with_safe_mode(tmp_path):
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, BatchNormalization(momentum=0.8, epsilon=1e-5, name="bn")(inputs))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.random.default_rng(2).normal(size=(8, 6, 6, 3)), np.zeros((8, 6, 6, 3)), epochs=1, verbose=0)
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.get_layer("bn")
    assert type(layer) is BatchNormalization and (layer.momentum, layer.epsilon) == (0.8, 1e-5)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a, b)

