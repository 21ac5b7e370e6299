"""EfficientNet B0-B7 and L2: one MBConv network scaled in depth, width and resolution.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019. EfficientNet-L2: Xie et al., "Self-training with Noisy Student
improves ImageNet classification", CVPR 2020. EfficientNet-B6-Wide: Pham et al., "Meta
Pseudo Labels", CVPR 2021.

B0 is a searched stack of MBConv blocks (`DEFAULT_BLOCKS_ARGS`); every other name is B0
with a width multiplier, a depth multiplier and an input resolution (`SCALING`). The
layers carry keras.applications' names, so its EfficientNetB0-B7 weights port by name.
Parameter counts equal timm's `tf_efficientnet_*` (TF "same" padding, BN epsilon 1e-3).
"""

import math
import numbers
from typing import NamedTuple

import keras
from keras import layers

from keras_cnn.layers import (
    BatchNormalization,
    DropPath,
    activations,
    conv_bn_act,
    make_divisible,
    squeeze_excite,
)
from keras_cnn.layers.conv_bn_act import CONV_INITIALIZER, pad_and_conv_padding
from keras_cnn.models.base import (
    build_classifier,
    check_choice,
    check_positive_int,
    check_positive_number,
    check_rate,
    family_builder,
)
from keras_cnn.registry import register_variants

# Compound scaling (paper §3.3, Eq. 3): depth d = ALPHA**phi, width w = BETA**phi,
# resolution r = GAMMA**phi, found by grid search on B0 under ALPHA * BETA**2 * GAMMA**2 ~ 2,
# so that each unit of phi roughly doubles the FLOPs.
ALPHA = 1.2  # depth
BETA = 1.1  # width
GAMMA = 1.15  # resolution
BASE_RESOLUTION = 224  # B0's input size

DEPTH_DIVISOR = 8  # channel counts are rounded to multiples of 8
SE_RATIO = 0.25  # SE bottleneck = 1/4 of the block's *input* channels
HEAD_FILTERS = 1280  # the 1x1 conv before pooling, scaled with the width
DROP_PATH_RATE = 0.2  # stochastic depth of the last block ("drop_connect_rate" in TF)
# The TF reference's batch norm (keras.applications' BatchNormalization defaults).
TF_BN_MOMENTUM = 0.99
TF_BN_EPSILON = 1e-3


class MBConvStage(NamedTuple):
    """One row of the B0 architecture (paper Table 1): `repeats` MBConv blocks."""

    kernel_size: int
    repeats: int
    filters_in: int
    filters_out: int
    expand_ratio: int
    strides: int
    se_ratio: float = SE_RATIO


# EfficientNet-B0 (paper Table 1, stages 2-8; stage 1 is the stem, 9 the head). The stem
# has `filters_in` of the first row.
DEFAULT_BLOCKS_ARGS = (
    MBConvStage(kernel_size=3, repeats=1, filters_in=32, filters_out=16, expand_ratio=1, strides=1),
    MBConvStage(kernel_size=3, repeats=2, filters_in=16, filters_out=24, expand_ratio=6, strides=2),
    MBConvStage(kernel_size=5, repeats=2, filters_in=24, filters_out=40, expand_ratio=6, strides=2),
    MBConvStage(kernel_size=3, repeats=3, filters_in=40, filters_out=80, expand_ratio=6, strides=2),
    MBConvStage(kernel_size=5, repeats=3, filters_in=80, filters_out=112, expand_ratio=6, strides=1),
    MBConvStage(kernel_size=5, repeats=4, filters_in=112, filters_out=192, expand_ratio=6, strides=2),
    MBConvStage(kernel_size=3, repeats=1, filters_in=192, filters_out=320, expand_ratio=6, strides=1),
)
STEM_STRIDE = 2


class Scaling(NamedTuple):
    """Published coefficients of one EfficientNet (the reference's `efficientnet_params`)."""

    width: float
    depth: float
    resolution: int
    dropout: float


