"""The shared convolution -> batch norm -> activation helper used by every family."""

from keras import layers

from keras_cnn.layers import activations
from keras_cnn.layers.batch_norm import BatchNormalization
from keras_cnn.layers.grouped_conv import GroupedConv2D

# torchvision/timm initialise convolutions with Kaiming-normal over fan-out; matching it keeps
# the training recipes' learning rates meaningful across the two ecosystems.
CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
# PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here); the reference weights and
# the Bag-of-Tricks recipes assume them.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

PADDING_MODES = ("symmetric", "same", "valid")


def pad_and_conv_padding(x, kernel_size, strides, dilation, padding, name):
    """Applies the explicit padding a PyTorch-style convolution needs.

    Keras' `padding="same"` pads asymmetrically (more at the bottom/right) when a
    strided convolution meets an even input, while PyTorch/timm pad `k // 2` on every
    side. Ported weights only give identical outputs with identical padding, so
    `"symmetric"` pads explicitly whenever the two conventions differ.

    Returns:
        The (possibly padded) tensor and the `padding` argument for the conv layer.
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"`padding` must be one of {PADDING_MODES}, received padding={padding!r}")
    if padding != "symmetric":
        return x, padding
    effective = dilation * (kernel_size - 1)
    if effective == 0:
        return x, "valid"
    if strides == 1 and effective % 2 == 0:
        return x, "same"  # stride 1 and odd kernel: "same" is already symmetric
    x = layers.ZeroPadding2D(effective // 2, name=f"{name}_pad")(x)
    return x, "valid"


def conv_bn_act(
    x,
    filters,
    kernel_size,
    *,
    strides=1,
    groups=1,
    dilation=1,
    padding="symmetric",
    use_bias=False,
    norm=True,
    activation="relu",
    zero_gamma=False,
    bn_momentum=BN_MOMENTUM,
    bn_epsilon=BN_EPSILON,
    name,
):
    """Convolution, optional batch normalisation, optional activation.

    Layers are named `f"{name}_conv"`, `f"{name}_bn"`, `f"{name}_{activation}"` (and
    `f"{name}_pad"` when explicit padding is needed), the keras.applications convention.

    Args:
        x: Input tensor, channels last.
        filters: Number of output channels.
        kernel_size: Square kernel size.
        strides: Convolution stride.
        groups: Number of groups (`filters` and input channels must divide by it);
            `groups == channels == filters` is a depthwise convolution.
        dilation: Dilation rate.
        padding: `"symmetric"` (PyTorch convention, `k // 2` on each side), `"same"`
            (TensorFlow convention) or `"valid"`.
        use_bias: Whether the convolution has a bias (pointless before batch norm).
        norm: Whether to apply batch normalisation.
        activation: Activation name or `None`.
        zero_gamma: Initialise the batch-norm scale to 0 (Bag of Tricks: the residual
            branch then starts as the identity).
        bn_momentum: Batch-norm moving-average momentum.
        bn_epsilon: Batch-norm epsilon.
        name: Prefix for the layer names.

    Returns:
        Output tensor.
    """
    x, conv_padding = pad_and_conv_padding(x, kernel_size, strides, dilation, padding, name)
    # Keras' Conv2D detours grouped convolutions through XLA on TensorFlow (slow on CPU).
    conv = GroupedConv2D if groups > 1 else layers.Conv2D
    x = conv(
        filters,
        kernel_size,
        strides=strides,
        padding=conv_padding,
        dilation_rate=dilation,
        groups=groups,
        use_bias=use_bias,
        kernel_initializer=CONV_INITIALIZER,
        name=f"{name}_conv",
    )(x)
    if norm:
        x = BatchNormalization(
            momentum=bn_momentum,
            epsilon=bn_epsilon,
            gamma_initializer="zeros" if zero_gamma else "ones",
            name=f"{name}_bn",
        )(x)
    if activation is not None:
        act_name = activation if isinstance(activation, str) else "act"
        x = layers.Activation(activations.get(activation), name=f"{name}_{act_name}")(x)
    return x
