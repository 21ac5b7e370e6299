"""DenseNet specifics: dense connectivity, transitions with compression, the CIFAR rows
against the paper, argument validation and the keras.applications ports."""

import functools

import keras
import numpy as np
import pytest
from conftest import assert_port_matches, random_images, randomize_weights

import keras_cnn
from keras_cnn.models.densenet import DenseNet, cifar_layers_per_block
from keras_cnn.utils.model_table import model_stats

TINY = dict(input_shape=(32, 32, 3), classes=3)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@functools.cache
def _registered(name):
    """Registered models at their defaults, built once for the module."""
    return keras_cnn.create_model(name)


def _weighted_depth(model):
    """The paper's depth L: convolutions plus the classifier."""
    return len(_layers(model, keras.layers.Conv2D)) + len(_layers(model, keras.layers.Dense))


def test_transitions_keep_floor_of_theta_times_channels():
    # Odd numbers so that every floor() matters: 7 + 2*5 = 17 -> 5; 5 + 3*5 = 20 -> 6.
    model = DenseNet((2, 3, 2), growth_rate=5, num_init_features=7, compression=0.3,
                     include_top=False, **TINY)
    assert model.get_layer("conv1_conv").filters == 7
    assert model.get_layer("pool2_conv").filters == 5
    assert model.get_layer("pool3_conv").filters == 6
    assert model.output.shape[-1] == 6 + 2 * 5
    assert model.get_layer("conv2_block1_1_conv").filters == 4 * 5  # bn_size * k
    assert model.get_layer("conv2_block1_2_conv").filters == 5
    assert isinstance(model.get_layer("pool2_pool"), keras.layers.AveragePooling2D)
    assert "pool4_conv" not in [layer.name for layer in model.layers]  # none after the last block


def test_every_dense_layer_sees_all_earlier_features():
    model = DenseNet((3, 2), growth_rate=4, num_init_features=8, include_top=False, **TINY)
    for index in (1, 2, 3):
        assert model.get_layer(f"conv2_block{index}_0_bn").input.shape[-1] == 8 + 4 * (index - 1)
    assert model.get_layer("conv2_block3_concat").output.shape[-1] == 8 + 4 * 3


@pytest.fixture(scope="module")
def densenet121():
    return keras_cnn.DenseNet121(input_shape=(32, 32, 3))


