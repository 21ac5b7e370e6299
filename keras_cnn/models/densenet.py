"""The DenseNet family: DenseNet, DenseNet-B, -C and -BC for ImageNet and CIFAR, from one
configurable builder.

Reference: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.

Each dense layer sees the concatenation of the block input and of every earlier layer's
`growth_rate` new feature maps. Layers are pre-activation (BN-ReLU-Conv); DenseNet-B adds a
1x1 bottleneck to `bn_size * growth_rate` channels before each 3x3 conv, DenseNet-C keeps
`floor(compression * channels)` channels in each transition. Every name is a row of
`VARIANTS`; layer names follow keras.applications (`conv2_block1_1_conv`, `pool2_conv`, `bn`)
so its ImageNet weights map one to one. Parameter counts equal torchvision's (see
`tests/models/test_param_counts.py`).
"""

import numbers

from keras import layers

from keras_cnn.layers import BatchNormalization, conv_bn_act
from keras_cnn.layers.conv_bn_act import BN_EPSILON, BN_MOMENTUM
from keras_cnn.models.base import (
    build_classifier,
    check_bool,
    check_choice,
    check_int_sequence,
    check_positive_int,
    check_rate,
    family_builder,
)
from keras_cnn.registry import register_variants

BN_SIZE = 4  # DenseNet-B: the bottleneck 1x1 conv outputs 4k channels (paper §3)
COMPRESSION = 0.5  # DenseNet-C: theta = 0.5 in all the paper's C/BC experiments
INIT_FEATURES_PER_GROWTH = 2  # the stem has 2k channels (ImageNet and CIFAR DenseNet-BC)
CIFAR_PLAIN_INIT_FEATURES = 16  # the plain CIFAR DenseNet's first conv (paper §3)
CIFAR_BLOCKS = 3  # CIFAR nets: three dense blocks at 32, 16 and 8 px
# Depth L counts the stem conv, the two transitions and the classifier (4 layers) plus the
# convs of the dense layers: one per plain layer, two per bottleneck layer.
CIFAR_FIXED_LAYERS = 4
STEM_STRIDE = {"imagenet": 4, "cifar": 1}  # 7x7/2 conv + 3x3/2 max pool; one 3x3/1 conv
TRANSITION_STRIDE = 2  # each transition ends in a 2x2/2 average pool

# Dense layers per block (Huang et al., Table 1; torchvision's block_config).
IMAGENET_BLOCKS = {
    121: (6, 12, 24, 16),
    161: (6, 12, 36, 24),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}
IMAGENET_GROWTH_RATE = 32
DENSENET161_GROWTH_RATE = 48  # torchvision's wider DenseNet-161 (k = 48, 96 stem channels)

def cifar_layers_per_block(depth, bottleneck):
    """Dense layers per block of the paper's CIFAR DenseNet of depth `depth` (L).

    Args:
        depth: Total depth L (convs and the classifier).
        bottleneck: Whether the layers are DenseNet-B bottleneck layers (two convs each).

    Returns:
        `(L - 4) / 6` for bottleneck networks, `(L - 4) / 3` for plain ones.

    Raises:
        ValueError: if `depth` does not give a whole number of layers per block.
    """
    convs_per_layer = 2 if bottleneck else 1
    layers_per_block, rest = divmod(depth - CIFAR_FIXED_LAYERS, CIFAR_BLOCKS * convs_per_layer)
    if rest or layers_per_block < 1:
        raise ValueError(
            f"`depth` must be {CIFAR_FIXED_LAYERS} + a positive multiple of "
            f"{CIFAR_BLOCKS * convs_per_layer} (bottleneck={bottleneck}), received depth={depth!r}"
        )
    return layers_per_block


def _imagenet(depth, growth_rate=IMAGENET_GROWTH_RATE):
    return {"block_config": IMAGENET_BLOCKS[depth], "growth_rate": growth_rate,
            "num_init_features": INIT_FEATURES_PER_GROWTH * growth_rate}


def _cifar(depth, growth_rate, *, bc):
    return {
        "block_config": (cifar_layers_per_block(depth, bottleneck=bc),) * CIFAR_BLOCKS,
        "growth_rate": growth_rate,
        "num_init_features": INIT_FEATURES_PER_GROWTH * growth_rate if bc else CIFAR_PLAIN_INIT_FEATURES,
        "bottleneck": bc,
        "compression": COMPRESSION if bc else 1.0,
        "stem": "cifar",
        "default_size": 32,
        "classes": 10,
    }


TV, KA = "torchvision", "keras.applications"

