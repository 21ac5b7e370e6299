"""LeNet-5, AlexNet and VGG: published counts, layer layout, argument checks and the
keras.applications VGG ports."""

import keras
import numpy as np
import pytest
from conftest import assert_port_matches, random_images, randomize_weights

import keras_cnn
from keras_cnn.models import alexnet, lenet, vgg
from keras_cnn.utils import count_macs, count_params
from keras_cnn.utils.model_table import model_stats
from keras_cnn.weights.families import vgg as vgg_weights

# Published figures for names outside tests/fixtures/param_counts.csv (the registry builds them
# with 3 input channels at their default size).
PUBLISHED = {
    "vgg11_bn": 132868840,  # torchvision VGG11_BN_Weights num_params
    "vgg13_bn": 133053736,  # torchvision VGG13_BN_Weights num_params
    "vgg19_bn": 143678248,  # torchvision VGG19_BN_Weights num_params
    "alexnet_paper": 60965224,  # Caffe bvlc_alexnet, the paper's "60 million"
}
SLOW_PUBLISHED = {"vgg11_bn", "vgg13_bn", "vgg19_bn"}


def _layer_names(model):
    return [layer.name for layer in model.layers]


# --- parameter and MAC counts -------------------------------------------------------------

@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_PUBLISHED else n
             for n in sorted(PUBLISHED)])
def test_params_equal_published_figures(name):
    params, _ = model_stats(name)
    assert params == PUBLISHED[name]


def test_alexnet_paper_macs():
    _, macs = model_stats("alexnet_paper")
    assert macs == 724406816  # the layer-by-layer count of the grouped network (55x55 conv1)


def test_lenet5_counts_for_one_and_three_channels():
    # The widely published LeNet-5 figures are for one (grey) input channel.
    grey = keras_cnn.LeNet5(input_shape=(32, 32, 1))
    assert count_params(grey) == 61706
    assert count_macs(grey) == 416520
    # The registry default takes RGB: C1 gets 2 x 6 x 25 more weights.
    assert model_stats("lenet5") == (62006, 651720)


def test_lenet5_c3_table_has_the_papers_1516_parameters():
    model = keras_cnn.LeNet5(input_shape=(32, 32, 1), c3_table=True)
    c3 = [layer for layer in model.layers if layer.name.startswith("c3_") and layer.weights]
    assert sum(count_params(layer) for layer in c3) == 1516  # paper, Section II-B
    assert count_params(model) == 61706 - 2416 + 1516
    gathered = [layer.indices for layer in model.layers if isinstance(layer, lenet.ChannelGather)]
    assert sum(gathered, []) == [c for maps in lenet.C3_TABLE for c in maps]


def test_lenet5_c3_map_sees_only_its_table_inputs(rng):
    model = keras_cnn.LeNet5(input_shape=(32, 32, 1), c3_table=True)
    randomize_weights(model, rng)
    s2 = model.get_layer("s2").output
    c3 = keras.Model(s2, model.get_layer("c3_concat").output)
    base = rng.normal(size=(1, 14, 14, 6)).astype("float32")
    reference = np.asarray(c3(base))
    for channel in range(6):
        bumped = base.copy()
        bumped[..., channel] += 1.0
        changed = np.abs(np.asarray(c3(bumped)) - reference).max(axis=(0, 1, 2)) > 1e-6
        expected = [channel in maps for maps in lenet.C3_TABLE]
        assert changed.tolist() == expected


# --- layout -------------------------------------------------------------------------------