def test_densenet121_channel_arithmetic_is_torchvision_s(densenet121):
    model = densenet121
    assert [model.get_layer(f"pool{s}_conv").filters for s in (2, 3, 4)] == [128, 256, 512]
    assert model.get_layer("bn").input.shape[-1] == 1024
    assert model.get_layer("conv1_conv").kernel_size == (7, 7)
    assert model.get_layer("conv1_conv").strides == (2, 2)
    assert isinstance(model.get_layer("pool1"), keras.layers.MaxPooling2D)
    bn = model.get_layer("conv2_block1_0_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    assert not any(layer.use_bias for layer in _layers(model, keras.layers.Conv2D))
    assert _weighted_depth(model) == 121


def test_densenet161_is_wider():
    config = keras_cnn.get_model_info("densenet161").config
    assert (config["growth_rate"], config["num_init_features"]) == (48, 96)
    assert config["block_config"] == (6, 12, 36, 24)


@pytest.mark.parametrize(
    "depth, bottleneck, per_block",
    [(100, True, 16), (250, True, 41), (190, True, 31), (40, False, 12), (100, False, 32)],
)
def test_cifar_depth_to_layers_per_block(depth, bottleneck, per_block):
    assert cifar_layers_per_block(depth, bottleneck) == per_block


@pytest.mark.parametrize("depth, bottleneck", [(101, True), (42, False), (4, True), (9, True)])
def test_cifar_depth_must_divide(depth, bottleneck):
    with pytest.raises(ValueError, match=f"depth={depth}"):
        cifar_layers_per_block(depth, bottleneck)


@pytest.mark.parametrize(
    "name, depth, per_block, stem_channels",
    [("densenet_bc_100_12", 100, 16, 24), ("densenet_40_12", 40, 12, 16)],
)
def test_cifar_rows_have_the_paper_s_depth(name, depth, per_block, stem_channels):
    model = _registered(name)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert _weighted_depth(model) == depth
    names = [layer.name for layer in model.layers]
    for stage in (2, 3, 4):
        concats = [n for n in names if n.startswith(f"conv{stage}_") and n.endswith("_concat")]
        assert len(concats) == per_block
    assert "pool1" not in names and "conv1_bn" not in names  # cifar stem: one bare 3x3 conv
    assert model.get_layer("conv1_conv").kernel_size == (3, 3)
    assert model.get_layer("conv1_conv").strides == (1, 1)
    assert model.get_layer("conv1_conv").filters == stem_channels


def test_plain_densenet_has_one_conv_per_layer_and_no_compression():
    model = _registered("densenet_40_12")
    assert model.get_layer("conv2_block1_1_conv").kernel_size == (3, 3)
    assert "conv2_block1_2_conv" not in [layer.name for layer in model.layers]
    assert model.get_layer("pool2_conv").filters == 16 + 12 * 12  # theta = 1 keeps all
    assert model.get_layer("pool3_conv").filters == 160 + 12 * 12


@pytest.mark.parametrize(
    "name, depth",
    [("densenet121", 121), ("densenet161", 161), ("densenet169", 169), ("densenet201", 201),
     # Table 1's "264" blocks (6, 12, 64, 48) give 1 + 2 * 130 + 3 + 1 = 265 weighted layers.
     ("densenet264", 265)],
)
def test_imagenet_depths(name, depth):
    # The weighted-layer count of built models is checked on DenseNet-121 and the CIFAR rows.
    blocks = keras_cnn.get_model_info(name).config["block_config"]
    stem, transitions, classifier = 1, len(blocks) - 1, 1
    assert stem + 2 * sum(blocks) + transitions + classifier == depth


# The paper's Table 2 figures (rounded to 0.1M) and the exact counts osmr/imgclsmob
# publishes for its CIFAR-10 ports of the same networks.
@pytest.mark.parametrize(
    "name, millions, exact",
    [("densenet_bc_100_12", 0.8, 769_162),
     pytest.param("densenet_bc_250_24", 15.3, 15_324_406, marks=pytest.mark.slow),
     ("densenet_40_12", 1.0, None)],
)
def test_cifar_params_match_the_paper(name, millions, exact):
    params = keras_cnn.utils.count_params(_registered(name))
    assert round(params / 1e6, 1) == millions
    if exact is not None:
        assert params == exact


@pytest.mark.slow
def test_densenet264_params_match_published_figure():
    # lucid's densenet_264 docs (torchvision layers, blocks (6, 12, 64, 48)): 33,337,704;
    # PaddlePaddle's 33.74M also counts the 398,528 BN statistics.
    model = keras_cnn.DenseNet264(input_shape=(32, 32, 3))
    assert keras_cnn.utils.count_params(model) == 33_337_704
    assert model.count_params() == 33_736_232


@pytest.mark.slow
def test_densenet264_macs():
    _, macs = model_stats("densenet264")
    assert macs / 1e9 == pytest.approx(5.752, rel=0.01)


def test_drop_rate_follows_every_conv_but_the_stem():
    model = DenseNet((2, 1), growth_rate=4, drop_rate=0.2, include_top=False, **TINY)
    dropouts = {layer.name for layer in _layers(model, keras.layers.Dropout)}
    convs = {layer.name for layer in _layers(model, keras.layers.Conv2D)} - {"conv1_conv"}
    assert dropouts == {name.removesuffix("_conv") + "_dropout" for name in convs}
    assert all(layer.rate == 0.2 for layer in _layers(model, keras.layers.Dropout))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    assert np.all(np.isfinite(model(x, training=True)))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"growth_rate": 0}, "growth_rate"),
        ({"growth_rate": 2.5}, "growth_rate"),
        ({"compression": 0.0}, "compression"),
        ({"compression": 1.5}, "compression"),
        ({"compression": -0.5}, "compression"),
        ({"compression": True}, "compression"),
        ({"compression": "half"}, "compression"),
        ({"block_config": ()}, "block_config"),
        ({"block_config": (6, 0, 2)}, "block_config"),
        ({"block_config": 6}, "block_config"),
        ({"stem": "deep"}, "stem"),
        ({"num_init_features": 0}, "num_init_features"),
        ({"bn_size": 0}, "bn_size"),
        ({"bottleneck": "yes"}, "bottleneck"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"compression": 0.01}, "compression"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    args = {"block_config": (2, 2), "growth_rate": 4, **kwargs}
    with pytest.raises(ValueError, match=f"{argument}="):
        DenseNet(**args, **TINY)


