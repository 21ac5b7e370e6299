"""The shared building blocks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.layers import DropPath, conv_bn_act, make_divisible, squeeze_excite


def test_drop_path_is_identity_at_inference_and_drops_whole_samples_in_training():
    layer = DropPath(0.5, seed=1)
    x = np.ones((256, 4, 4, 8), "float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    per_sample = y.reshape(256, -1)
    # Every sample is either dropped entirely or kept and scaled by 1 / keep.
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(1) == per_sample.max(1))
    assert 0.35 < (per_sample[:, 0] == 0).mean() < 0.65
    assert abs(y.mean() - 1.0) < 0.15  # expectation preserved


def test_drop_path_serializes_and_rejects_bad_rates():
    layer = DropPath(0.2, seed=3, name="dp")
    again = DropPath.from_config(layer.get_config())
    assert (again.rate, again.seed, again.name) == (0.2, 3, "dp")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, DropPath)
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match="rate"):
            DropPath(rate)


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("kernel", [3, 7])
def test_symmetric_padding_matches_pytorch_convention(size, kernel):
    """PyTorch pads k // 2 on every side; Keras "same" would pad more at the end."""
    inputs = keras.Input((size, size, 2))
    outputs = conv_bn_act(inputs, 3, kernel, strides=2, norm=False, activation=None, name="c")
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(1, size, size, 2)).astype("float32")
    kernel_value = model.get_layer("c_conv").kernel.numpy()
    pad = kernel // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = (size + 2 * pad - kernel) // 2 + 1
    expected = np.zeros((1, out, out, 3), "float32")
    for i in range(out):
        for j in range(out):
            patch = padded[0, 2 * i:2 * i + kernel, 2 * j:2 * j + kernel, :]
            expected[0, i, j] = np.tensordot(patch, kernel_value, axes=3)
    np.testing.assert_allclose(model(x), expected, atol=1e-5)


def test_conv_bn_act_names_and_zero_gamma():
    inputs = keras.Input((8, 8, 4))
    outputs = conv_bn_act(inputs, 6, 3, zero_gamma=True, name="blk")
    model = keras.Model(inputs, outputs)
    assert [layer.name for layer in model.layers[1:]] == ["blk_conv", "blk_bn", "blk_relu"]
    assert not model.get_layer("blk_conv").use_bias
    np.testing.assert_array_equal(model.get_layer("blk_bn").gamma.numpy(), 0.0)
    np.testing.assert_array_equal(model(np.ones((1, 8, 8, 4), "float32")), 0.0)
    with pytest.raises(ValueError, match="padding"):
        conv_bn_act(inputs, 6, 3, padding="reflect", name="bad")


def test_squeeze_excite_rescales_channels():
    inputs = keras.Input((5, 5, 32))
    model = keras.Model(inputs, squeeze_excite(inputs, 8, name="se"))
    assert model.get_layer("se_reduce").filters == 8
    assert model.get_layer("se_expand").filters == 32
    x = tf.random.stateless_normal((2, 5, 5, 32), seed=(0, 1))
    y = model(x)
    ratio = (y / x).numpy()
    # One gate in (0, 1) per sample and channel, constant over space.
    assert np.allclose(ratio, ratio[:, :1, :1, :], atol=1e-4)
    assert np.all((ratio > 0) & (ratio < 1))


@pytest.mark.parametrize(
    "value, divisor, round_limit, expected",
    [(4, 8, 0.0, 8), (16, 8, 0.0, 16), (37.5, 8, 0.9, 40), (10, 8, 0.9, 16), (128 / 16, 8, 0.0, 8)],
)
def test_make_divisible(value, divisor, round_limit, expected):
    assert make_divisible(value, divisor, round_limit=round_limit) == expected


@pytest.mark.parametrize("size", [1, 4, 5])
def test_local_response_norm_matches_the_torch_formula(size, rng, tmp_path):
    from keras_cnn.layers import LocalResponseNormalization

    x = rng.normal(size=(2, 3, 3, 7)).astype("float32")
    layer = LocalResponseNormalization(size, alpha=0.1, beta=0.75, k=2.0)
    expected = np.zeros_like(x)
    for c in range(x.shape[-1]):  # torch.nn.LocalResponseNorm: window [c - size//2, c + (size-1)//2]
        window = x[..., max(0, c - size // 2): c + (size - 1) // 2 + 1]
        expected[..., c] = x[..., c] / (2.0 + 0.1 / size * (window**2).sum(-1)) ** 0.75
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
    again = LocalResponseNormalization.from_config(layer.get_config())
    np.testing.assert_allclose(again(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="size"):
        LocalResponseNormalization(0)
