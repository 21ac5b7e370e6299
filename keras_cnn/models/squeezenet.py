"""SqueezeNet 1.0 / 1.1, with the paper's simple and complex bypass connections.

Reference: Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", arXiv 1602.07360, 2016.

The network is a stem convolution followed by eight Fire modules (a 1x1 "squeeze" conv feeding
parallel 1x1 and 3x3 "expand" convs whose outputs are concatenated) with max pools between
them, and a 1x1 convolutional classifier. 1.0 and 1.1 share the Fire table and differ only in
the stem and in where the pools sit, so both are rows of data for the one `SqueezeNet`
builder. As torchvision: convolutions have biases and no batch norm, pools use ceil mode
(`keras_cnn.layers.CeilModeMaxPooling2D`).
"""

import numbers
from collections.abc import Mapping

from keras import layers

from keras_cnn.layers import CeilModeMaxPooling2D
from keras_cnn.layers.conv_bn_act import CONV_INITIALIZER
from keras_cnn.models.base import (
    build_classifier,
    check_choice,
    check_int_sequence,
    check_positive_int,
    family_builder,
    head_dtype,
)
from keras_cnn.registry import register_variants

POOL_SIZE = 3
POOL_STRIDE = 2
STEM_STRIDE = 2
EXPAND_KERNEL = 3
CLASSIFIER_DROPOUT = 0.5  # the paper's dropout after fire9
# torchvision initialises the final (classifier) convolution with N(0, 0.01).
CLASSIFIER_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.01}}
FIRST_FIRE_INDEX = 2  # the paper numbers the modules fire2 .. fire9 (conv1 is the stem)
FIRE_KEYS = ("squeeze", "expand1x1", "expand3x3")

# Fire modules fire2 .. fire9 (Iandola et al., Table 1): filters of the squeeze 1x1 conv and of
# the two expand convs. Identical in 1.0 and 1.1.
FIRE_MODULES = (
    {"squeeze": 16, "expand1x1": 64, "expand3x3": 64},  # fire2
    {"squeeze": 16, "expand1x1": 64, "expand3x3": 64},  # fire3
    {"squeeze": 32, "expand1x1": 128, "expand3x3": 128},  # fire4
    {"squeeze": 32, "expand1x1": 128, "expand3x3": 128},  # fire5
    {"squeeze": 48, "expand1x1": 192, "expand3x3": 192},  # fire6
    {"squeeze": 48, "expand1x1": 192, "expand3x3": 192},  # fire7
    {"squeeze": 64, "expand1x1": 256, "expand3x3": 256},  # fire8
    {"squeeze": 64, "expand1x1": 256, "expand3x3": 256},  # fire9
)

# `pool_after`: a 3x3/2 max pool follows the stem (0) and the n-th Fire module (n).
# 1.0 (the paper): 96 7x7 stem filters, pools after conv1, fire4 and fire8.
SQUEEZENET_1_0 = {"stem_filters": 96, "stem_kernel": 7, "pool_after": (0, 3, 7)}
# 1.1 (the SqueezeNet repository): 64 3x3 stem filters, pools moved earlier (after conv1,
# fire3 and fire5): 2.4x fewer MACs at the same accuracy.
SQUEEZENET_1_1 = {"stem_filters": 64, "stem_kernel": 3, "pool_after": (0, 2, 4)}

PAPER = "SqueezeNet (Iandola et al., 2016)"
TV = "torchvision"

VARIANTS = [
    {"name": "squeezenet1_0", "builder_name": "SqueezeNet1_0", "config": SQUEEZENET_1_0,
     "variant": "SqueezeNet 1.0: 96 7x7 stem filters, max pools after conv1, fire4 and fire8",
     "reference": f"{TV} squeezenet1_0"},
    {"name": "squeezenet1_1", "builder_name": "SqueezeNet1_1", "config": SQUEEZENET_1_1,
     "variant": "SqueezeNet 1.1: 64 3x3 stem filters, max pools after conv1, fire3 and fire5",
     "reference": f"{TV} squeezenet1_1"},
    {"name": "squeezenet1_0_bypass", "builder_name": "SqueezeNet1_0_Bypass",
     "config": {**SQUEEZENET_1_0, "bypass": "simple"},
     "variant": "SqueezeNet 1.0 with the paper's simple bypass (identity shortcuts around "
                "fire3, fire5, fire7 and fire9, whose input and output widths match)",
     "reference": f"{TV} squeezenet1_0 (identity shortcuts add no parameters)"},
]


