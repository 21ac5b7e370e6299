"""Squeeze-and-excitation (Hu et al., 2018, "Squeeze-and-Excitation Networks").

SE is a drop-in channel re-weighting that works on any feature map, so it is a block
function rather than part of any one architecture: ResNets, Inception modules and
MBConv blocks all call this same function through their `se_ratio` arguments.
"""

from keras import layers

from keras_cnn.layers import activations
from keras_cnn.layers.conv_bn_act import CONV_INITIALIZER


def make_divisible(value, divisor=8, min_value=None, round_limit=0.9):
    """Rounds a channel count to a multiple of `divisor` (the MobileNet/timm rule).

    Rounding never goes below `round_limit * value`, so a width is not cut by more
    than 10 % by default; `round_limit=0` only enforces the minimum.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def squeeze_excite(x, reduced_filters, *, activation="relu", gate="sigmoid", name):
    """Squeeze (global pool) -> reduce (1x1) -> expand (1x1) -> gate -> rescale.

    Layers are named `f"{name}_squeeze"`, `_reduce`, `_expand`, `_excite`.

    Args:
        x: Input feature map, channels last.
        reduced_filters: Channels of the bottleneck (e.g. `channels / 16` in SENet,
            `block_input_channels * 0.25` in EfficientNet).
        activation: Activation of the bottleneck.
        gate: Gating activation.
        name: Prefix for the layer names.

    Returns:
        `x` rescaled channel-wise.
    """
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Conv2D(
        reduced_filters,
        1,
        activation=activations.get(activation),
        kernel_initializer=CONV_INITIALIZER,
        name=f"{name}_reduce",
    )(s)
    s = layers.Conv2D(
        channels, 1, activation=gate, kernel_initializer=CONV_INITIALIZER, name=f"{name}_expand"
    )(s)
    return layers.Multiply(name=f"{name}_excite")([x, s])
