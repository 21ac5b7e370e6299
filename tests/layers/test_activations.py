"""keras_cnn.layers.activations: SiLU with a one-pass gradient on TensorFlow."""

import unittest.mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.layers import activations, tf_kernels


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-6), ("bfloat16", 1e-2), ("float16", 4e-3)])
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_silu_values_and_gradient_equal_keras(dtype, tol, graph):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0.0, 4.0, (3, 5, 7)), dtype)
    upstream = tf.constant(rng.normal(size=(3, 5, 7)), dtype)

    def step(fn, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, x, output_gradients=upstream)

    if graph:
        step = tf.function(step, autograph=False)
    y_ref, g_ref = step(keras.activations.silu, x)
    with unittest.mock.patch.object(tf_kernels, "_silu_gradient", wraps=tf_kernels._silu_gradient) as fused:
        y, g = step(activations.silu, x)
    fused.assert_called()
    assert y.dtype == g.dtype == x.dtype
    np.testing.assert_array_equal(np.float32(y), np.float32(y_ref))
    np.testing.assert_allclose(np.float32(g), np.float32(g_ref), rtol=tol, atol=tol)


def test_get_swaps_only_names_with_a_faster_version():
    assert activations.get("swish") is activations.silu and activations.get("silu") is activations.silu
    assert activations.get("relu") == "relu" and activations.get(None) is None
    assert activations.get(tf.nn.relu6) is tf.nn.relu6


def test_saves_and_loads_with_safe_mode(tmp_path):
    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.Conv2D(2, 1, activation=activations.get("swish"), name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Activation(activations.get("silu"), name="act")(outputs))
    path = tmp_path / "silu.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("conv").activation is loaded.get_layer("act").activation is activations.silu
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(model(x), loaded(x))