def fire_module(x, squeeze, expand1x1, expand3x3, *, bypass="none", name):
    """A Fire module: squeeze 1x1 conv -> ReLU -> [expand 1x1, expand 3x3] -> ReLU -> concat.

    Args:
        x: Input tensor.
        squeeze: Filters of the squeeze 1x1 conv (`s1x1`).
        expand1x1: Filters of the expand 1x1 conv (`e1x1`).
        expand3x3: Filters of the expand 3x3 conv (`e3x3`).
        bypass: `"none"`; `"simple"`: add the input when it has as many channels as the output;
            `"complex"`: add it, through a 1x1 conv where the widths differ.
        name: Prefix of the layer names (`"fire2"`).

    Returns:
        Output tensor with `expand1x1 + expand3x3` channels.
    """

    def conv_relu(inputs, filters, kernel, part):
        # Biased convs, no batch norm (the paper predates BN's adoption; torchvision keeps it).
        out = layers.Conv2D(filters, kernel, padding="same", kernel_initializer=CONV_INITIALIZER,
                            name=f"{name}_{part}_conv")(inputs)
        return layers.Activation("relu", name=f"{name}_{part}_relu")(out)

    squeezed = conv_relu(x, squeeze, 1, "squeeze")
    out = layers.Concatenate(name=f"{name}_concat")([
        conv_relu(squeezed, expand1x1, 1, "expand1x1"),
        conv_relu(squeezed, expand3x3, EXPAND_KERNEL, "expand3x3"),
    ])
    out_channels = expand1x1 + expand3x3
    if bypass == "none" or (bypass == "simple" and x.shape[-1] != out_channels):
        return out
    shortcut = x
    if x.shape[-1] != out_channels:
        shortcut = layers.Conv2D(out_channels, 1, kernel_initializer=CONV_INITIALIZER,
                                 name=f"{name}_bypass_conv")(x)
    return layers.Add(name=f"{name}_add")([out, shortcut])


def squeezenet_top(x, *, classes, classifier_activation, dropout, pooling):
    """The paper's classifier: dropout -> 1x1 conv (conv10) -> ReLU -> global pool.

    The ReLU before the pool is SqueezeNet's (and torchvision's); the class scores are
    therefore non-negative. `predictions` only applies `classifier_activation`.
    """
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Conv2D(classes, 1, kernel_initializer=CLASSIFIER_INITIALIZER, name="conv10_conv")(x)
    x = layers.Activation("relu", name="conv10_relu")(x)
    if pooling == "max":
        x = layers.GlobalMaxPooling2D(dtype=head_dtype(), name="max_pool")(x)
    else:
        x = layers.GlobalAveragePooling2D(dtype=head_dtype(), name="avg_pool")(x)
    return layers.Activation(classifier_activation, dtype=head_dtype(), name="predictions")(x)


def _fire_rows(fire_modules):
    """Validates the Fire table; returns it as `(squeeze, expand1x1, expand3x3)` tuples."""
    rows = []
    valid = isinstance(fire_modules, (list, tuple)) and len(fire_modules) > 0
    for row in fire_modules if valid else ():
        values = tuple(row[k] for k in FIRE_KEYS) if isinstance(row, Mapping) and set(row) == set(FIRE_KEYS) else row
        if not (isinstance(values, (list, tuple)) and len(values) == len(FIRE_KEYS) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in values
        )):
            valid = False
            break
        rows.append(tuple(int(v) for v in values))
    if not valid:
        raise ValueError(
            "`fire_modules` must be a non-empty sequence of {'squeeze', 'expand1x1', 'expand3x3'} "
            f"dicts (or 3-tuples) of positive integers, received fire_modules={fire_modules!r}"
        )
    for index, (squeeze, expand1x1, expand3x3) in enumerate(rows, start=FIRST_FIRE_INDEX):
        if squeeze >= expand1x1 + expand3x3:
            raise ValueError(
                f"`fire_modules`: fire{index} must squeeze (s1x1 < e1x1 + e3x3), received "
                f"s1x1={squeeze}, e1x1={expand1x1}, e3x3={expand3x3} in fire_modules={fire_modules!r}"
            )
    return rows


