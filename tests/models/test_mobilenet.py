"""MobileNet v1 specifics: width multiplier arithmetic, timm vs keras.applications layouts,
and the keras.applications.MobileNet port."""

import keras
import numpy as np
import pytest
from conftest import assert_port_matches, random_images, randomize_weights

import keras_cnn
from keras_cnn.layers import make_divisible
from keras_cnn.utils import count_macs, count_params
from keras_cnn.weights.families import mobilenet as mobilenet_weights

PREPROCESS = keras.applications.mobilenet.preprocess_input
WIDTHS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]  # stem + 13 blocks
STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


def _widths(model):
    return [model.get_layer("stem_conv").filters] + [
        model.get_layer(f"block{i}_pw_conv").filters for i in range(1, 14)
    ]


def test_table_is_the_paper_architecture():
    model = keras_cnn.MobileNetV1_100(include_top=False, input_shape=(64, 64, 3))
    assert _widths(model) == WIDTHS
    strides = [model.get_layer("stem_conv").strides[0]] + [
        model.get_layer(f"block{i}_dw_conv").strides[0] for i in range(1, 14)
    ]
    assert strides == STRIDES
    depthwise = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 13 and not any(layer.use_bias for layer in depthwise)
    assert not any(isinstance(layer, keras.layers.Add) for layer in model.layers)  # no residuals
    assert model.output.shape == (None, 2, 2, 1024)


@pytest.mark.parametrize("alpha, name", [(0.5, "mobilenetv1_050"), (0.75, "mobilenetv1_075"),
                                         (1.25, "mobilenetv1_125")])
def test_width_multiplier_scales_every_width(alpha, name):
    model = keras_cnn.create_model(name, include_top=False, input_shape=(32, 32, 3))
    assert _widths(model) == [make_divisible(w * alpha, 8) for w in WIDTHS] == [int(w * alpha) for w in WIDTHS]


def test_width_rounding_timm_vs_keras_applications():
    # alpha 0.35: 32 * 0.35 = 11.2 -> 16 in timm (multiple of 8, >= 90 %), 11 in keras.applications.
    timm_like = keras_cnn.MobileNetV1(width_multiplier=0.35, include_top=False, input_shape=(32, 32, 3))
    ka_like = keras_cnn.MobileNetV1(width_multiplier=0.35, width_rounding="truncate", include_top=False,
                                    input_shape=(32, 32, 3))
    assert _widths(timm_like)[:3] == [16, 24, 48]
    assert _widths(ka_like)[:3] == [11, 22, 44]
    ka = keras.applications.MobileNet(weights=None, alpha=0.35, include_top=False, input_shape=(32, 32, 3))
    assert count_params(ka_like) == count_params(ka)


def test_depth_multiplier_multiplies_depthwise_channels():
    model = keras_cnn.MobileNetV1(depth_multiplier=2, include_top=False, input_shape=(32, 32, 3))
    assert model.get_layer("block1_dw_conv").output.shape[-1] == 64
    assert model.get_layer("block13_dw_conv").output.shape[-1] == 2048
    assert model.output.shape[-1] == 1024


@pytest.mark.parametrize("alpha, name", [(0.5, "mobilenetv1_050"), (0.75, "mobilenetv1_075"),
                                         (1.0, "mobilenetv1_100")])
def test_params_equal_keras_applications_and_paper(alpha, name):
    model = keras_cnn.create_model(name)
    ka = keras.applications.MobileNet(weights=None, alpha=alpha)
    assert count_params(model) == count_params(ka)  # keras.applications' trainable weights
    # Howard et al., Table 6 (224 px): 4.2 / 2.6 / 1.3 M parameters, 569 / 325 / 149 M mult-adds.
    params, mult_adds = {0.5: (1.3e6, 149e6), 0.75: (2.6e6, 325e6), 1.0: (4.2e6, 569e6)}[alpha]
    assert count_params(model) == pytest.approx(params, abs=0.05e6)
    assert count_macs(model) == pytest.approx(mult_adds, abs=0.5e6)


def test_mobilenetv1_125_matches_timm():
    # timm's mobilenetv1_125.ra4_e3600_r224_in1k model card: 6.27 M parameters.
    assert count_params(keras_cnn.MobileNetV1_125()) == 6270840


