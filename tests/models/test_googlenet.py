"""GoogLeNet specifics: builder names, parameter parity, the inception cost example, the
ceil-mode pools and aux-head pooling in the model (the layers themselves: test_layers.py), the
auxiliary classifiers in training and under `model.fit`, SE-Inception."""

import math

import keras
import numpy as np
import pytest

import keras_cnn
from keras_cnn.models import googlenet
from keras_cnn.models.googlenet import INCEPTION_V1, inception_module
from keras_cnn.utils import count_macs, count_params

TORCHVISION_PARAMS = {True: 13_004_888, False: 6_624_904}  # torchvision googlenet, aux_logits=
# Caffe bvlc_googlenet: 6,990,272 weights + 8,280 biases without the auxiliary heads.
PAPER_PARAMS_WITHOUT_AUX = 6_998_552
TORCHVISION_GMACS = 1.498  # torchvision googlenet (aux_logits=False) "_ops"


def _module_output_channels():
    return [s.conv1x1 + s.conv3x3 + s.conv5x5 + s.pool_proj for s in INCEPTION_V1]


def _paper_aux_params(classes=1000):
    """Paper aux head on a C-channel map: biased 1x1 conv (128), FC 2048->1024, FC 1024->classes."""
    heads = [s for s in INCEPTION_V1 if s.aux]
    channels = [c for s, c in zip(INCEPTION_V1, _module_output_channels()) if s.aux]
    assert [s.name for s in heads] == ["4a", "4d"]
    fcs = (4 * 4 * 128 * 1024 + 1024) + (1024 * classes + classes)
    return sum(c * 128 + 128 + fcs for c in channels)


def test_builder_names_follow_the_registry():
    """The `googlenet` row keeps the plain name; the generic builder is `GoogLeNetFamily`."""
    info = keras_cnn.get_model_info("googlenet")
    assert info.builder is keras_cnn.GoogLeNet and info.builder_name == keras_cnn.GoogLeNet.__name__ == "GoogLeNet"
    assert keras_cnn.GoogLeNet.__wrapped__ is keras_cnn.GoogLeNetFamily is googlenet.GoogLeNetFamily
    assert googlenet.__all__ == ["GoogLeNetFamily", "GoogLeNet", "GoogLeNetPaper", "SEGoogLeNet"]
    assert not hasattr(keras_cnn, "GoogLeNetTorchvision")
    # The generic builder's defaults are the paper's network.
    assert count_params(keras_cnn.GoogLeNetFamily(input_shape=(64, 64, 3))) == 13_378_280


@pytest.mark.parametrize("aux_logits", [True, False])
def test_torchvision_googlenet_params_equal_torchvision(aux_logits):
    model = keras_cnn.GoogLeNet(input_shape=(64, 64, 3), aux_logits=aux_logits)
    assert count_params(model) == TORCHVISION_PARAMS[aux_logits]


@pytest.mark.parametrize("aux_logits", [True, False])
def test_paper_googlenet_params_equal_caffe(aux_logits):
    model = keras_cnn.GoogLeNetPaper(input_shape=(64, 64, 3), aux_logits=aux_logits)
    expected = PAPER_PARAMS_WITHOUT_AUX + (_paper_aux_params() if aux_logits else 0)
    assert count_params(model) == expected
    if aux_logits:
        assert expected == 13_378_280


def test_paper_params_are_the_torchvision_ones_with_5x5_convs_and_biases_for_bn():
    """Paper vs torchvision: "5x5" convs have 25 instead of 9 taps; every BN (gamma, beta)
    becomes one bias."""
    extra_taps = sum(s.reduce5x5 * s.conv5x5 * (25 - 9) for s in INCEPTION_V1)
    stem_channels = 64 + 64 + 192
    conv_channels = stem_channels + sum(
        s.conv1x1 + s.reduce3x3 + s.conv3x3 + s.reduce5x5 + s.conv5x5 + s.pool_proj for s in INCEPTION_V1
    )
    assert TORCHVISION_PARAMS[False] + extra_taps - conv_channels == PAPER_PARAMS_WITHOUT_AUX


def test_macs_equal_torchvision_without_aux_heads():
    model = keras_cnn.GoogLeNet(aux_logits=False)
    assert count_macs(model) / 1e9 == pytest.approx(TORCHVISION_GMACS, rel=0.01)