def test_lenet5_layout_and_any_channel_count():
    model = keras_cnn.LeNet5(input_shape=(32, 32, 4), classes=3)
    shapes = {n: model.get_layer(n).output.shape[1:] for n in ("c1_conv", "s2", "c3_conv", "s4",
                                                               "c5_conv")}
    assert shapes == {"c1_conv": (28, 28, 6), "s2": (14, 14, 6), "c3_conv": (10, 10, 16),
                      "s4": (5, 5, 16), "c5_conv": (1, 1, 120)}
    assert isinstance(model.get_layer("s2"), keras.layers.AveragePooling2D)
    assert model.get_layer("fc1").units == 84
    assert model.output.shape == (None, 3)
    # Larger inputs: C5 becomes a map, which the top averages.
    bigger = keras_cnn.LeNet5(input_shape=(48, 40, 1))
    assert bigger.get_layer("c5_conv").output.shape[1:3] == (5, 3)
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.LeNet5(input_shape=(31, 32, 1))


def test_alexnet_builder_names_follow_the_registry():
    """The `alexnet` row keeps the plain name; the generic builder is `AlexNetFamily`."""
    info = keras_cnn.get_model_info("alexnet")
    assert info.builder is keras_cnn.AlexNet and info.builder_name == keras_cnn.AlexNet.__name__ == "AlexNet"
    assert keras_cnn.AlexNet.__wrapped__ is keras_cnn.AlexNetFamily is alexnet.AlexNetFamily
    assert alexnet.__all__ == ["AlexNetFamily", "AlexNet", "AlexNetPaper"]


def test_alexnet_torchvision_layout():
    model = keras_cnn.AlexNet(classes=10, fc_units=(32, 32))  # narrow top: a cheap build
    spatial = [model.get_layer(n).output.shape[1] for n in
               ("conv1_conv", "conv1_pool", "conv2_conv", "conv2_pool", "conv5_conv", "conv5_pool")]
    assert spatial == [55, 27, 27, 13, 13, 6]
    assert [model.get_layer(f"conv{i}_conv").filters for i in range(1, 6)] == [64, 192, 384, 256, 256]
    assert not any(isinstance(layer, keras_cnn.layers.LocalResponseNormalization)
                   for layer in model.layers)
    names = _layer_names(model)
    # torchvision: Dropout -> Linear -> ReLU, twice, then the classifier.
    assert names[names.index("flatten") + 1:] == [
        "fc1_dropout", "fc1", "fc1_relu", "fc2_dropout", "fc2", "fc2_relu", "predictions"]


def test_alexnet_paper_layout():
    model = keras_cnn.AlexNetPaper(include_top=False)
    assert model.get_layer("conv1_conv").output.shape[1:] == (55, 55, 96)
    assert [model.get_layer(f"conv{i}_conv").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    lrn = [layer for layer in model.layers
           if isinstance(layer, keras_cnn.layers.LocalResponseNormalization)]
    assert [layer.name for layer in lrn] == ["conv1_lrn", "conv2_lrn"]
    assert (lrn[0].size, lrn[0].alpha / lrn[0].size, lrn[0].beta, lrn[0].k) == (5, 1e-4, 0.75, 2.0)
    assert model.output.shape == (None, 6, 6, 256)
    names = _layer_names(model)
    assert names.index("conv1_relu") < names.index("conv1_lrn") < names.index("conv1_pool")


def test_alexnet_takes_any_size_from_its_minimum():
    # At 63 px the last pool is 1x1; the adaptive pool copies it to every cell of the 6x6
    # grid, as torchvision's AdaptiveAvgPool2d does.
    model = keras_cnn.AlexNet(input_shape=(63, 63, 3), classes=4, fc_units=(8,))
    grid = keras.Model(model.input, model.get_layer("adaptive_pool").output)
    out = np.asarray(grid(random_images(np.random.default_rng(1), 63)))
    assert out.shape == (2, 6, 6, 256)
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), rtol=1e-6)
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.AlexNet(input_shape=(62, 62, 3))


