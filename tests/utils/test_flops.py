"""The MAC counter on models whose counts are known by hand."""

import keras
import pytest

import keras_cnn
from keras_cnn.utils import count_macs, count_params


def test_counts_each_kind_of_layer():
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv")(inputs)  # 16*16*16*3*3*8
    x = keras.layers.Conv2D(16, 3, padding="same", groups=4, name="grouped")(x)  # in/groups = 4 per output
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)  # 8*8*16*9
    x = keras.layers.SeparableConv2D(32, 3, padding="same", name="sep")(x)  # 8*8*(16*9+16*32)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="fc")(x)  # 32*10
    total, table = count_macs(keras.Model(inputs, outputs), per_layer=True)
    assert table == {
        "conv": 16 * 16 * 16 * 9 * 8,
        "grouped": 16 * 16 * 16 * 9 * (16 // 4),
        "dw": 8 * 8 * 16 * 9,
        "sep": 8 * 8 * (16 * 9 + 16 * 32),
        "fc": 320,
    }
    assert total == sum(table.values())


def test_walks_nested_models_and_counts_every_call():
    inner_in = keras.Input((4, 4, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(5, 1, name="pw")(inner_in), name="inner")
    inputs = keras.Input((4, 4, 3))
    total, table = count_macs(keras.Model(inputs, inner(inputs)), per_layer=True)
    assert table == {"inner/pw": 4 * 4 * 3 * 5} and total == 240


def test_needs_static_sizes():
    model = keras_cnn.ResNet18(input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model)


def test_resnet50_matches_the_published_figure():
    model = keras_cnn.ResNet50()
    assert count_params(model) == 25_557_032
    assert count_macs(model) / 1e9 == pytest.approx(4.089, rel=1e-3)