# The published rows. B1-B7 were hand-rounded from `compound_scaling(phi)` (the widths and
# resolutions of B4-B7 are close to phi = 4..7; the depths lag one phi behind, and B1-B3
# were chosen smaller); L2 comes from Noisy Student, B6-Wide from Meta Pseudo Labels
# (google-research `meta_pseudo_labels/modeling.py`, "efficientnet-b6-mpl").
SCALING = {
    "b0": Scaling(width=1.0, depth=1.0, resolution=224, dropout=0.2),
    "b1": Scaling(width=1.0, depth=1.1, resolution=240, dropout=0.2),
    "b2": Scaling(width=1.1, depth=1.2, resolution=260, dropout=0.3),
    "b3": Scaling(width=1.2, depth=1.4, resolution=300, dropout=0.3),
    "b4": Scaling(width=1.4, depth=1.8, resolution=380, dropout=0.4),
    "b5": Scaling(width=1.6, depth=2.2, resolution=456, dropout=0.4),
    "b6": Scaling(width=1.8, depth=2.6, resolution=528, dropout=0.5),
    "b7": Scaling(width=2.0, depth=3.1, resolution=600, dropout=0.5),
    "l2": Scaling(width=4.3, depth=5.3, resolution=800, dropout=0.5),
    "b6_wide": Scaling(width=5.0, depth=2.6, resolution=800, dropout=0.5),
}


class CompoundScaling(NamedTuple):
    """Depth and width multipliers and input resolution for one compound coefficient."""

    depth: float
    width: float
    resolution: float


def compound_scaling(phi, base_resolution=BASE_RESOLUTION):
    """The paper's compound scaling rule (Eq. 3) for coefficient `phi`.

    The published B1-B7 rows (`SCALING`) were rounded by hand from this rule, not
    computed with it; use it to derive new sizes.

    Args:
        phi: Compound coefficient (B0 is 0); any real number.
        base_resolution: Input resolution of the base network.

    Returns:
        `CompoundScaling(depth=ALPHA**phi, width=BETA**phi,
        resolution=GAMMA**phi * base_resolution)`.
    """
    check_positive_number("base_resolution", base_resolution)
    if isinstance(phi, bool) or not isinstance(phi, numbers.Real):
        raise ValueError(f"`phi` must be a real number, received phi={phi!r}")
    return CompoundScaling(ALPHA**phi, BETA**phi, GAMMA**phi * base_resolution)


def round_filters(filters, width_coefficient, depth_divisor=DEPTH_DIVISOR):
    """Scales a channel count by the width multiplier, rounded to `depth_divisor`.

    The reference rounds to the nearest multiple, never below `depth_divisor` nor more
    than 10 % below the scaled value (`make_divisible`).
    """
    return make_divisible(filters * width_coefficient, depth_divisor)


def round_repeats(repeats, depth_coefficient):
    """Scales a stage's block count by the depth multiplier, rounding up."""
    return int(math.ceil(depth_coefficient * repeats))


def _check_blocks_args(blocks_args):
    """Validates `blocks_args`; returns it as a tuple of `MBConvStage`."""
    error = ValueError(
        "`blocks_args` must be a non-empty sequence of MBConvStage rows (or dicts with their "
        "fields) with positive integer sizes, strides 1 or 2, se_ratio in [0, 1) and each "
        f"row's filters_in equal to the previous filters_out, received blocks_args={blocks_args!r}"
    )
    if not isinstance(blocks_args, (list, tuple)) or not blocks_args:
        raise error
    stages = []
    for row in blocks_args:
        try:
            stage = MBConvStage(**row) if isinstance(row, dict) else MBConvStage(*row)
        except TypeError as err:
            raise error from err
        sizes = stage[:-1]
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in sizes):
            raise error
        if stage.strides not in (1, 2) or stages and stage.filters_in != stages[-1].filters_out:
            raise error
        try:
            check_rate("se_ratio", stage.se_ratio)
        except ValueError as err:
            raise error from err
        stages.append(stage)
    return tuple(stages)


