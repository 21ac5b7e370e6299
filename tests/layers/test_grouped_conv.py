"""keras_cnn.layers.GroupedConv2D: Keras' Conv2D, with TensorFlow's own grouped kernel."""

import unittest.mock

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnn
from keras_cnn.layers import GroupedConv2D, tf_kernels

CASES = [
    {"filters": 64, "kernel_size": 3, "groups": 32, "padding": "same"},
    {"filters": 12, "kernel_size": 3, "groups": 4, "strides": 2, "padding": "valid", "use_bias": False},
    {"filters": 8, "kernel_size": 3, "groups": 2, "dilation_rate": 2, "padding": "same"},
    {"filters": 16, "kernel_size": 1, "groups": 16},  # one channel per group
]


def _forward_backward(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.sin(y))
    return y, tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize("kwargs", CASES)
def test_equals_keras_conv_and_takes_the_direct_kernel(kwargs):
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 32 if kwargs["groups"] == 32 else 16)), "float32")
    reference, layer = keras.layers.Conv2D(**kwargs), GroupedConv2D(**kwargs)
    reference.build(x.shape)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    y_ref, g_ref = _forward_backward(reference, x)
    with unittest.mock.patch.object(tf_kernels, "grouped_conv2d", wraps=tf_kernels.grouped_conv2d) as direct:
        y, g = _forward_backward(layer, x)
    direct.assert_called()
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


def test_this_machine_has_the_grouped_kernel():
    # oneDNN (TensorFlow's default x86 CPU kernels) computes grouped convolutions; if this
    # fails, every grouped layer silently takes Keras' slow XLA path.
    assert tf_kernels.grouped_conv_supported()


def test_without_the_kernel_it_is_keras_own_path():
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 6, 6, 8)), "float32")
    layer = GroupedConv2D(8, 3, groups=4)
    with unittest.mock.patch.object(tf_kernels, "grouped_conv_supported", return_value=False), \
            unittest.mock.patch.object(tf_kernels, "grouped_conv2d") as direct:
        y = layer(x)
    direct.assert_not_called()
    reference = keras.layers.Conv2D(8, 3, groups=4)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, reference(x), rtol=1e-5, atol=1e-5)


def test_saves_and_loads_with_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 8))
    model = keras.Model(inputs, GroupedConv2D(16, 3, groups=4, name="conv")(inputs))
    path = tmp_path / "conv.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("conv")) is GroupedConv2D and loaded.get_layer("conv").groups == 4
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 8)).astype("float32")
    np.testing.assert_array_equal(model(x), loaded(x))


def test_lenet_sparse_c3_uses_it():
    # Registered models are checked by the registry-wide test; the sparse C3 is a flag.
    model = keras_cnn.create_model("lenet5", weights=None, classes=10, c3_table=True)
    grouped = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1]
    assert grouped and all(type(layer) is GroupedConv2D for layer in grouped)
