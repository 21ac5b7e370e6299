"""MobileNet v1: a stem convolution and 13 depthwise-separable blocks, scaled by a width
multiplier.

Reference: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", arXiv 1704.04861, 2017.

Each block is a 3x3 depthwise conv -> BN -> activation followed by a 1x1 pointwise conv ->
BN -> activation (no residuals). The timm rows (`mobilenetv1_*`) and keras.applications'
`MobileNet` differ only in flags: widths rounded to multiples of 8 vs truncated, PyTorch vs
TensorFlow padding, BN epsilon/momentum; both use ReLU6 (the paper draws plain ReLU).
"""


from keras import layers

from keras_cnn.layers import BatchNormalization, conv_bn_act, make_divisible
from keras_cnn.layers.conv_bn_act import BN_EPSILON, BN_MOMENTUM, CONV_INITIALIZER, pad_and_conv_padding
from keras_cnn.models.base import (
    build_classifier,
    check_choice,
    check_positive_int,
    check_positive_number,
    check_rate,
    family_builder,
)
from keras_cnn.registry import register_variants

STEM_FILTERS = 32
STEM_STRIDE = 2
KERNEL_SIZE = 3
WIDTH_DIVISOR = 8  # timm's round_channels: nearest multiple of 8, never below 90 %
# keras.applications uses Keras' BatchNormalization defaults (TensorFlow's).
TF_BN_MOMENTUM = 0.99
TF_BN_EPSILON = 1e-3
KERAS_APPLICATIONS_DROPOUT = 1e-3  # keras.applications.MobileNet's default `dropout`

# The 13 depthwise-separable blocks of Howard et al., Table 1, at width multiplier 1: the
# pointwise filters and the depthwise stride of each.
BLOCKS = (
    {"filters": 64, "stride": 1},
    {"filters": 128, "stride": 2},
    {"filters": 128, "stride": 1},
    {"filters": 256, "stride": 2},
    {"filters": 256, "stride": 1},
    {"filters": 512, "stride": 2},
    *({"filters": 512, "stride": 1},) * 5,
    {"filters": 1024, "stride": 2},
    {"filters": 1024, "stride": 1},
)

# keras.applications.MobileNet: ReLU6, TF padding, truncated widths, TF batch norm.
KERAS_LAYOUT = {
    "activation": "relu6",
    "padding": "same",
    "width_rounding": "truncate",
    "bn_momentum": TF_BN_MOMENTUM,
    "bn_epsilon": TF_BN_EPSILON,
}

PAPER = "MobileNets (Howard et al., 2017)"
TIMM, KA = "timm", "keras.applications"


def _timm(width_multiplier):
    # timm's mobilenetv1 weights (ra4 recipe) were trained on [-1, 1] inputs (Inception
    # mean/std 0.5), so the timm rows normalise that way too.
    return {"width_multiplier": width_multiplier, "input_normalization": "tf"}


VARIANTS = [
    {"name": "mobilenetv1_050", "builder_name": "MobileNetV1_050", "config": _timm(0.5),
     "variant": "MobileNet v1 0.5x width, timm layout (ReLU6, PyTorch padding, widths rounded "
                "to multiples of 8, BN eps 1e-5, [-1, 1] input scaling)",
     "reference": "keras.applications MobileNet(alpha=0.5) (equal widths; timm registers no 0.5x)"},
    {"name": "mobilenetv1_075", "builder_name": "MobileNetV1_075", "config": _timm(0.75),
     "variant": "MobileNet v1 0.75x width, timm layout (ReLU6, PyTorch padding, widths rounded "
                "to multiples of 8, BN eps 1e-5, [-1, 1] input scaling)",
     "reference": "keras.applications MobileNet(alpha=0.75) (equal widths; timm registers no "
                  "0.75x)"},
    {"name": "mobilenetv1_100", "builder_name": "MobileNetV1_100", "config": _timm(1.0),
     "variant": "MobileNet v1 1.0x width, timm layout (ReLU6, PyTorch padding, widths rounded "
                "to multiples of 8, BN eps 1e-5, [-1, 1] input scaling)",
     "reference": "timm mobilenetv1_100"},
    {"name": "mobilenetv1_125", "builder_name": "MobileNetV1_125", "config": _timm(1.25),
     "variant": "MobileNet v1 1.25x width, timm layout (ReLU6, PyTorch padding, widths rounded "
                "to multiples of 8, BN eps 1e-5, [-1, 1] input scaling)",
     "reference": "timm mobilenetv1_125"},
    {"name": "mobilenet", "builder_name": "MobileNet",
     "config": {**KERAS_LAYOUT, "dropout": KERAS_APPLICATIONS_DROPOUT, "input_normalization": "tf"},
     "variant": "MobileNet v1 1.0x as keras.applications.MobileNet (ReLU6, TensorFlow padding, "
                "BN eps 1e-3, dropout 1e-3, [-1, 1] input scaling)",
     "reference": f"{KA} MobileNet", "pretrained": ("imagenet",)},
]


