"""SqueezeNet specifics: the Fire table, pool positions and sizes (the ceil-mode pooling layer
itself: test_layers.py), bypasses, head."""

import keras
import numpy as np
import pytest

import keras_cnn
from keras_cnn.models import squeezenet
from keras_cnn.utils import count_params

SMALL = dict(input_shape=(64, 64, 3), classes=5)
FIRES = [f"fire{i}" for i in range(2, 10)]


def _layer_names(model):
    return [layer.name for layer in model.layers]


def _inbound(model, name):
    node = model.get_layer(name)._inbound_nodes[0]
    return [t._keras_history.operation.name for t in node.input_tensors]


@pytest.mark.parametrize(
    "name, stem, pooled_after, sizes",
    [
        # torchvision at 224 px: 109 -> 54 -> 27 -> 13 (1.0); 111 -> 55 -> 27 -> 13 (1.1).
        ("squeezenet1_0", (96, 7), ("stem_relu", "fire4_concat", "fire8_concat"), (54, 27, 13)),
        ("squeezenet1_1", (64, 3), ("stem_relu", "fire3_concat", "fire5_concat"), (55, 27, 13)),
    ],
)
def test_stem_and_pool_positions_follow_torchvision(name, stem, pooled_after, sizes):
    model = keras_cnn.create_model(name, include_top=False)
    conv = model.get_layer("stem_conv")
    assert (conv.filters, conv.kernel_size[0], conv.strides, conv.padding) == (*stem, (2, 2), "valid")
    for index, (source, size) in enumerate(zip(pooled_after, sizes), start=1):
        assert _inbound(model, f"pool{index}") == [source]
        pool = model.get_layer(f"pool{index}")
        assert isinstance(pool, keras_cnn.layers.CeilModeMaxPooling2D)
        assert (pool.pool_size, pool.strides) == (3, 2)
        assert pool.output.shape[1:3] == (size, size)
    assert model.output.shape[1:] == (13, 13, 512)


def test_fire_modules_follow_the_paper_table():
    model = keras_cnn.SqueezeNet1_1(include_top=False, **SMALL)
    for fire, row in zip(FIRES, squeezenet.FIRE_MODULES):
        squeeze = model.get_layer(f"{fire}_squeeze_conv")
        e1, e3 = model.get_layer(f"{fire}_expand1x1_conv"), model.get_layer(f"{fire}_expand3x3_conv")
        assert (squeeze.filters, e1.filters, e3.filters) == tuple(row.values())
        assert (squeeze.kernel_size, e1.kernel_size, e3.kernel_size) == ((1, 1), (1, 1), (3, 3))
        assert squeeze.use_bias and e1.use_bias and e3.use_bias  # no batch norm in SqueezeNet
        assert _inbound(model, f"{fire}_concat") == [f"{fire}_expand1x1_relu", f"{fire}_expand3x3_relu"]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_fire_must_squeeze():
    fires = [dict(row) for row in squeezenet.FIRE_MODULES]
    fires[2] = {"squeeze": 256, "expand1x1": 128, "expand3x3": 128}  # s1x1 == e1x1 + e3x3
    with pytest.raises(ValueError, match=r"fire_modules.*fire4.*s1x1=256"):
        keras_cnn.SqueezeNet(fires, **SMALL)
    ok = keras_cnn.SqueezeNet([(16, 8, 16)], stem_filters=8, pool_after=(0, 1), **SMALL)
    assert ok.get_layer("fire2_concat").output.shape[-1] == 24  # 3-tuples work too


def test_simple_bypass_only_where_widths_match():
    plain = keras_cnn.SqueezeNet1_0(**SMALL)
    bypass = keras_cnn.SqueezeNet1_0_Bypass(**SMALL)
    adds = [layer.name for layer in bypass.layers if isinstance(layer, keras.layers.Add)]
    assert adds == ["fire3_add", "fire5_add", "fire7_add", "fire9_add"]
    # fire5's input comes through pool2 (1.0 numbering): the shortcut is taken after the pool.
    assert _inbound(bypass, "fire5_add") == ["fire5_concat", "pool2"]
    assert _inbound(bypass, "fire3_add") == ["fire3_concat", "fire2_concat"]
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert count_params(bypass) == count_params(plain)