@pytest.mark.parametrize("depth, convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
def test_vgg_configurations(depth, convs):
    model = vgg.VGG(vgg.DEPTHS[depth], input_shape=(32, 32, 3), include_top=False)
    conv_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(conv_layers) == convs  # + 3 fully connected = the depth in the name
    assert all(layer.kernel_size == (3, 3) and layer.use_bias for layer in conv_layers)
    assert [model.get_layer(f"block{s}_pool").output.shape[1] for s in range(1, 6)] == [16, 8, 4, 2, 1]
    assert model.output.shape == (None, 1, 1, 512)


def test_vgg_bn_keeps_the_conv_bias_like_torchvision():
    model = keras_cnn.VGG11BN(input_shape=(32, 32, 3), include_top=False)
    conv = model.get_layer("block1_conv1_conv")
    bn = model.get_layer("block1_conv1_bn")
    assert conv.use_bias
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    names = _layer_names(model)
    assert names.index("block1_conv1_conv") < names.index("block1_conv1_bn") < names.index(
        "block1_conv1_relu")


def test_vgg_top_is_torchvisions():
    model = vgg.VGG(vgg.DEPTHS[11], widths=(8, 8, 16, 16, 16), fc_units=(32, 32),
                    input_shape=(32, 32, 3), classes=3, dropout=0.3)
    names = _layer_names(model)
    assert names[names.index("block5_pool") + 1:] == [
        "adaptive_pool", "flatten", "fc1", "fc1_relu", "fc1_dropout", "fc2", "fc2_relu",
        "fc2_dropout", "predictions"]
    assert model.get_layer("fc1").kernel.shape == (7 * 7 * 16, 32)  # adaptive 7x7 grid
    assert model.get_layer("fc1_dropout").rate == 0.3
    assert model.get_layer("predictions").dtype_policy.name == "float32"


def test_pooling_only_shapes_feature_extractors():
    top = keras_cnn.VGG11(input_shape=(32, 32, 3), classes=3, pooling="max", fc_units=(8,))
    assert "max_pool" not in _layer_names(top)
    features = keras_cnn.VGG11(input_shape=(32, 32, 3), include_top=False, pooling="max")
    assert features.output.shape == (None, 512)


def test_models_round_trip_through_keras_files(tmp_path, rng):
    model = keras_cnn.LeNet5(input_shape=(32, 32, 1), c3_table=True)
    x = random_images(rng, 32, channels=1)
    path = tmp_path / "lenet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model(x), loaded(x))


# --- argument checks ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "builder, kwargs, argument",
    [
        (keras_cnn.VGG11, {"input_shape": (None, None, 3)}, "input_shape"),
        (keras_cnn.AlexNet, {"input_shape": (None, 96, 3)}, "input_shape"),
        (keras_cnn.VGG11, {"input_shape": (16, 16, 3)}, "input_shape"),
        (keras_cnn.VGG11, {"depths": (1, 1, 0, 2, 2)}, "depths"),
        (keras_cnn.VGG11, {"widths": (64, 128)}, "widths"),
        (keras_cnn.VGG11, {"batch_norm": "yes"}, "batch_norm"),
        (keras_cnn.VGG11, {"fc_units": ()}, "fc_units"),
        (keras_cnn.VGG11, {"grid": 0}, "grid"),
        (keras_cnn.VGG11, {"dropout": 1.0}, "dropout"),
        (keras_cnn.AlexNet, {"convs": ()}, "convs"),
        (keras_cnn.AlexNet, {"convs": ({"filters": 64},)}, "convs"),
        (keras_cnn.AlexNet, {"convs": ({"filters": 64, "kernel": 3, "stride": 0},)}, "convs"),
        (keras_cnn.AlexNet, {"convs": ({"filters": 63, "kernel": 3, "groups": 2},)}, "convs"),
        (keras_cnn.AlexNet, {"convs": ({"filters": 8, "kernel": 3, "lrn": 1},)}, "convs"),
        (keras_cnn.AlexNet, {"fc_units": (4096, -1)}, "fc_units"),
        (keras_cnn.AlexNet, {"dropout_position": "middle"}, "dropout_position"),
        (keras_cnn.AlexNet, {"default_size": 0}, "default_size"),
        (keras_cnn.LeNet5, {"convs": ({"name": "c1", "filters": 0, "pool": None},)}, "convs"),
        (keras_cnn.LeNet5, {"fc_units": 84}, "fc_units"),
        (keras_cnn.LeNet5, {"activation": "nope"}, "activation"),
        (keras_cnn.LeNet5, {"activation": abs}, "activation"),
        (keras_cnn.LeNet5, {"pool_type": "min"}, "pool_type"),
        (keras_cnn.LeNet5, {"c3_table": 1}, "c3_table"),
        (keras_cnn.LeNet5, {"c3_table": True, "convs": lenet.LENET5_CONVS[1:]}, "c3_table"),
        (keras_cnn.LeNet5, {"classes": 0}, "classes"),
    ],
)
def test_bad_arguments_name_the_argument(builder, kwargs, argument):
    with pytest.raises(ValueError, match=f"{argument}="):
        builder(**kwargs)