# One row per registered name.
VARIANTS = [
    {"name": "densenet121", "builder_name": "DenseNet121", "config": _imagenet(121),
     "variant": "DenseNet-121 (DenseNet-BC, k=32, ImageNet), as torchvision and "
                "keras.applications.DenseNet121",
     "reference": "torchvision densenet121; keras.applications DenseNet121 without its BN "
                  "statistics", "pretrained": ("imagenet",)},
    {"name": "densenet169", "builder_name": "DenseNet169", "config": _imagenet(169),
     "variant": "DenseNet-169 (DenseNet-BC, k=32, ImageNet), as torchvision and "
                "keras.applications.DenseNet169",
     "reference": "torchvision densenet169; keras.applications DenseNet169 without its BN "
                  "statistics", "pretrained": ("imagenet",)},
    {"name": "densenet201", "builder_name": "DenseNet201", "config": _imagenet(201),
     "variant": "DenseNet-201 (DenseNet-BC, k=32, ImageNet), as torchvision and "
                "keras.applications.DenseNet201",
     "reference": "torchvision densenet201; keras.applications DenseNet201 without its BN "
                  "statistics", "pretrained": ("imagenet",)},
    {"name": "densenet161", "builder_name": "DenseNet161",
     "config": _imagenet(161, DENSENET161_GROWTH_RATE),
     "variant": "DenseNet-161 (DenseNet-BC, k=48, 96-channel stem, ImageNet), as torchvision",
     "reference": f"{TV} densenet161"},
    {"name": "densenet264", "builder_name": "DenseNet264", "config": _imagenet(264),
     "variant": "DenseNet-264 (DenseNet-BC, k=32, blocks (6, 12, 64, 48), ImageNet), the paper's "
                "Table 1 with torchvision's layers",
     "reference": "torchvision's DenseNet class with block_config (6, 12, 64, 48): 33,337,704 as "
                  "lucid's densenet_264; PaddlePaddle's DenseNet264 (33.74M with BN statistics)"},
    {"name": "densenet_bc_100_12", "builder_name": "DenseNetBC100_12",
     "config": _cifar(100, 12, bc=True),
     "variant": "CIFAR DenseNet-BC (L=100, k=12): 3 blocks of 16 bottleneck layers, theta=0.5",
     "reference": "the paper's Table 2 (0.8M); osmr/imgclsmob (769,162)"},
    {"name": "densenet_bc_250_24", "builder_name": "DenseNetBC250_24",
     "config": _cifar(250, 24, bc=True),
     "variant": "CIFAR DenseNet-BC (L=250, k=24): 3 blocks of 41 bottleneck layers, theta=0.5",
     "reference": "the paper's Table 2 (15.3M); osmr/imgclsmob (15,324,406)"},
    {"name": "densenet_40_12", "builder_name": "DenseNet40_12", "config": _cifar(40, 12, bc=False),
     "variant": "CIFAR DenseNet (L=40, k=12): 3 blocks of 12 plain 3x3 layers, no bottleneck, "
                "no compression",
     "reference": "the paper's Table 2 (1.0M)"},
]


def _bn_relu(x, name):
    x = BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _conv(x, filters, kernel_size, drop_rate, name):
    """A bias-free pre-activation conv; the paper follows every conv but the stem's with
    dropout (Huang et al., §4.2)."""
    x = conv_bn_act(x, filters, kernel_size, norm=False, activation=None, name=name)
    if drop_rate:
        x = layers.Dropout(drop_rate, name=f"{name}_dropout")(x)
    return x


def dense_layer(x, growth_rate, *, bottleneck=True, bn_size=BN_SIZE, drop_rate=0.0, name):
    """One dense layer: `growth_rate` new feature maps concatenated to its input.

    Args:
        x: Input tensor (the block input and every earlier layer's features).
        growth_rate: Channels the layer adds (k).
        bottleneck: DenseNet-B: BN-ReLU-1x1 conv to `bn_size * growth_rate` channels before
            the BN-ReLU-3x3 conv.
        bn_size: Bottleneck width in multiples of `growth_rate`.
        drop_rate: Dropout after each conv.
        name: Layer name prefix (`"conv2_block1"`).

    Returns:
        The input with the new features concatenated (`channels + growth_rate`).
    """
    branch = _bn_relu(x, f"{name}_0")
    if bottleneck:
        branch = _conv(branch, bn_size * growth_rate, 1, drop_rate, f"{name}_1")
        branch = _bn_relu(branch, f"{name}_1")
        branch = _conv(branch, growth_rate, 3, drop_rate, f"{name}_2")
    else:
        branch = _conv(branch, growth_rate, 3, drop_rate, f"{name}_1")
    return layers.Concatenate(name=f"{name}_concat")([x, branch])


