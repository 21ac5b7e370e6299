"""The ResNet family: ResNet v1/v1.5/v2, the Bag-of-Tricks B/C/D tweaks, ResNeXt,
Wide ResNet and SE-ResNet/SE-ResNeXt/SENet-154, from one configurable builder.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
Variants: He et al., "Identity Mappings in Deep Residual Networks" (v2), ECCV 2016;
He et al., "Bag of Tricks for Image Classification with CNNs" (B/C/D), CVPR 2019;
Xie et al., "Aggregated Residual Transformations" (ResNeXt), CVPR 2017;
Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016;
Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.

Every name is a row of `VARIANTS`; the tweaks are flags of `ResNet` and of the one
`residual_block`. Parameter counts equal torchvision/timm (see `tests/models/test_param_counts.py`).
"""


from keras import layers

from keras_cnn.layers import BatchNormalization, DropPath, conv_bn_act, make_divisible, squeeze_excite
from keras_cnn.layers.conv_bn_act import BN_EPSILON, BN_MOMENTUM
from keras_cnn.models.base import (
    build_classifier,
    check_bool,
    check_choice,
    check_int_sequence,
    check_positive_int,
    check_positive_number,
    check_rate,
    family_builder,
)
from keras_cnn.registry import register_variants

BOTTLENECK_EXPANSION = 4  # bottleneck output channels = planes * 4
REFERENCE_BASE_WIDTH = 64  # ResNeXt width per group of the plain ResNet
SE_REDUCTION = 1 / 16  # SENet's r = 16
SE_DIVISOR = 8  # timm rounds SE channels to multiples of 8
# "leaky_relu" is Keras' leaky ReLU with negative slope 0.2: the Meta Pseudo Labels release's WRN
# (`modeling_utils.relu(x, leaky=0.2)`).
ACTIVATIONS = ("relu", "leaky_relu")

# Blocks per stage for each depth (He et al., Table 1; 200 from the v2 paper).
DEPTHS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    154: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
BLOCK_FOR_DEPTH = {18: "basic", 34: "basic"}  # deeper nets use bottlenecks
IMAGENET_PLANES = (64, 128, 256, 512)

# Bag of Tricks §4.1: ResNet-B (stride on the 3x3) is the default here, as in torchvision.
RESNET_V1 = {"stride_in_1x1": True}  # the paper's / keras.applications' original
RESNET_C = {"stem": "deep", "stem_width": 32}
RESNET_D = {**RESNET_C, "avg_down": True}
# keras.applications / TF-slim v2 layout: stride in each stage's last block, biased convs
# where no batch norm follows.
RESNET_V2 = {"preact": True, "preact_bias": True, "stride_position": "last", "strides": (2, 2, 2, 1)}
SE = {"se_ratio": SE_REDUCTION}


def _depth(depth, **extra):
    return {"block": BLOCK_FOR_DEPTH.get(depth, "bottleneck"), "depths": DEPTHS[depth], **extra}


def _resnext(depth, groups, width_per_group, **extra):
    return _depth(depth, groups=groups, base_width=width_per_group, **extra)


def _wrn_cifar(depth, widen_factor):
    blocks_per_stage = (depth - 4) // 6  # WRN-d-k: d = 6n + 4
    return {
        "block": "basic",
        "depths": (blocks_per_stage,) * 3,
        "planes": tuple(16 * widen_factor * 2**i for i in range(3)),
        "strides": (1, 2, 2),
        "stem": "cifar",
        "stem_width": 16,
        "stem_pool": None,
        "preact": True,
        "default_size": 32,
        "classes": 10,
    }


BOT = "Bag of Tricks (He et al., 2019)"
RESNEXT = "ResNeXt (Xie et al., 2017)"
SENET = "SENet (Hu et al., 2018)"
WRN = "Wide ResNet (Zagoruyko & Komodakis, 2016)"
V2 = "Identity Mappings in Deep Residual Networks (He et al., 2016)"
TV, TIMM, KA = "torchvision", "timm", "keras.applications"