def test_complex_bypass_adds_1x1_convs_where_widths_differ():
    plain = keras_cnn.SqueezeNet1_0(**SMALL)
    model = keras_cnn.SqueezeNet1_0(bypass="complex", **SMALL)
    convs = [name for name in _layer_names(model) if name.endswith("_bypass_conv")]
    assert convs == ["fire2_bypass_conv", "fire4_bypass_conv", "fire6_bypass_conv", "fire8_bypass_conv"]
    widths = [(96, 128), (128, 256), (256, 384), (384, 512)]
    assert count_params(model) - count_params(plain) == sum(i * o + o for i, o in widths)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Add)]) == 8


def test_head_is_conv_relu_pool_and_float32_under_mixed_precision(rng):
    model = keras_cnn.SqueezeNet1_1(**SMALL)
    assert _layer_names(model)[-5:] == ["head_dropout", "conv10_conv", "conv10_relu", "avg_pool", "predictions"]
    conv10 = model.get_layer("conv10_conv")
    assert conv10.kernel_size == (1, 1) and conv10.use_bias and conv10.filters == 5
    logits = keras_cnn.SqueezeNet1_1(classifier_activation=None, **SMALL)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    assert np.all(np.asarray(logits(x)) >= 0)  # torchvision's ReLU before the pool
    keras.mixed_precision.set_global_policy("mixed_float16")
    mixed = keras_cnn.SqueezeNet1_1(**SMALL)
    assert mixed.get_layer("predictions").compute_dtype == "float32"
    assert mixed.output.dtype == "float32"


def test_max_pooling_head_and_feature_extractor():
    model = keras_cnn.SqueezeNet1_1(pooling="max", **SMALL)
    assert isinstance(model.get_layer("max_pool"), keras.layers.GlobalMaxPooling2D)
    features = keras_cnn.SqueezeNet1_0(include_top=False, pooling="avg", input_shape=(None, None, 3))
    assert features(np.zeros((1, 97, 131, 3), "float32")).shape == (1, 512)


def test_params_and_macs_match_torchvision():
    # The shared table (tests/models/test_param_counts.py) checks 1.0/1.1; the bypass variant adds
    # no parameters (the paper's Table 3: same 4.8 MB).
    assert count_params(keras_cnn.SqueezeNet1_0_Bypass()) == 1248424
    small = keras_cnn.SqueezeNet1_1(input_shape=(64, 64, 3))
    assert count_params(small) == 1235496  # independent of the input size


def test_smallest_input_is_checked():
    # 1.0: a 7x7/2 stem and three 3x3/2 pools need 29 px; 1.1 (3x3 stem) 25 px.
    assert keras_cnn.SqueezeNet1_0(input_shape=(29, 29, 3), classes=3).output.shape == (None, 3)
    keras_cnn.SqueezeNet1_1(input_shape=(25, 25, 3), classes=3)
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.SqueezeNet1_0(input_shape=(28, 28, 3))
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.SqueezeNet1_1(input_shape=(24, 24, 3))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"bypass": "residual"}, "bypass"),
        ({"bypass": True}, "bypass"),
        ({"fire_modules": []}, "fire_modules"),
        ({"fire_modules": [(16, 64)]}, "fire_modules"),
        ({"fire_modules": [{"squeeze": 16, "expand": 64}]}, "fire_modules"),
        ({"fire_modules": [(0, 64, 64)]}, "fire_modules"),
        ({"fire_modules": [(16.0, 64, 64)]}, "fire_modules"),
        ({"fire_modules": "fire"}, "fire_modules"),
        ({"pool_after": (0, 3, 9)}, "pool_after"),
        ({"pool_after": (3, 0)}, "pool_after"),
        ({"pool_after": (0, 0, 3)}, "pool_after"),
        ({"pool_after": (-1,)}, "pool_after"),
        ({"pool_after": ()}, "pool_after"),
        ({"stem_filters": 0}, "stem_filters"),
        ({"stem_kernel": 2.5}, "stem_kernel"),
        ({"dropout": 1.0}, "dropout"),
        ({"default_size": 0}, "default_size"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        keras_cnn.SqueezeNet1_0(**kwargs)