def depthwise_bn_act(x, *, strides, depth_multiplier, padding, activation, bn_momentum,
                     bn_epsilon, name):
    """3x3 depthwise convolution -> BN -> activation, layers named `f"{name}_conv"` etc.

    `padding="same"` reproduces keras.applications: stride-2 convs pad one row and column
    at the bottom/right (TensorFlow's "same" for the even sizes they see at 224 px).
    """
    if padding == "same" and strides != 1:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
        conv_padding = "valid"
    else:
        x, conv_padding = pad_and_conv_padding(x, KERNEL_SIZE, strides, 1, padding, name)
    x = layers.DepthwiseConv2D(
        KERNEL_SIZE,
        strides=strides,
        padding=conv_padding,
        depth_multiplier=depth_multiplier,
        use_bias=False,
        depthwise_initializer=CONV_INITIALIZER,
        name=f"{name}_conv",
    )(x)
    x = BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def depthwise_separable_block(x, filters, *, strides=1, depth_multiplier=1, padding="symmetric",
                              activation="relu6", bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
                              name):
    """Depthwise 3x3 conv -> BN -> act -> pointwise 1x1 conv -> BN -> act (Howard et al.,
    Figure 3).

    Args:
        x: Input tensor.
        filters: Output channels of the pointwise conv.
        strides: Stride of the depthwise conv.
        depth_multiplier: Depthwise channel multiplier (keras.applications' `depth_multiplier`).
        padding: `"symmetric"` (PyTorch/timm) or `"same"` (keras.applications).
        activation: `"relu6"` or `"relu"`.
        bn_momentum: Batch-norm momentum.
        bn_epsilon: Batch-norm epsilon.
        name: Block prefix (`"block1"`): layers `block1_dw_conv`, `block1_pw_bn`, ...

    Returns:
        Output tensor.
    """
    x = depthwise_bn_act(x, strides=strides, depth_multiplier=depth_multiplier, padding=padding,
                         activation=activation, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                         name=f"{name}_dw")
    return conv_bn_act(x, filters, 1, activation=activation, bn_momentum=bn_momentum,
                       bn_epsilon=bn_epsilon, name=f"{name}_pw")


def scaled_width(filters, width_multiplier, width_rounding="divisible"):
    """A layer width under the width multiplier (the paper's alpha).

    `"divisible"` rounds to the nearest multiple of 8 without losing more than 10 % (timm's
    `round_channels`); `"truncate"` is keras.applications' `int(filters * alpha)`.
    """
    if width_rounding == "truncate":
        return max(1, int(filters * width_multiplier))
    return make_divisible(filters * width_multiplier, WIDTH_DIVISOR)


@family_builder(name="mobilenetv1")
def MobileNetV1(
    blocks=BLOCKS,
    *,
    width_multiplier=1.0,
    depth_multiplier=1,
    width_rounding="divisible",
    stem_filters=STEM_FILTERS,
    activation="relu6",
    padding="symmetric",
    bn_momentum=BN_MOMENTUM,
    bn_epsilon=BN_EPSILON,
    dropout=0.0,
    **head,
):
    """Builds a MobileNet v1.

    Args:
        blocks: The depthwise-separable blocks, one `{"filters", "stride"}` dict each (widths
            at multiplier 1; strides 1 or 2).
        width_multiplier: The paper's alpha: scales every width, stem included.
        depth_multiplier: Output channels per input channel of each depthwise conv (as in
            keras.applications; the paper's second multiplier is the input resolution).
        width_rounding: `"divisible"` (timm: nearest multiple of 8) or `"truncate"`
            (keras.applications: `int(filters * alpha)`).
        stem_filters: Filters of the stride-2 3x3 stem conv at multiplier 1.
        activation: `"relu6"` (timm, keras.applications) or `"relu"` (the paper's figure).
        padding: `"symmetric"` (PyTorch/timm) or `"same"` (keras.applications / TensorFlow).
        bn_momentum: Batch-norm momentum (0.9 timm, 0.99 keras.applications).
        bn_epsilon: Batch-norm epsilon (1e-5 timm, 1e-3 keras.applications).
        dropout: Dropout before the classifier (timm 0; keras.applications 1e-3).

    Returns:
        A `keras.Model`.
    """
    valid_blocks = isinstance(blocks, (list, tuple)) and len(blocks) > 0 and all(
        isinstance(b, dict) and set(b) == {"filters", "stride"} and b["stride"] in (1, 2)
        and isinstance(b["filters"], int) and not isinstance(b["filters"], bool) and b["filters"] >= 1
        for b in blocks
    )
    if not valid_blocks:
        raise ValueError(
            "`blocks` must be a non-empty sequence of {'filters': int >= 1, 'stride': 1 or 2} "
            f"dicts, received blocks={blocks!r}"
        )
    check_positive_number("width_multiplier", width_multiplier)
    check_positive_int("depth_multiplier", depth_multiplier)
    check_choice("width_rounding", width_rounding, ("divisible", "truncate"))
    check_positive_int("stem_filters", stem_filters)
    check_choice("activation", activation, ("relu6", "relu"))
    check_choice("padding", padding, ("symmetric", "same"))
    check_rate("bn_momentum", bn_momentum)
    check_positive_number("bn_epsilon", bn_epsilon)

    total_stride = STEM_STRIDE
    for block in blocks:
        total_stride *= block["stride"]
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}

    def features(x):
        x = conv_bn_act(x, scaled_width(stem_filters, width_multiplier, width_rounding),
                        KERNEL_SIZE, strides=STEM_STRIDE, padding=padding, activation=activation,
                        name="stem", **bn)
        for index, block in enumerate(blocks, start=1):
            x = depthwise_separable_block(
                x,
                scaled_width(block["filters"], width_multiplier, width_rounding),
                strides=block["stride"],
                depth_multiplier=depth_multiplier,
                padding=padding,
                activation=activation,
                name=f"block{index}",
                **bn,
            )
        return x

    return build_classifier(features, min_size=total_stride, dropout=dropout, **head)


__all__ = ["MobileNetV1"] + register_variants(
    MobileNetV1,
    VARIANTS,
    family="mobilenet",
    paper=PAPER,
    namespace=globals(),
)