def test_input_smaller_than_the_total_stride_is_refused():
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.DenseNet121(input_shape=(16, 16, 3))
    DenseNet((1, 1, 1), growth_rate=4, stem="cifar", input_shape=(4, 4, 3))  # stride 4 only


# keras.applications ports: identical outputs for random weights and BN statistics.
FAST_PORT = "DenseNet121"
PORTS = [c if c == FAST_PORT else pytest.param(c, marks=pytest.mark.slow)
         for c in ("DenseNet121", "DenseNet169", "DenseNet201")]


def _preprocess(x):
    return keras.applications.densenet.preprocess_input(x.copy())


@pytest.mark.parametrize("ctor", PORTS)
def test_port_with_top_matches_outputs(ctor, rng):
    ka_model = getattr(keras.applications, ctor)(weights=None, input_shape=(64, 64, 3),
                                                  classifier_activation=None)
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    assert model.name == ctor.lower()
    assert_port_matches(ka_model, model, random_images(rng, 64), _preprocess)


@pytest.mark.parametrize(
    "ctor, pooling",
    # The non-slow feature-extractor port is test_imagenet_weights_go_through_the_port.
    [pytest.param(FAST_PORT, "avg", marks=pytest.mark.slow),
     pytest.param(FAST_PORT, None, marks=pytest.mark.slow),
     pytest.param(FAST_PORT, "max", marks=pytest.mark.slow),
     pytest.param("DenseNet169", "max", marks=pytest.mark.slow),
     pytest.param("DenseNet201", None, marks=pytest.mark.slow)],
)
def test_port_feature_extractor(ctor, pooling, rng):
    ka_model = getattr(keras.applications, ctor)(weights=None, include_top=False,
                                                  pooling=pooling, input_shape=(96, 96, 3))
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    x = random_images(rng, 96)
    expected = np.asarray(ka_model(_preprocess(x)))
    assert np.std(expected) > 1e-2
    assert expected.shape == tuple(model(x).shape)
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_imagenet_weights_go_through_the_port(monkeypatch, rng):
    made = {}
    original = keras.applications.DenseNet121

    def fake_densenet121(weights, include_top):
        assert weights == "imagenet"
        made["model"] = original(weights=None, include_top=include_top, input_shape=(64, 64, 3))
        randomize_weights(made["model"], rng)
        return made["model"]

    monkeypatch.setattr(keras.applications, "DenseNet121", fake_densenet121)
    model = keras_cnn.DenseNet121(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    x = random_images(rng, 64, n=1)
    expected = np.asarray(made["model"](_preprocess(x)))
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_only_the_keras_applications_namesakes_take_imagenet():
    # Named timm/torchvision checkpoints (keras_cnn.weights.tags) cover the torchvision four.
    assert keras_cnn.list_models("densenet*", pretrained=True) == [
        "densenet121", "densenet161", "densenet169", "densenet201"]
    assert [n for n in keras_cnn.list_models("densenet*") if "imagenet" in keras_cnn.get_model_info(n).pretrained] == [
        "densenet121", "densenet169", "densenet201"]
    with pytest.raises(ValueError, match="weights='imagenet'"):
        keras_cnn.DenseNet161(weights="imagenet")
