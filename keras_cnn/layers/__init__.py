"""Reusable building blocks, one idea per module."""

from keras_cnn.layers.batch_norm import BatchNormalization
from keras_cnn.layers.conv_bn_act import conv_bn_act
from keras_cnn.layers.drop_path import DropPath
from keras_cnn.layers.grouped_conv import GroupedConv2D
from keras_cnn.layers.local_response_norm import LocalResponseNormalization
from keras_cnn.layers.pooling import CeilModeMaxPooling2D, GridAveragePooling2D
from keras_cnn.layers.squeeze_excite import make_divisible, squeeze_excite

__all__ = [
    "BatchNormalization",
    "CeilModeMaxPooling2D",
    "DropPath",
    "GridAveragePooling2D",
    "GroupedConv2D",
    "LocalResponseNormalization",
    "conv_bn_act",
    "make_divisible",
    "squeeze_excite",
]