# One row per registered name.
VARIANTS = [
    {"name": "resnet18", "builder_name": "ResNet18", "config": _depth(18),
     "variant": "ResNet-18 v1.5 (ResNet-B: stride on the 3x3 conv), as torchvision",
     "reference": "torchvision resnet18"},
    {"name": "resnet34", "builder_name": "ResNet34", "config": _depth(34),
     "variant": "ResNet-34 v1.5 (ResNet-B: stride on the 3x3 conv), as torchvision",
     "reference": "torchvision resnet34"},
    {"name": "resnet50", "builder_name": "ResNet50", "config": _depth(50),
     "variant": "ResNet-50 v1.5 (ResNet-B: stride on the 3x3 conv), as torchvision",
     "reference": "torchvision resnet50"},
    {"name": "resnet101", "builder_name": "ResNet101", "config": _depth(101),
     "variant": "ResNet-101 v1.5 (ResNet-B: stride on the 3x3 conv), as torchvision",
     "reference": "torchvision resnet101"},
    {"name": "resnet152", "builder_name": "ResNet152", "config": _depth(152),
     "variant": "ResNet-152 v1.5 (ResNet-B: stride on the 3x3 conv), as torchvision",
     "reference": "torchvision resnet152"},
    {"name": "resnet200", "builder_name": "ResNet200", "config": _depth(200),
     "variant": "ResNet-200 v1.5 (ResNet-B: stride on the 3x3 conv), as torchvision",
     "reference": "timm resnet200"},
    {"name": "resnet50_v1", "builder_name": "ResNet50V1", "config": _depth(50, **RESNET_V1),
     "variant": "ResNet-50 v1 (stride on the first 1x1 conv), the paper's and "
                "keras.applications.ResNet50's layout",
     "reference": "keras.applications ResNet50 (bias-free convs; same count as torchvision "
                  "resnet50)", "pretrained": ("imagenet",)},
    {"name": "resnet101_v1", "builder_name": "ResNet101V1", "config": _depth(101, **RESNET_V1),
     "variant": "ResNet-101 v1 (stride on the first 1x1 conv), the paper's and "
                "keras.applications.ResNet101's layout",
     "reference": "keras.applications ResNet101 (bias-free convs; same count as torchvision "
                  "resnet101)", "pretrained": ("imagenet",)},
    {"name": "resnet152_v1", "builder_name": "ResNet152V1", "config": _depth(152, **RESNET_V1),
     "variant": "ResNet-152 v1 (stride on the first 1x1 conv), the paper's and "
                "keras.applications.ResNet152's layout",
     "reference": "keras.applications ResNet152 (bias-free convs; same count as torchvision "
                  "resnet152)", "pretrained": ("imagenet",)},
    {"name": "resnet50v2", "builder_name": "ResNet50V2", "config": _depth(50, **RESNET_V2),
     "variant": "ResNet-50 v2 (pre-activation), keras.applications.ResNet50V2's layout",
     "reference": "keras.applications ResNet50V2", "paper": V2, "pretrained": ("imagenet",)},
    {"name": "resnet101v2", "builder_name": "ResNet101V2", "config": _depth(101, **RESNET_V2),
     "variant": "ResNet-101 v2 (pre-activation), keras.applications.ResNet101V2's layout",
     "reference": "keras.applications ResNet101V2", "paper": V2, "pretrained": ("imagenet",)},
    {"name": "resnet152v2", "builder_name": "ResNet152V2", "config": _depth(152, **RESNET_V2),
     "variant": "ResNet-152 v2 (pre-activation), keras.applications.ResNet152V2's layout",
     "reference": "keras.applications ResNet152V2", "paper": V2, "pretrained": ("imagenet",)},
    {"name": "resnet50c", "builder_name": "ResNet50C", "config": _depth(50, **RESNET_C),
     "variant": "ResNet-50-C: deep 3x3 stem (32, 32, 64)", "reference": f"{TIMM} resnet50c",
     "paper": BOT},
    {"name": "resnet18d", "builder_name": "ResNet18D", "config": _depth(18, **RESNET_D),
     "variant": "ResNet-18-D: deep stem + average-pool downsampling shortcut",
     "reference": "timm resnet18d", "paper": BOT},
    {"name": "resnet34d", "builder_name": "ResNet34D", "config": _depth(34, **RESNET_D),
     "variant": "ResNet-34-D: deep stem + average-pool downsampling shortcut",
     "reference": "timm resnet34d", "paper": BOT},
    {"name": "resnet50d", "builder_name": "ResNet50D", "config": _depth(50, **RESNET_D),
     "variant": "ResNet-50-D: deep stem + average-pool downsampling shortcut",
     "reference": "timm resnet50d", "paper": BOT},
    {"name": "resnet101d", "builder_name": "ResNet101D", "config": _depth(101, **RESNET_D),
     "variant": "ResNet-101-D: deep stem + average-pool downsampling shortcut",
     "reference": "timm resnet101d", "paper": BOT},
    {"name": "resnet152d", "builder_name": "ResNet152D", "config": _depth(152, **RESNET_D),
     "variant": "ResNet-152-D: deep stem + average-pool downsampling shortcut",
     "reference": "timm resnet152d", "paper": BOT},
    {"name": "resnet200d", "builder_name": "ResNet200D", "config": _depth(200, **RESNET_D),
     "variant": "ResNet-200-D: deep stem + average-pool downsampling shortcut",
     "reference": "timm resnet200d", "paper": BOT},
    {"name": "resnext50_32x4d", "builder_name": "ResNeXt50_32x4d", "config": _resnext(50, 32, 4),
     "variant": "ResNeXt-50 (32x4d): cardinality 32, width 4 per group", "reference": f"{TV}",
     "paper": RESNEXT},
    {"name": "resnext101_32x4d", "builder_name": "ResNeXt101_32x4d",
     "config": _resnext(101, 32, 4), "variant": "ResNeXt-101 (32x4d)", "reference": f"{TIMM}",
     "paper": RESNEXT},
    {"name": "resnext101_32x8d", "builder_name": "ResNeXt101_32x8d",
     "config": _resnext(101, 32, 8), "variant": "ResNeXt-101 (32x8d)", "reference": f"{TV}",
     "paper": RESNEXT},
    {"name": "resnext101_64x4d", "builder_name": "ResNeXt101_64x4d",
     "config": _resnext(101, 64, 4), "variant": "ResNeXt-101 (64x4d)", "reference": f"{TV}",
     "paper": RESNEXT},
    {"name": "wide_resnet50_2", "builder_name": "WideResNet50_2",
     "config": _resnext(50, 1, 2 * REFERENCE_BASE_WIDTH),
     "variant": "Wide ResNet-50-2: bottleneck 3x3 width doubled", "reference": f"{TV}",
     "paper": WRN},
    {"name": "wide_resnet101_2", "builder_name": "WideResNet101_2",
     "config": _resnext(101, 1, 2 * REFERENCE_BASE_WIDTH),
     "variant": "Wide ResNet-101-2: bottleneck 3x3 width doubled", "reference": f"{TV}",
     "paper": WRN},
    {"name": "wrn_28_2", "builder_name": "WRN28_2", "config": _wrn_cifar(28, 2),
     "variant": "CIFAR Wide ResNet WRN-28-2 (pre-activation basic blocks), as used by Meta "
                "Pseudo Labels / FixMatch",
     "reference": "the WRN paper", "paper": WRN},
    {"name": "wrn_28_10", "builder_name": "WRN28_10", "config": _wrn_cifar(28, 10),
     "variant": "CIFAR Wide ResNet WRN-28-10 (pre-activation basic blocks), as used by Meta "
                "Pseudo Labels / FixMatch",
     "reference": "the WRN paper", "paper": WRN},
    {"name": "seresnet18", "builder_name": "SEResNet18", "config": _depth(18, **SE),
     "variant": "SE-ResNet-18: ResNet-18 v1.5 with SE (r=16) in every block",
     "reference": "timm seresnet18", "paper": SENET},
    {"name": "seresnet34", "builder_name": "SEResNet34", "config": _depth(34, **SE),
     "variant": "SE-ResNet-34: ResNet-34 v1.5 with SE (r=16) in every block",
     "reference": "timm seresnet34", "paper": SENET},
    {"name": "seresnet50", "builder_name": "SEResNet50", "config": _depth(50, **SE),
     "variant": "SE-ResNet-50: ResNet-50 v1.5 with SE (r=16) in every block",
     "reference": "timm seresnet50", "paper": SENET},
    {"name": "seresnet101", "builder_name": "SEResNet101", "config": _depth(101, **SE),
     "variant": "SE-ResNet-101: ResNet-101 v1.5 with SE (r=16) in every block",
     "reference": "timm seresnet101", "paper": SENET},
    {"name": "seresnet152", "builder_name": "SEResNet152", "config": _depth(152, **SE),
     "variant": "SE-ResNet-152: ResNet-152 v1.5 with SE (r=16) in every block",
     "reference": "timm seresnet152", "paper": SENET},
    {"name": "seresnext50_32x4d", "builder_name": "SEResNeXt50_32x4d",
     "config": _resnext(50, 32, 4, **SE), "variant": "SE-ResNeXt-50 (32x4d)",
     "reference": f"{TIMM}", "paper": SENET},
    {"name": "seresnext101_32x4d", "builder_name": "SEResNeXt101_32x4d",
     "config": _resnext(101, 32, 4, **SE), "variant": "SE-ResNeXt-101 (32x4d)",
     "reference": f"{TIMM}", "paper": SENET},
    {"name": "senet154", "builder_name": "SENet154",
     "config": _resnext(154, 64, 4, **SE, stem="deep", stem_width=64, stem_pool="max_ceil",
                        reduce_first=2, down_kernel_size=3, dropout=0.2),
     "variant": "SENet-154: SE-ResNeXt-152 (64x4d) with deep stem, halved first 1x1 and 3x3 "
                "downsampling", "reference": f"{TIMM} legacy_senet154", "paper": SENET},
]


