"""ResNet-family specifics: where the tweaks of each variant live in the graph."""

import keras
import numpy as np
import pytest

import keras_cnn


def _strides(model, layer):
    return model.get_layer(layer).strides


@pytest.fixture(scope="module")
def models():
    size = dict(input_shape=(64, 64, 3), classes=5)
    return {
        "v1": keras_cnn.ResNet50V1(**size),
        "v1.5": keras_cnn.ResNet50(**size),
        "c": keras_cnn.ResNet50C(**size),
        "d": keras_cnn.ResNet50D(**size),
        "v2": keras_cnn.ResNet50V2(**size),
    }


def test_v1_strides_the_1x1_and_v15_the_3x3(models):
    assert _strides(models["v1"], "stage2_block1_1_conv") == (2, 2)
    assert _strides(models["v1"], "stage2_block1_2_conv") == (1, 1)
    assert _strides(models["v1.5"], "stage2_block1_1_conv") == (1, 1)
    assert _strides(models["v1.5"], "stage2_block1_2_conv") == (2, 2)


def test_resnet_c_has_a_deep_stem_and_d_an_average_pool_shortcut(models):
    c, d = models["c"], models["d"]
    assert [c.get_layer(f"stem_{i}_conv").filters for i in (1, 2, 3)] == [32, 32, 64]
    assert "stage2_block1_0_pool" not in [layer.name for layer in c.layers]
    assert isinstance(d.get_layer("stage2_block1_0_pool"), keras.layers.AveragePooling2D)
    assert _strides(d, "stage2_block1_0_conv") == (1, 1)
    assert _strides(c, "stage2_block1_0_conv") == (2, 2)


def test_v2_is_pre_activation_with_stride_in_the_last_block(models):
    v2 = models["v2"]
    assert "stage1_block1_preact_bn" in [layer.name for layer in v2.layers]
    assert _strides(v2, "stage1_block3_2_conv") == (2, 2)
    assert _strides(v2, "stage4_block3_2_conv") == (1, 1)
    assert isinstance(v2.get_layer("stage1_block3_0_pool"), keras.layers.MaxPooling2D)
    assert v2.get_layer("post_bn")


def test_zero_gamma_makes_every_residual_branch_start_as_identity():
    model = keras_cnn.ResNet18(input_shape=(64, 64, 3), classes=5, zero_gamma=True)
    last_bns = [layer for layer in model.layers if layer.name.endswith("_2_bn")]
    assert len(last_bns) == 8
    for layer in last_bns:
        np.testing.assert_array_equal(layer.gamma.numpy(), 0.0)
    other = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization) and layer not in last_bns]
    assert all(np.all(layer.gamma.numpy() == 1.0) for layer in other)


def test_drop_path_rate_grows_linearly_over_depth():
    model = keras_cnn.ResNet18(input_shape=(64, 64, 3), drop_path_rate=0.2)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras_cnn.layers.DropPath)]
    # 8 blocks; the first has rate 0, so no layer.
    np.testing.assert_allclose(rates, [0.2 * i / 7 for i in range(1, 8)])


def test_se_channels_follow_timm():
    model = keras_cnn.SEResNet50(input_shape=(64, 64, 3))
    assert model.get_layer("stage1_block1_se_reduce").filters == 16  # 256 / 16
    assert model.get_layer("stage4_block1_se_reduce").filters == 128
    senet = keras_cnn.SENet154(input_shape=(64, 64, 3), include_top=False)
    assert senet.get_layer("stage1_block1_1_conv").filters == 128  # halved first conv
    assert senet.get_layer("stage1_block1_2_conv").groups == 64
    assert senet.get_layer("stage2_block1_0_conv").kernel_size == (3, 3)


def test_head_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras_cnn.ResNet18(input_shape=(64, 64, 3), classes=4)
    assert model.get_layer("stage1_block1_1_conv").compute_dtype == "float16"
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    assert out.dtype == "float32"


def test_wrn_cifar_layout():
    model = keras_cnn.WRN28_2()
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert model.get_layer("stem_conv").filters == 16
    assert model.get_layer("stage3_block4_2_conv").filters == 128