def test_timm_layout_pads_symmetrically_and_uses_pytorch_batch_norm():
    model = keras_cnn.MobileNetV1_100(include_top=False, input_shape=(64, 64, 3))
    assert model.get_layer("stem_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("block2_dw_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("block1_dw_conv").padding == "same"  # stride 1: already symmetric
    bn = model.get_layer("block5_pw_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    assert model.get_layer("block5_pw_relu6").activation is keras.activations.relu6
    assert model.get_layer("input_norm").get_config()["mean"] == pytest.approx([127.5] * 3)


def test_keras_applications_layout():
    model = keras_cnn.MobileNet(input_shape=(64, 64, 3), classes=3)
    assert "stem_pad" not in [layer.name for layer in model.layers]
    assert model.get_layer("stem_conv").padding == "same"
    assert model.get_layer("block2_dw_pad").padding == ((0, 1), (0, 1))
    bn = model.get_layer("block5_pw_bn")
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    assert model.get_layer("head_dropout").rate == 1e-3


def test_relu_activation_flag():
    model = keras_cnn.MobileNetV1(activation="relu", include_top=False, input_shape=(32, 32, 3))
    assert model.get_layer("block1_dw_relu").activation is keras.activations.relu


def test_layer_name_map_matches_keras_applications():
    name = mobilenet_weights.keras_layer_name
    assert [name(n) for n in ("stem_conv", "stem_bn", "block1_dw_conv", "block1_dw_bn",
                              "block13_pw_conv", "block13_pw_bn", "predictions")] == [
        "conv1", "conv1_bn", "conv_dw_1", "conv_dw_1_bn", "conv_pw_13", "conv_pw_13_bn", "conv_preds"]
    matches = mobilenet_weights.KERAS_APPLICATIONS["MobileNet"].keras_name
    assert matches("mobilenet_1.00_224") and matches("mobilenet_1.00_None")
    assert not matches("mobilenet_0.50_224") and not matches("mobilenetv2_1.00_224")


def _port(rng, **ka_kwargs):
    ka_model = keras.applications.MobileNet(weights=None, **ka_kwargs)
    randomize_weights(ka_model, rng)
    kwargs = {k: v for k, v in ka_kwargs.items() if k in ("include_top", "pooling", "input_shape")}
    if ka_kwargs.get("include_top", True):
        kwargs["classifier_activation"] = ka_kwargs.get("classifier_activation", "softmax")
    model = keras_cnn.MobileNet(**kwargs)
    keras_cnn.weights.transfer_weights(ka_model, model, mobilenet_weights.keras_layer_name)
    return ka_model, model


@pytest.mark.parametrize("size", [64, pytest.param(128, marks=pytest.mark.slow)])
def test_port_with_top_matches_outputs(size, rng):
    ka_model, model = _port(rng, input_shape=(size, size, 3), classifier_activation=None)
    assert_port_matches(ka_model, model, random_images(rng, size), PREPROCESS)


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_port_feature_extractor(pooling, rng):
    # Odd sizes: keras.applications pads stride-2 depthwise convs at the bottom/right only,
    # which the "same" layout reproduces exactly, also where TF "same" would pad both sides.
    ka_model, model = _port(rng, include_top=False, pooling=pooling, input_shape=(None, None, 3))
    x = random_images(rng, 97, 75)
    expected = np.asarray(ka_model(PREPROCESS(x.copy())))
    assert np.std(expected) > 1e-2
    assert expected.shape == tuple(model(x).shape)
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_imagenet_weights_go_through_the_port(monkeypatch, rng):
    made = {}
    original = keras.applications.MobileNet

    def fake_mobilenet(weights, include_top):
        assert weights == "imagenet"
        made["model"] = original(weights=None, include_top=include_top)
        randomize_weights(made["model"], rng)
        return made["model"]

    monkeypatch.setattr(keras.applications, "MobileNet", fake_mobilenet)
    model = keras_cnn.MobileNet(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    assert model.get_layer("input_norm").get_config()["mean"] == pytest.approx([127.5] * 3)
    x = random_images(rng, 64, n=1)
    expected = np.asarray(made["model"](PREPROCESS(x.copy())))
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_from_keras_applications(rng):
    ka_model = keras.applications.MobileNet(weights=None, input_shape=(64, 64, 3))
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    assert model.name == "mobilenet"
    x = random_images(rng, 64)
    np.testing.assert_allclose(model(x), ka_model(PREPROCESS(x.copy())), atol=1e-5, rtol=0)
    features = keras.applications.MobileNet(weights=None, include_top=False, pooling="avg")
    assert keras_cnn.weights.from_keras_applications(features).output.shape == (None, 1024)
    with pytest.raises(ValueError, match="ka_model"):
        keras_cnn.weights.from_keras_applications(keras.applications.MobileNet(weights=None, alpha=0.5))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"width_multiplier": 0}, "width_multiplier"),
        ({"width_multiplier": -0.5}, "width_multiplier"),
        ({"width_multiplier": True}, "width_multiplier"),
        ({"width_multiplier": "1.0"}, "width_multiplier"),
        ({"depth_multiplier": 0}, "depth_multiplier"),
        ({"depth_multiplier": 1.5}, "depth_multiplier"),
        ({"width_rounding": "round"}, "width_rounding"),
        ({"activation": "swish"}, "activation"),
        ({"padding": "valid"}, "padding"),
        ({"bn_epsilon": 0}, "bn_epsilon"),
        ({"bn_momentum": 1.0}, "bn_momentum"),
        ({"stem_filters": 0}, "stem_filters"),
        ({"blocks": []}, "blocks"),
        ({"blocks": [{"filters": 64, "stride": 3}]}, "blocks"),
        ({"blocks": [{"filters": 0, "stride": 1}]}, "blocks"),
        ({"blocks": [(64, 1)]}, "blocks"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        keras_cnn.MobileNetV1_100(**kwargs)


def test_imagenet_weights_refuse_architecture_changes():
    with pytest.raises(ValueError, match="padding"):
        keras_cnn.MobileNet(weights="imagenet", padding="symmetric")
    with pytest.raises(ValueError, match="weights='imagenet'"):
        keras_cnn.MobileNetV1_100(weights="imagenet")