def test_inception_cost_example_of_the_seed_post():
    """28x28x256 input, 1x1 128 / 3x3 192 / 5x5 96 / 3x3 pool: 854M multiply-adds naive,
    271M with 1x1 reductions of 64 (and a 64-filter pool projection)."""

    def module_macs(**widths):
        inputs = keras.Input((28, 28, 256))
        outputs = inception_module(inputs, 128, conv3x3=192, conv5x5=96, norm=False, name="m", **widths)
        return count_macs(keras.Model(inputs, outputs)), outputs.shape[-1]

    naive, naive_channels = module_macs(reduce3x3=0, reduce5x5=0, pool_proj=0)
    reduced, reduced_channels = module_macs(reduce3x3=64, reduce5x5=64, pool_proj=64)
    assert (naive_channels, reduced_channels) == (672, 480)
    assert naive == 854_196_224  # the post's exact figure
    assert round(naive / 1e6) == 854
    # The post prints 271,350,808 (an addition slip: its own terms sum to 271,351,808).
    assert reduced == 25_690_112 + 12_845_056 + 86_704_128 + 12_845_056 + 120_422_400 + 12_845_056
    assert math.floor(reduced / 1e6) == 271
    assert naive / reduced == pytest.approx(3.15, abs=0.005)


def _torch_ceil_pool(size, kernel, stride=2):
    out = math.ceil((size - kernel) / stride) + 1
    return out - 1 if (out - 1) * stride >= size else out  # last window must start inside


@pytest.mark.parametrize("size", [224, 97])
def test_max_pools_have_torchvision_ceil_mode_sizes(size):
    model = keras_cnn.GoogLeNet(include_top=False, input_shape=(size, size, 3))
    expected = (size + 2 * 3 - 7) // 2 + 1  # conv1: 7x7/2, padding 3
    for index, kernel in enumerate(googlenet.TORCHVISION_POOL_SIZES, start=1):
        pool = model.get_layer(f"pool{index}")
        assert isinstance(pool, keras_cnn.layers.CeilModeMaxPooling2D)
        assert (pool.pool_size, pool.strides) == (kernel, 2)
        expected = _torch_ceil_pool(expected, kernel)
        assert pool.output.shape[1:3] == (expected, expected)
    assert model.output.shape[1:] == (expected, expected, 1024)


def test_torchvision_and_paper_layouts():
    tv = keras_cnn.GoogLeNet(input_shape=(64, 64, 3), classes=5)
    paper = keras_cnn.GoogLeNetPaper(input_shape=(64, 64, 3), classes=5)
    assert tv.get_layer("inception3a_branch3_conv").kernel_size == (3, 3)
    assert paper.get_layer("inception3a_branch3_conv").kernel_size == (5, 5)
    bns = [layer for layer in tv.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 3 + 6 * len(INCEPTION_V1) + 2  # stem, six convs per module, aux convs
    assert all(bn.epsilon == 1e-3 and bn.momentum == 0.9 for bn in bns)
    assert all(not layer.use_bias for layer in tv.layers if isinstance(layer, keras.layers.Conv2D))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in paper.layers)
    assert all(layer.use_bias for layer in paper.layers if isinstance(layer, keras.layers.Conv2D))
    def lrn_layers(model):
        return [layer.name for layer in model.layers
                if isinstance(layer, keras_cnn.layers.LocalResponseNormalization)]

    assert lrn_layers(paper) == ["norm1", "norm2"] and lrn_layers(tv) == []
    assert tv.get_layer("head_dropout").rate == 0.2 and paper.get_layer("head_dropout").rate == 0.4
    for model, windows in ((tv, "adaptive"), (paper, "overlapping")):
        assert model.get_layer("aux1_dropout").rate == 0.7
        assert isinstance(model.get_layer("aux1_pool"), keras_cnn.layers.GridAveragePooling2D)
        assert (model.get_layer("aux1_pool").grid_size, model.get_layer("aux1_pool").windows) == (4, windows)
        assert model.get_layer("aux1_pool").input is model.get_layer("inception4a_concat").output
        assert model.get_layer("aux2_pool").input is model.get_layer("inception4d_concat").output
        assert model.get_layer("aux1_predictions").units == 5


def test_paper_aux_pool_is_5x5_stride_3_at_224(rng):
    paper = keras_cnn.GoogLeNetPaper()
    for head in ("aux1", "aux2"):
        pool = paper.get_layer(f"{head}_pool")
        assert tuple(pool.input.shape[1:3]) == (14, 14) and tuple(pool.output.shape[1:3]) == (4, 4)
        x = rng.normal(size=(1, *pool.input.shape[1:])).astype("float32")
        np.testing.assert_allclose(pool(x), keras.layers.AveragePooling2D(5, 3)(x), atol=1e-6)


@pytest.fixture(scope="module")
def small_googlenet():
    keras.utils.set_random_seed(0)
    return keras_cnn.GoogLeNet(input_shape=(32, 32, 3), classes=3, dropout=0.0, aux_dropout=0.0)