def transition(x, compression, *, drop_rate=0.0, name):
    """BN-ReLU-1x1 conv to `floor(compression * channels)`, then a 2x2/2 average pool.

    Args:
        x: Output of a dense block.
        compression: theta in (0, 1]; 1 keeps every channel (plain DenseNet).
        drop_rate: Dropout after the conv.
        name: Layer name prefix (`"pool2"`).

    Returns:
        Output tensor at half the resolution.
    """
    filters = int(x.shape[-1] * compression)
    x = _bn_relu(x, name)
    x = _conv(x, filters, 1, drop_rate, name)
    return layers.AveragePooling2D(2, TRANSITION_STRIDE, name=f"{name}_pool")(x)


def densenet_stem(x, num_init_features, stem):
    """The ImageNet stem (7x7/2 conv, BN-ReLU, 3x3/2 max pool) or the CIFAR one (a single
    3x3 conv whose BN-ReLU is the first dense layer's pre-activation)."""
    if stem == "cifar":
        return conv_bn_act(x, num_init_features, 3, norm=False, activation=None, name="conv1")
    x = conv_bn_act(x, num_init_features, 7, strides=2, name="conv1")
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)  # after a ReLU zeros act as -inf padding
    return layers.MaxPooling2D(3, 2, name="pool1")(x)


def _check_compression(compression):
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real) or not (
        0.0 < compression <= 1.0
    ):
        raise ValueError(
            f"`compression` must be a number in (0, 1], received compression={compression!r}"
        )


@family_builder(name="densenet")
def DenseNet(
    block_config,
    growth_rate=IMAGENET_GROWTH_RATE,
    *,
    num_init_features=None,
    bottleneck=True,
    bn_size=BN_SIZE,
    compression=COMPRESSION,
    stem="imagenet",
    drop_rate=0.0,
    dropout=0.0,
    **head,
):
    """Builds any DenseNet: DenseNet, -B (`bottleneck`), -C (`compression < 1`) or -BC.

    Args:
        block_config: Dense layers per block; a transition follows every block but the last.
        growth_rate: Channels each dense layer adds (k).
        num_init_features: Channels of the stem conv; `None` gives `2 * growth_rate`.
        bottleneck: DenseNet-B layers (BN-ReLU-1x1 conv to `bn_size * k`, BN-ReLU-3x3 conv
            to k) instead of a single BN-ReLU-3x3 conv.
        bn_size: Width of the bottleneck in multiples of `growth_rate`.
        compression: theta in (0, 1]: each transition keeps `floor(theta * channels)`
            channels (DenseNet-C for theta < 1).
        stem: `"imagenet"` (7x7/2 conv, BN-ReLU, 3x3/2 max pool) or `"cifar"` (one 3x3
            stride-1 conv, no pool).
        drop_rate: Dropout after every conv of the dense layers and transitions (the paper
            uses 0.2 on CIFAR without data augmentation).
        dropout: Dropout before the classifier.

    Returns:
        A `keras.Model`.
    """
    check_int_sequence("block_config", block_config)
    check_positive_int("growth_rate", growth_rate)
    if num_init_features is None:
        num_init_features = INIT_FEATURES_PER_GROWTH * growth_rate
    check_positive_int("num_init_features", num_init_features)
    check_positive_int("bn_size", bn_size)
    check_bool("bottleneck", bottleneck)
    _check_compression(compression)
    check_choice("stem", stem, tuple(STEM_STRIDE))
    check_rate("drop_rate", drop_rate)

    channels = num_init_features
    for num_layers in block_config[:-1]:
        channels = int((channels + num_layers * growth_rate) * compression)
        if channels < 1:
            raise ValueError(
                f"A transition would keep no channels: compression={compression!r} is too small "
                f"for growth_rate={growth_rate!r}, num_init_features={num_init_features!r}"
            )
    min_size = STEM_STRIDE[stem] * TRANSITION_STRIDE ** (len(block_config) - 1)

    def features(x):
        x = densenet_stem(x, num_init_features, stem)
        for stage, num_layers in enumerate(block_config, start=2):  # keras.applications: conv2..
            for index in range(1, num_layers + 1):
                x = dense_layer(x, growth_rate, bottleneck=bottleneck, bn_size=bn_size,
                                drop_rate=drop_rate, name=f"conv{stage}_block{index}")
            if stage - 1 < len(block_config):
                x = transition(x, compression, drop_rate=drop_rate, name=f"pool{stage}")
        # Pre-activation layers leave the last block's output un-normalised.
        x = BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="bn")(x)
        return layers.Activation("relu", name="relu")(x)

    return build_classifier(features, min_size=min_size, dropout=dropout, **head)


__all__ = ["DenseNet"] + register_variants(
    DenseNet,
    VARIANTS,
    family="densenet",
    paper="Densely Connected Convolutional Networks (Huang et al., 2017)",
    namespace=globals(),
)