def _min_input_size(stem_kernel, num_pools):
    """Smallest input for which the stem conv and every pool see at least one full window."""
    size = stem_kernel
    while True:
        current, ok = (size - stem_kernel) // STEM_STRIDE + 1, True
        for _ in range(num_pools):
            if current < POOL_SIZE:
                ok = False
                break
            current = -(-(current - POOL_SIZE) // POOL_STRIDE) + 1
        if ok:
            return size
        size += 1


@family_builder(name="squeezenet")
def SqueezeNet(
    fire_modules=FIRE_MODULES,
    *,
    stem_filters=SQUEEZENET_1_0["stem_filters"],
    stem_kernel=SQUEEZENET_1_0["stem_kernel"],
    pool_after=SQUEEZENET_1_0["pool_after"],
    bypass="none",
    dropout=CLASSIFIER_DROPOUT,
    **head,
):
    """Builds a SqueezeNet.

    Args:
        fire_modules: The Fire table, one `{"squeeze", "expand1x1", "expand3x3"}` dict (or
            `(s1x1, e1x1, e3x3)` tuple) per module; each must squeeze: `s1x1 < e1x1 + e3x3`.
        stem_filters: Filters of the stem convolution (conv1).
        stem_kernel: Kernel size of the stride-2, unpadded stem convolution.
        pool_after: Positions of the 3x3/2 ceil-mode max pools: 0 is after the stem, `n`
            after the n-th Fire module.
        bypass: `"none"`, `"simple"` (identity shortcut around every Fire module whose input
            and output widths match) or `"complex"` (also a 1x1-conv shortcut around the
            others), the paper's Section 6.
        include_top: Whether to include the convolutional classifier.
        pooling: Global pooling for `include_top=False` (`None`, `"avg"`, `"max"`); with the
            top, `"max"` replaces its final average pool.
        classifier_activation: Activation of the classifier (`None` returns the scores).
        dropout: Dropout before the classifier convolution (0.5 in the paper).

    Returns:
        A `keras.Model`.
    """
    fires = _fire_rows(fire_modules)
    check_positive_int("stem_filters", stem_filters)
    check_positive_int("stem_kernel", stem_kernel)
    check_int_sequence("pool_after", pool_after, minimum=0)
    if list(pool_after) != sorted(set(pool_after)) or pool_after[-1] > len(fires):
        raise ValueError(
            f"`pool_after` must be increasing positions in [0, {len(fires)}] (0: after the stem, "
            f"n: after the n-th Fire module), received pool_after={pool_after!r}"
        )
    check_choice("bypass", bypass, ("none", "simple", "complex"))

    def features(x):
        x = layers.Conv2D(stem_filters, stem_kernel, strides=STEM_STRIDE,
                          kernel_initializer=CONV_INITIALIZER, name="stem_conv")(x)
        x = layers.Activation("relu", name="stem_relu")(x)
        for position in range(len(fires) + 1):
            if position in pool_after:
                x = CeilModeMaxPooling2D(POOL_SIZE, POOL_STRIDE,
                                         name=f"pool{pool_after.index(position) + 1}")(x)
            if position < len(fires):
                x = fire_module(x, *fires[position], bypass=bypass,
                                name=f"fire{position + FIRST_FIRE_INDEX}")
        return x

    return build_classifier(features, min_size=_min_input_size(stem_kernel, len(pool_after)),
                            dropout=dropout, top_fn=squeezenet_top, **head)


__all__ = ["SqueezeNet"] + register_variants(
    SqueezeNet,
    VARIANTS,
    family="squeezenet",
    paper=PAPER,
    namespace=globals(),
)
