"""The shared building blocks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.layers import (
    CeilModeMaxPooling2D,
    DropPath,
    GridAveragePooling2D,
    conv_bn_act,
    make_divisible,
    squeeze_excite,
)


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


# Pooling. References: PyTorch's formulas, written out in numpy.

def _adaptive_bins(n, grid):
    """torch adaptive_avg_pool2d: cell i averages [floor(i * n / g), ceil((i + 1) * n / g))."""
    return [(i * n // grid, -(-(i + 1) * n // grid)) for i in range(grid)]


def _overlapping_bins(n, grid):
    """torch avg_pool2d(kernel n - (g - 1) * (n // g), stride n // g); adaptive below g."""
    if n < grid:
        return _adaptive_bins(n, grid)
    stride = n // grid
    return [(i * stride, i * stride + n - (grid - 1) * stride) for i in range(grid)]


def _grid_pool(x, row_bins, col_bins):
    """Averages each (row bin, column bin) window of a (batch, H, W, C) array."""
    return np.stack([np.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in col_bins], 1)
                     for r0, r1 in row_bins], 1)


def _torch_ceil_max_pool(x, pool_size, stride):
    """torch max_pool2d(pool_size, stride, ceil_mode=True) on a (batch, H, W, C) array."""
    def windows(n):
        out = -(-(n - pool_size) // stride) + 1
        if (out - 1) * stride >= n:  # the last window must start inside the input
            out -= 1
        return [(i * stride, min(i * stride + pool_size, n)) for i in range(out)]

    return np.stack([np.stack([x[:, r0:r1, c0:c1].max(axis=(1, 2)) for c0, c1 in windows(x.shape[2])], 1)
                     for r0, r1 in windows(x.shape[1])], 1)


@pytest.mark.parametrize("shape", [(14, 14), (4, 4), (2, 3), (7, 9), (17, 5), (1, 1)])
def test_adaptive_grid_pooling_is_torch_adaptive_avg_pool(shape, rng):
    x = rng.normal(size=(2, *shape, 3)).astype("float32")
    expected = _grid_pool(x, _adaptive_bins(shape[0], 4), _adaptive_bins(shape[1], 4))
    np.testing.assert_allclose(GridAveragePooling2D(4)(x), expected, atol=1e-5)


@pytest.mark.parametrize(
    "grid, shape",
    [(4, (14, 14)), (5, (17, 17)), (5, (23, 30)), (4, (4, 4)), (5, (5, 9)),  # every axis >= grid
     (5, (1, 1)), (5, (3, 3)), (5, (2, 4)), (5, (17, 3)), (4, (2, 9))],  # some axis < grid
)
def test_overlapping_grid_pooling_is_torch_avg_pool_with_adaptive_fallback(grid, shape, rng):
    x = rng.normal(size=(2, *shape, 3)).astype("float32")
    expected = _grid_pool(x, _overlapping_bins(shape[0], grid), _overlapping_bins(shape[1], grid))
    out = GridAveragePooling2D(grid, windows="overlapping")(x)
    assert tuple(out.shape) == (2, grid, grid, 3)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("grid, size", [(4, 14), (5, 17)])
def test_overlapping_grid_pooling_is_the_5x5_stride_3_pool_of_the_inception_aux_heads(grid, size, rng):
    """GoogLeNet's paper aux pool at 14x14 (224 px), torchvision's InceptionAux at 17x17 (299 px)."""
    x = rng.normal(size=(2, size, size, 3)).astype("float32")
    expected = keras.layers.AveragePooling2D(5, 3)(x)
    np.testing.assert_allclose(GridAveragePooling2D(grid, windows="overlapping")(x), expected, atol=1e-6)
    # A grid-sized map passes through unchanged.
    small = rng.normal(size=(1, grid, grid, 3)).astype("float32")
    np.testing.assert_allclose(GridAveragePooling2D(grid, windows="overlapping")(small), small, atol=1e-6)


@pytest.mark.parametrize("windows", ["adaptive", "overlapping"])
def test_grid_pooling_works_on_free_sizes_in_a_graph(windows, rng):
    layer = GridAveragePooling2D(4, windows=windows)
    graph = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 2), "float32")])
    for shape in ((14, 14), (3, 6), (2, 2)):
        x = rng.normal(size=(1, *shape, 2)).astype("float32")
        np.testing.assert_allclose(graph(x), layer(x), atol=1e-6)
    inputs = keras.Input((None, None, 2))
    assert tuple(layer(inputs).shape) == (None, 4, 4, 2)
    assert layer.compute_output_shape((None, None, 7, 2)) == (None, 4, 4, 2)


@pytest.mark.parametrize("pool_size, strides", [(3, 2), (2, 2), (3, 1), (3, 3)])
@pytest.mark.parametrize("height, width", [(13, 14), (27, 54), (3, 4), (7, 7)])
def test_ceil_mode_max_pool_is_torch_ceil_mode(pool_size, strides, height, width, rng):
    x = rng.normal(size=(2, height, width, 4)).astype("float32")  # negative values too
    expected = _torch_ceil_max_pool(x, pool_size, strides)
    pool = CeilModeMaxPooling2D(pool_size, strides)
    np.testing.assert_array_equal(pool(x), expected)
    assert pool.compute_output_shape((None, height, None, 4)) == (None, expected.shape[1], None, 4)
    assert pool.compute_output_shape((2, height, width, 4)) == expected.shape


def test_ceil_mode_max_pool_keeps_the_dtype_and_defaults_strides_to_pool_size(rng):
    assert CeilModeMaxPooling2D(2).strides == 2
    x = rng.normal(size=(1, 5, 5, 2)).astype("float16")
    out = CeilModeMaxPooling2D(3, 2, dtype="float16")(x)
    assert out.dtype == "float16" and np.all(np.isfinite(keras.ops.convert_to_numpy(out)))
    np.testing.assert_array_equal(out, _torch_ceil_max_pool(x, 3, 2))


@pytest.mark.parametrize(
    "layer",
    [GridAveragePooling2D(3, windows="overlapping", name="p"), GridAveragePooling2D(4, name="q"),
     CeilModeMaxPooling2D(3, 2, name="r")],
    ids=["grid-overlapping", "grid-adaptive", "ceil-max"],
)
def test_pooling_layers_serialize(layer, rng, tmp_path):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "pool.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = rng.normal(size=(1, 11, 9, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.get_layer(layer.name).get_config() == config


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: GridAveragePooling2D(0), "grid_size"),
        (lambda: GridAveragePooling2D(2.5), "grid_size"),
        (lambda: GridAveragePooling2D(True), "grid_size"),
        (lambda: GridAveragePooling2D(4, windows="max"), "windows"),
        (lambda: CeilModeMaxPooling2D(0), "pool_size"),
        (lambda: CeilModeMaxPooling2D("3"), "pool_size"),
        (lambda: CeilModeMaxPooling2D(3, 0), "strides"),
        (lambda: CeilModeMaxPooling2D(2, 3), "strides"),
    ],
)
def test_pooling_layers_reject_bad_arguments(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*{argument}="):
        make()