def test_aux_outputs_only_in_training(small_googlenet, rng, tmp_path):
    model = small_googlenet
    assert isinstance(model, keras_cnn.models.base.AuxiliaryOutputsModel)
    assert model.aux_loss_weights == (0.3, 0.3)
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    outputs = model(x, training=True)
    assert isinstance(outputs, tuple) and [tuple(o.shape) for o in outputs] == [(4, 3)] * 3
    inference = model(x)
    assert not isinstance(inference, (tuple, list)) and tuple(inference.shape) == (4, 3)
    predicted = model.predict(x, verbose=0)
    assert isinstance(predicted, np.ndarray) and predicted.shape == (4, 3)
    np.testing.assert_allclose(predicted, inference, rtol=1e-5, atol=1e-6)
    path = tmp_path / "googlenet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    reloaded = loaded(x)
    assert not isinstance(reloaded, (tuple, list))
    np.testing.assert_array_equal(reloaded, inference)
    assert len(loaded(x, training=True)) == 3


def test_feature_extractor_has_no_aux_heads():
    model = keras_cnn.GoogLeNet(include_top=False, input_shape=(64, 64, 3))
    assert not isinstance(model, keras_cnn.models.base.AuxiliaryOutputsModel)
    assert not any(layer.name.startswith("aux") for layer in model.layers)
    without = keras_cnn.GoogLeNet(input_shape=(64, 64, 3), aux_logits=False)
    assert not isinstance(without, keras_cnn.models.base.AuxiliaryOutputsModel)
    assert not any(layer.name.startswith("aux") for layer in without.layers)


def test_aux_heads_are_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras_cnn.GoogLeNet(input_shape=(32, 32, 3), classes=3)
    for layer in ("predictions", "aux1_predictions", "aux2_predictions"):
        assert model.get_layer(layer).compute_dtype == "float32"
    outputs = model(np.zeros((1, 32, 32, 3), "float32"), training=True)
    assert all(o.dtype == "float32" for o in outputs)


def test_fit_loss_is_main_plus_0_3_times_each_aux_loss_and_goes_down(small_googlenet, rng):
    model = small_googlenet  # no dropout: the training-mode outputs are deterministic
    x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 3
    main, aux1, aux2 = model(x, training=True)
    ce = keras.losses.SparseCategoricalCrossentropy()
    expected = float(ce(y, main) + 0.3 * ce(y, aux1) + 0.3 * ce(y, aux2))
    assert float(ce(y, aux1)) > 0.1 and float(ce(y, aux2)) > 0.1
    # Eager steps: tracing the train step costs ~30 s of CPU here, more than the steps
    # themselves (the graph-mode path of `AuxiliaryOutputsModel` is tested in test_aux_outputs).
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True)
    # One batch per epoch: each reported loss is that of the weights before its step.
    losses = model.fit(x, y, batch_size=16, epochs=4, verbose=0).history["loss"]
    assert losses[0] == pytest.approx(expected, rel=1e-4)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_se_adds_exactly_the_squeeze_excite_params():
    base = keras_cnn.GoogLeNet(input_shape=(64, 64, 3))
    se = keras_cnn.SEGoogLeNet(input_shape=(64, 64, 3))
    # Per module output of C channels: reduce conv C -> C/16 and expand conv C/16 -> C, with biases.
    expected = sum(2 * c * (c // 16) + c // 16 + c for c in _module_output_channels())
    assert count_params(se) - count_params(base) == expected == 480_103
    assert se.get_layer("inception3a_se_reduce").filters == 16  # 256 / 16
    assert se.get_layer("inception5b_se_reduce").filters == 64  # 1024 / 16
    assert count_params(se) == 13_484_991


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"branch_kernel": 4}, "branch_kernel"),
        ({"branch_kernel": "5"}, "branch_kernel"),
        ({"aux_logits": "yes"}, "aux_logits"),
        ({"aux_logits": 1}, "aux_logits"),
        ({"se_ratio": 1.5}, "se_ratio"),
        ({"se_ratio": -0.1}, "se_ratio"),
        ({"aux_dropout": 1.0}, "aux_dropout"),
        ({"aux_pool": "max"}, "aux_pool"),
        ({"norm": None}, "norm"),
        ({"lrn": 1}, "lrn"),
        ({"bn_epsilon": 0}, "bn_epsilon"),
        ({"max_pool_sizes": (3, 3, 3)}, "max_pool_sizes"),
        ({"max_pool_sizes": (3, 3, 3, 5)}, "max_pool_sizes"),
        ({"input_shape": (31, 31, 3)}, "input_shape"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*{argument}="):
        keras_cnn.GoogLeNetFamily(**kwargs)