def residual_block(
    x,
    planes,
    *,
    bottleneck=True,
    stride=1,
    groups=1,
    base_width=REFERENCE_BASE_WIDTH,
    reduce_first=1,
    stride_in_1x1=False,
    avg_down=False,
    down_kernel_size=1,
    preact=False,
    preact_bias=False,
    se_ratio=0.0,
    block_dropout=0.0,
    drop_path_rate=0.0,
    zero_gamma=False,
    activation="relu",
    bn_momentum=BN_MOMENTUM,
    bn_epsilon=BN_EPSILON,
    name,
):
    """One residual block; every ResNet-family tweak is a flag here.

    Args:
        x: Input tensor.
        planes: Stage width; the block outputs `planes * 4` channels (bottleneck) or
            `planes` (basic).
        bottleneck: 1x1-3x3-1x1 bottleneck (True) or two 3x3 convs (False).
        stride: Block stride.
        groups: Cardinality of the 3x3 conv (ResNeXt).
        base_width: Width per group; the 3x3 conv has `planes * base_width / 64 * groups`
            channels (Wide ResNet doubles `base_width`).
        reduce_first: Divides the width of the first conv (SENet-154 uses 2).
        stride_in_1x1: Put the stride on the first 1x1 conv (v1) instead of the 3x3 (v1.5).
        avg_down: ResNet-D shortcut: 2x2 average pool, then a stride-1 1x1 conv.
        down_kernel_size: Kernel of a strided projection shortcut (SENet-154 uses 3).
        preact: Pre-activation (v2) block: BN-ReLU before each conv.
        preact_bias: In pre-activation blocks, give the convs that no BN follows a bias
            (keras.applications' ResNetV2 does).
        se_ratio: Squeeze-and-excitation reduction ratio (0 disables SE).
        block_dropout: Dropout between the convs (Wide ResNet).
        drop_path_rate: Stochastic-depth rate of this block.
        zero_gamma: Initialise the last BN scale of the branch to zero.
        activation: Activation of the block (`"relu"`; `"leaky_relu"` is Keras' slope 0.2,
            the Meta Pseudo Labels release's WRN).
        bn_momentum: Batch-norm moving-average momentum.
        bn_epsilon: Batch-norm epsilon.
        name: Block name prefix (`"stage1_block1"`).

    Returns:
        Output tensor.
    """
    out_channels = planes * (BOTTLENECK_EXPANSION if bottleneck else 1)
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}
    if bottleneck:
        width = int(planes * base_width / REFERENCE_BASE_WIDTH) * groups
        convs = [
            (width // reduce_first, 1, stride if stride_in_1x1 else 1, 1),
            (width, 3, 1 if stride_in_1x1 else stride, groups),
            (out_channels, 1, 1, 1),
        ]
    else:
        convs = [(planes // reduce_first, 3, stride, 1), (out_channels, 3, 1, 1)]

    branch = x
    if preact:
        branch = BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=f"{name}_preact_bn")(x)
        branch = layers.Activation(activation, name=f"{name}_preact_relu")(branch)

    if x.shape[-1] != out_channels or (stride != 1 and not preact):
        if preact:
            shortcut = conv_bn_act(branch, out_channels, 1, strides=stride, norm=False,
                                   activation=None, use_bias=preact_bias, name=f"{name}_0")
        elif avg_down:
            shortcut = x
            if stride != 1:
                # padding="same" averages only real pixels: timm's ceil_mode=True and
                # count_include_pad=False.
                shortcut = layers.AveragePooling2D(stride, stride, padding="same",
                                                   name=f"{name}_0_pool")(x)
            shortcut = conv_bn_act(shortcut, out_channels, 1, activation=None, name=f"{name}_0", **bn)
        else:
            kernel = down_kernel_size if stride != 1 else 1
            shortcut = conv_bn_act(x, out_channels, kernel, strides=stride, activation=None,
                                   name=f"{name}_0", **bn)
    elif stride != 1:
        shortcut = layers.MaxPooling2D(1, stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = x

    for index, (filters, kernel, conv_stride, conv_groups) in enumerate(convs, start=1):
        last = index == len(convs)
        if last and block_dropout:
            branch = layers.Dropout(block_dropout, name=f"{name}_dropout")(branch)
        branch = conv_bn_act(
            branch,
            filters,
            kernel,
            strides=conv_stride,
            groups=conv_groups,
            norm=not (last and preact),
            activation=None if last else activation,
            use_bias=last and preact and preact_bias,
            zero_gamma=last and zero_gamma,
            name=f"{name}_{index}",
            **bn,
        )
    if se_ratio:
        reduced = make_divisible(out_channels * se_ratio, SE_DIVISOR, round_limit=0.0)
        branch = squeeze_excite(branch, reduced, name=f"{name}_se")
    if drop_path_rate:
        branch = DropPath(drop_path_rate, name=f"{name}_drop_path")(branch)
    x = layers.Add(name=f"{name}_add")([shortcut, branch])
    if not preact:
        x = layers.Activation(activation, name=f"{name}_out")(x)
    return x


def resnet_stem(x, *, stem="default", stem_width=64, stem_pool="max", preact=False,
                preact_bias=False, activation="relu", bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON):
    """The stem: 7x7 conv (`"default"`), three 3x3 convs (`"deep"`, ResNet-C), or one
    stride-1 3x3 conv (`"cifar"`), followed by the optional 3x3 max pool.

    In a pre-activation network the last stem conv has no BN/ReLU: the first block's
    pre-activation supplies them.
    """
    if stem == "deep":
        specs = [(stem_width, 3, 2), (stem_width, 3, 1), (2 * stem_width, 3, 1)]
    elif stem == "cifar":
        specs = [(stem_width, 3, 1)]
    else:
        specs = [(stem_width, 7, 2)]
    for index, (filters, kernel, stride) in enumerate(specs, start=1):
        plain = preact and index == len(specs)
        x = conv_bn_act(
            x,
            filters,
            kernel,
            strides=stride,
            norm=not plain,
            activation=None if plain else activation,
            use_bias=plain and preact_bias,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            name="stem" if len(specs) == 1 else f"stem_{index}",
        )
    if stem_pool == "max":
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    elif stem_pool == "max_ceil":
        # Caffe's ceil_mode pooling: one extra row/column at the end (inputs are >= 0).
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    return x


@family_builder(name="resnet")
def ResNet(
    depths,
    block="bottleneck",
    *,
    planes=IMAGENET_PLANES,
    strides=(1, 2, 2, 2),
    stride_position="first",
    stem="default",
    stem_width=64,
    stem_pool="max",
    groups=1,
    base_width=REFERENCE_BASE_WIDTH,
    reduce_first=1,
    stride_in_1x1=False,
    avg_down=False,
    down_kernel_size=1,
    preact=False,
    preact_bias=False,
    se_ratio=0.0,
    block_dropout=0.0,
    zero_gamma=False,
    activation="relu",
    bn_momentum=BN_MOMENTUM,
    bn_epsilon=BN_EPSILON,
    drop_path_rate=0.0,
    dropout=0.0,
    **head,
):
    """Builds any ResNet-family network.

    Args:
        depths: Number of blocks per stage.
        block: `"basic"` (two 3x3 convs) or `"bottleneck"` (1x1-3x3-1x1, 4x expansion).
        planes: Width of each stage.
        strides: Stride of each stage.
        stride_position: Which block of a stage carries the stride: `"first"` (the paper)
            or `"last"` (keras.applications' ResNetV2).
        stem: `"default"` (7x7/2 conv), `"deep"` (three 3x3 convs, ResNet-C) or `"cifar"`
            (one stride-1 3x3 conv).
        stem_width: Channels of the stem (the deep stem ends with twice this).
        stem_pool: `"max"` (3x3/2, padding 1), `"max_ceil"` (3x3/2, ceil mode, as Caffe
            SENets) or `None`.
        groups: Cardinality (ResNeXt).
        base_width: Width per group; 64 for ResNet, 128 for Wide ResNet-50-2.
        reduce_first: Width divisor of each block's first conv (2 in SENet-154).
        stride_in_1x1: ResNet v1 (stride on the first 1x1) instead of v1.5 (on the 3x3).
        avg_down: ResNet-D average-pool downsampling in the shortcut.
        down_kernel_size: Kernel size of strided projection shortcuts.
        preact: Pre-activation (v2) blocks, with a final BN-ReLU.
        preact_bias: Biases on the pre-activation convs that no BN follows.
        se_ratio: Squeeze-and-excitation ratio of every block (`1/16` in SENet); 0 disables.
        block_dropout: Dropout inside each block (Wide ResNet).
        zero_gamma: Initialise the last BN scale of every residual branch to zero.
        activation: Activation everywhere in the network (`"relu"`; `"leaky_relu"`, Keras'
            negative slope 0.2, for the Meta Pseudo Labels release's WRN-28).
        bn_momentum: Batch-norm momentum (PyTorch's 0.9; the TF references use 0.99).
        bn_epsilon: Batch-norm epsilon (PyTorch's 1e-5; the TF references use 1e-3).
        drop_path_rate: Stochastic depth of the last block; earlier blocks get a linearly
            smaller rate (first block 0).
        dropout: Dropout before the classifier.

    Returns:
        A `keras.Model`.
    """
    check_choice("block", block, ("basic", "bottleneck"))
    check_int_sequence("depths", depths)
    check_int_sequence("planes", planes, length=len(depths))
    check_int_sequence("strides", strides, length=len(depths))
    check_choice("stride_position", stride_position, ("first", "last"))
    check_choice("stem", stem, ("default", "deep", "cifar"))
    check_choice("stem_pool", stem_pool, ("max", "max_ceil", None))
    for argument, value in (("stem_width", stem_width), ("groups", groups),
                            ("base_width", base_width), ("reduce_first", reduce_first),
                            ("down_kernel_size", down_kernel_size)):
        check_positive_int(argument, value)
    for argument, value in (("se_ratio", se_ratio), ("block_dropout", block_dropout),
                            ("drop_path_rate", drop_path_rate), ("bn_momentum", bn_momentum)):
        check_rate(argument, value)
    check_positive_number("bn_epsilon", bn_epsilon)
    check_choice("activation", activation, ACTIVATIONS)
    for argument, value in (("stride_in_1x1", stride_in_1x1), ("avg_down", avg_down),
                            ("preact", preact), ("preact_bias", preact_bias),
                            ("zero_gamma", zero_gamma)):
        check_bool(argument, value)
    bottleneck = block == "bottleneck"
    if not bottleneck and (groups != 1 or base_width != REFERENCE_BASE_WIDTH):
        raise ValueError(
            "Basic blocks support only groups=1 and base_width=64 (use block='bottleneck' for "
            f"ResNeXt/Wide ResNet), received groups={groups!r}, base_width={base_width!r}"
        )
    for stage_planes in planes:
        width = int(stage_planes * base_width / REFERENCE_BASE_WIDTH) * groups if bottleneck else stage_planes
        if width // reduce_first < 1 or (width // reduce_first) % groups:
            raise ValueError(
                f"A stage of {stage_planes} planes gives a first-conv width of "
                f"{width // reduce_first}, which must be a positive multiple of groups; received "
                f"groups={groups!r}, base_width={base_width!r}, reduce_first={reduce_first!r}"
            )
    if zero_gamma and preact:
        raise ValueError(
            "`zero_gamma` needs post-activation blocks (a pre-activation branch ends in a conv, "
            "not a BN); received zero_gamma=True with preact=True"
        )
    if preact and (avg_down or stride_in_1x1):
        raise ValueError(
            "Pre-activation blocks support neither `avg_down` nor `stride_in_1x1`; received "
            f"avg_down={avg_down!r}, stride_in_1x1={stride_in_1x1!r} with preact=True"
        )

    stem_stride = (1 if stem == "cifar" else 2) * (1 if stem_pool is None else 2)
    total_stride = stem_stride
    for stride in strides:
        total_stride *= stride

    def features(x):
        x = resnet_stem(x, stem=stem, stem_width=stem_width, stem_pool=stem_pool,
                        preact=preact, preact_bias=preact_bias, activation=activation,
                        bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
        total_blocks, index = sum(depths), 0
        for stage, (depth, stage_planes, stage_stride) in enumerate(
            zip(depths, planes, strides), start=1
        ):
            stride_block = 0 if stride_position == "first" else depth - 1
            for block_index in range(depth):
                x = residual_block(
                    x,
                    stage_planes,
                    bottleneck=bottleneck,
                    stride=stage_stride if block_index == stride_block else 1,
                    groups=groups,
                    base_width=base_width,
                    reduce_first=reduce_first,
                    stride_in_1x1=stride_in_1x1,
                    avg_down=avg_down,
                    down_kernel_size=down_kernel_size,
                    preact=preact,
                    preact_bias=preact_bias,
                    se_ratio=se_ratio,
                    block_dropout=block_dropout,
                    drop_path_rate=drop_path_rate * index / max(total_blocks - 1, 1),
                    zero_gamma=zero_gamma,
                    activation=activation,
                    bn_momentum=bn_momentum,
                    bn_epsilon=bn_epsilon,
                    name=f"stage{stage}_block{block_index + 1}",
                )
                index += 1
        if preact:
            x = BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name="post_bn")(x)
            x = layers.Activation(activation, name="post_relu")(x)
        return x

    return build_classifier(features, min_size=total_stride, dropout=dropout, **head)


__all__ = ["ResNet"] + register_variants(
    ResNet,
    VARIANTS,
    family="resnet",
    paper="Deep Residual Learning for Image Recognition (He et al., 2016)",
    namespace=globals(),
)