def mbconv_block(
    x,
    filters_out,
    *,
    kernel_size,
    strides,
    expand_ratio,
    se_ratio,
    activation,
    padding,
    bn_momentum,
    bn_epsilon,
    drop_path_rate=0.0,
    name,
):
    """Mobile inverted bottleneck: expand 1x1, depthwise, squeeze-excite, project 1x1.

    Layers are named as in keras.applications (`{name}_expand_conv`, `{name}_dwconv`,
    `{name}_bn`, `{name}_se_reduce`, `{name}_project_conv`, ...).

    Args:
        x: Input tensor.
        filters_out: Output channels.
        kernel_size: Depthwise kernel size.
        strides: Depthwise stride.
        expand_ratio: Expanded width / input width (1: no expansion conv).
        se_ratio: SE bottleneck width as a fraction of the *input* channels (0: no SE).
        activation: Activation of the expansion, depthwise and SE layers.
        padding: `"same"` (TF) or `"symmetric"` (PyTorch).
        bn_momentum: Batch-norm momentum.
        bn_epsilon: Batch-norm epsilon.
        drop_path_rate: Stochastic depth of the residual branch.
        name: Block name (`"block2a"`).

    Returns:
        Output tensor.
    """
    filters_in = x.shape[-1]
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}
    inputs = x
    if expand_ratio != 1:
        x = conv_bn_act(x, filters_in * expand_ratio, 1, padding=padding, activation=activation,
                        name=f"{name}_expand", **bn)
    x, conv_padding = pad_and_conv_padding(x, kernel_size, strides, 1, padding, f"{name}_dwconv")
    # A DepthwiseConv2D (not a grouped Conv2D) keeps keras.applications' kernel layout.
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_padding, use_bias=False,
                               depthwise_initializer=CONV_INITIALIZER, name=f"{name}_dwconv")(x)
    x = BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=f"{name}_bn")(x)
    x = layers.Activation(activations.get(activation), name=f"{name}_activation")(x)
    if se_ratio:
        # The SE width follows the block's input, not its expanded width.
        x = squeeze_excite(x, max(1, int(filters_in * se_ratio)), activation=activation,
                           gate="sigmoid", name=f"{name}_se")
    x = conv_bn_act(x, filters_out, 1, padding=padding, activation=None, name=f"{name}_project", **bn)
    if strides == 1 and filters_in == filters_out:
        if drop_path_rate:
            x = DropPath(drop_path_rate, name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _block_letters(index):
    """`a`, `b`, ..., `z`, `aa`, `ab`, ...: the reference's block suffixes, unbounded."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


@family_builder(default_size=BASE_RESOLUTION, name="efficientnet")
def EfficientNet(
    width_coefficient,
    depth_coefficient,
    *,
    blocks_args=DEFAULT_BLOCKS_ARGS,
    depth_divisor=DEPTH_DIVISOR,
    activation="swish",
    se_ratio=None,
    head_filters=HEAD_FILTERS,
    padding="same",
    bn_momentum=TF_BN_MOMENTUM,
    bn_epsilon=TF_BN_EPSILON,
    drop_path_rate=DROP_PATH_RATE,
    dropout=0.2,
    **head,
):
    """Builds an EfficientNet of any width and depth.

    Args:
        width_coefficient: Width multiplier of every layer (rounded by `round_filters`).
        depth_coefficient: Depth multiplier of every stage (rounded up by `round_repeats`).
        blocks_args: The base network, a sequence of `MBConvStage` rows (or dicts with
            their fields), B0's by default.
        depth_divisor: Channel counts are rounded to multiples of this.
        activation: Activation of the network (`"swish"` = SiLU).
        se_ratio: Overrides the `se_ratio` of every row when given (0 disables SE).
        head_filters: Channels of the last 1x1 conv before scaling by the width.
        padding: `"same"` (TF padding, as the reference, keras.applications and timm
            `tf_efficientnet_*`) or `"symmetric"` (PyTorch padding, timm `efficientnet_*`).
        bn_momentum: Batch-norm momentum (TF's 0.99).
        bn_epsilon: Batch-norm epsilon (TF's 1e-3).
        drop_path_rate: Stochastic depth; block `i` of `n` drops with
            `drop_path_rate * i / n`, as the reference.
        dropout: Dropout before the classifier.

    Returns:
        A `keras.Model`.
    """
    check_positive_number("width_coefficient", width_coefficient)
    check_positive_number("depth_coefficient", depth_coefficient)
    stages = _check_blocks_args(blocks_args)
    check_positive_int("depth_divisor", depth_divisor)
    check_positive_int("head_filters", head_filters)
    bad_activation = ValueError(
        f"`activation` must be a Keras activation name or a callable, received "
        f"activation={activation!r}"
    )
    if activation is None:  # keras.activations.get(None) is the identity
        raise bad_activation
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError) as err:
        raise bad_activation from err
    if se_ratio is not None:
        check_rate("se_ratio", se_ratio)
        stages = tuple(stage._replace(se_ratio=se_ratio) for stage in stages)
    check_choice("padding", padding, ("same", "symmetric"))
    check_rate("bn_momentum", bn_momentum)
    check_positive_number("bn_epsilon", bn_epsilon)
    check_rate("drop_path_rate", drop_path_rate)

    def filters(count):
        return round_filters(count, width_coefficient, depth_divisor)

    repeats = [round_repeats(stage.repeats, depth_coefficient) for stage in stages]
    total_blocks = sum(repeats)
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}

    def features(x):
        x = conv_bn_act(x, filters(stages[0].filters_in), 3, strides=STEM_STRIDE, padding=padding,
                        activation=activation, name="stem", **bn)
        index = 0
        for stage_index, (stage, stage_repeats) in enumerate(zip(stages, repeats), start=1):
            for block in range(stage_repeats):
                x = mbconv_block(
                    x,
                    filters(stage.filters_out),
                    kernel_size=stage.kernel_size,
                    strides=stage.strides if block == 0 else 1,
                    expand_ratio=stage.expand_ratio,
                    se_ratio=stage.se_ratio,
                    activation=activation,
                    padding=padding,
                    drop_path_rate=drop_path_rate * index / total_blocks,
                    name=f"block{stage_index}{_block_letters(block)}",
                    **bn,
                )
                index += 1
        return conv_bn_act(x, filters(head_filters), 1, padding=padding, activation=activation,
                           name="top", **bn)

    return build_classifier(features,
                            min_size=STEM_STRIDE * math.prod(stage.strides for stage in stages),
                            dropout=dropout, **head)


NOISY_STUDENT = "Self-training with Noisy Student (Xie et al., 2020)"
MPL = "Meta Pseudo Labels (Pham et al., 2021)"


def _scaled(key):
    scaling = SCALING[key]
    return {"width_coefficient": scaling.width, "depth_coefficient": scaling.depth,
            "default_size": scaling.resolution, "dropout": scaling.dropout}


# One row per registered name.
VARIANTS = [
    {"name": "efficientnet_b0", "builder_name": "EfficientNetB0", "config": _scaled("b0"),
     "variant": "EfficientNet-B0: width x1.0, depth x1.0, 224 px, TF padding "
                "(keras.applications.EfficientNetB0)",
     "reference": "timm tf_efficientnet_b0", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b1", "builder_name": "EfficientNetB1", "config": _scaled("b1"),
     "variant": "EfficientNet-B1: width x1.0, depth x1.1, 240 px, TF padding "
                "(keras.applications.EfficientNetB1)",
     "reference": "timm tf_efficientnet_b1", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b2", "builder_name": "EfficientNetB2", "config": _scaled("b2"),
     "variant": "EfficientNet-B2: width x1.1, depth x1.2, 260 px, TF padding "
                "(keras.applications.EfficientNetB2)",
     "reference": "timm tf_efficientnet_b2", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b3", "builder_name": "EfficientNetB3", "config": _scaled("b3"),
     "variant": "EfficientNet-B3: width x1.2, depth x1.4, 300 px, TF padding "
                "(keras.applications.EfficientNetB3)",
     "reference": "timm tf_efficientnet_b3", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b4", "builder_name": "EfficientNetB4", "config": _scaled("b4"),
     "variant": "EfficientNet-B4: width x1.4, depth x1.8, 380 px, TF padding "
                "(keras.applications.EfficientNetB4)",
     "reference": "timm tf_efficientnet_b4", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b5", "builder_name": "EfficientNetB5", "config": _scaled("b5"),
     "variant": "EfficientNet-B5: width x1.6, depth x2.2, 456 px, TF padding "
                "(keras.applications.EfficientNetB5)",
     "reference": "timm tf_efficientnet_b5", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b6", "builder_name": "EfficientNetB6", "config": _scaled("b6"),
     "variant": "EfficientNet-B6: width x1.8, depth x2.6, 528 px, TF padding "
                "(keras.applications.EfficientNetB6)",
     "reference": "timm tf_efficientnet_b6", "pretrained": ("imagenet",)},
    {"name": "efficientnet_b7", "builder_name": "EfficientNetB7", "config": _scaled("b7"),
     "variant": "EfficientNet-B7: width x2.0, depth x3.1, 600 px, TF padding "
                "(keras.applications.EfficientNetB7)",
     "reference": "timm tf_efficientnet_b7", "pretrained": ("imagenet",)},
    {"name": "efficientnet_l2", "builder_name": "EfficientNetL2", "config": _scaled("l2"),
     "variant": "EfficientNet-L2: width x4.3, depth x5.3, 800 px, TF padding (Noisy Student's "
                "largest)",
     "reference": "timm tf_efficientnet_l2", "paper": NOISY_STUDENT},
    {"name": "efficientnet_b6_wide", "builder_name": "EfficientNetB6Wide",
     "config": _scaled("b6_wide"),
     "variant": "EfficientNet-B6-Wide: B6 depth (x2.6) with width x5.0, 800 px (Meta Pseudo "
                "Labels' 'efficientnet-b6-mpl')",
     "reference": "google-research meta_pseudo_labels efficientnet-b6-mpl (paper: 390M)",
     "paper": MPL},
]


__all__ = ["EfficientNet"] + register_variants(
    EfficientNet,
    VARIANTS,
    family="efficientnet",
    paper="EfficientNet: Rethinking Model Scaling for CNNs (Tan & Le, 2019)",
    namespace=globals(),
)