def test_grid_and_min_size_tables():
    assert alexnet._min_input_size(alexnet.check_conv_rows("convs", alexnet.TORCHVISION_CONVS)) == 63
    assert lenet._min_input_size(lenet.LENET5_CONVS) == 32


# --- keras.applications ports -------------------------------------------------------------

@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_vgg16_feature_extractor_port(pooling, rng):
    ka_model = keras.applications.VGG16(weights=None, include_top=False, pooling=pooling,
                                        input_shape=(32, 32, 3))
    randomize_weights(ka_model, rng)
    # keras.applications leaves VGG's pooling layer unnamed, so it is passed on here.
    model = keras_cnn.weights.from_keras_applications(ka_model, pooling=pooling)
    assert model.name == "vgg16"
    assert_port_matches(ka_model, model, random_images(rng, 32), keras.applications.vgg16.preprocess_input)


@pytest.mark.slow
def test_vgg19_feature_extractor_port(rng):
    ka_model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(48, 64, 3))
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    x = rng.uniform(0, 255, (2, 48, 64, 3)).astype("float32")
    assert_port_matches(ka_model, model, x, keras.applications.vgg19.preprocess_input)


@pytest.mark.slow
@pytest.mark.parametrize("ctor, module", [("VGG16", "vgg16"), ("VGG19", "vgg19")])
def test_vgg_port_with_top_at_224(ctor, module, rng):
    # keras.applications' top flattens the 7x7 map of a 224 input directly; there the
    # adaptive 7x7 pool is the identity.
    ka_model = getattr(keras.applications, ctor)(weights=None, classifier_activation=None)
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    assert count_params(model) == count_params(ka_model)
    preprocess = getattr(keras.applications, module).preprocess_input
    assert_port_matches(ka_model, model, random_images(rng, 224), preprocess)


@pytest.mark.slow
def test_vgg16_imagenet_weights_go_through_the_port(monkeypatch, rng):
    made = {}
    original = keras.applications.VGG16

    def fake_vgg16(weights, include_top):
        assert weights == "imagenet"
        made["model"] = original(weights=None, include_top=include_top)
        randomize_weights(made["model"], rng)
        return made["model"]

    monkeypatch.setattr(keras.applications, "VGG16", fake_vgg16)
    model = keras_cnn.VGG16(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    x = random_images(rng, 64, n=1)
    expected = np.asarray(made["model"](keras.applications.vgg16.preprocess_input(x.copy())))
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_vgg_ports_are_declared():
    ports = keras_cnn.weights.keras_applications_ports()
    assert ports["VGG16"][0].name == "vgg16" and ports["VGG19"][0].name == "vgg19"
    assert keras_cnn.get_model_info("vgg16").pretrained == ("imagenet", "torchvision:vgg16.IMAGENET1K_V1")
    assert keras_cnn.get_model_info("vgg16_bn").pretrained == ("torchvision:vgg16_bn.IMAGENET1K_V1",)  # no "imagenet"
    assert vgg_weights.keras_layer_name("block3_conv2_conv") == "block3_conv2"
    assert vgg_weights.keras_layer_name("fc1") == "fc1"
