"""GoogLeNet (Inception-v1): the paper's network, torchvision's batch-norm version and an
SE-Inception variant, from one configurable builder.

Reference: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
Variant: Hu et al., "Squeeze-and-Excitation Networks" (SE-Inception), CVPR 2018.

The nine inception modules are the rows of `INCEPTION_V1` (the paper's Table 1); the
differences between the paper and torchvision (batch norm or conv biases, a 3x3 or 5x5 conv
in the "5x5" branch, LRN in the stem, the kernel of the last max pool, how the auxiliary
heads pool) are flags of the generic builder `GoogLeNetFamily` (the registry name
`googlenet`, torchvision's network, takes the CamelCase `GoogLeNet`). Max pools use ceil mode
(`keras_cnn.layers.CeilModeMaxPooling2D`), as in Caffe and torchvision; the auxiliary heads
pool to 4x4 with `keras_cnn.layers.GridAveragePooling2D`. With `include_top` and
`aux_logits`, the two auxiliary classifiers make the model an `AuxiliaryOutputsModel`:
`model(x, training=True)` returns `(main, aux1, aux2)` and `model.fit` adds each aux loss
with weight 0.3; inference returns `main` only.
"""

from typing import NamedTuple

from keras import layers

from keras_cnn.layers import (
    CeilModeMaxPooling2D,
    GridAveragePooling2D,
    LocalResponseNormalization,
    conv_bn_act,
    squeeze_excite,
)
from keras_cnn.layers.conv_bn_act import BN_EPSILON
from keras_cnn.layers.pooling import GRID_WINDOWS
from keras_cnn.models.base import (
    AUX_LOSS_WEIGHT,
    build_classifier,
    check_bool,
    check_choice,
    check_positive_number,
    check_rate,
    family_builder,
    head_dtype,
)
from keras_cnn.registry import register_variants


class InceptionSpec(NamedTuple):
    """One inception module: the output widths of its four branches (paper, Table 1)."""

    name: str
    conv1x1: int  # "#1x1"
    reduce3x3: int  # "#3x3 reduce"
    conv3x3: int  # "#3x3"
    reduce5x5: int  # "#5x5 reduce"
    conv5x5: int  # "#5x5"
    pool_proj: int  # "pool proj"
    pool_before: bool = False  # a stride-2 max pool precedes the module
    aux: bool = False  # an auxiliary classifier reads the module's output


# Going Deeper with Convolutions, Table 1 (identical in torchvision).
INCEPTION_V1 = (
    InceptionSpec("3a", conv1x1=64, reduce3x3=96, conv3x3=128, reduce5x5=16, conv5x5=32, pool_proj=32),
    InceptionSpec("3b", conv1x1=128, reduce3x3=128, conv3x3=192, reduce5x5=32, conv5x5=96, pool_proj=64),
    InceptionSpec("4a", conv1x1=192, reduce3x3=96, conv3x3=208, reduce5x5=16, conv5x5=48, pool_proj=64,
                  pool_before=True, aux=True),
    InceptionSpec("4b", conv1x1=160, reduce3x3=112, conv3x3=224, reduce5x5=24, conv5x5=64, pool_proj=64),
    InceptionSpec("4c", conv1x1=128, reduce3x3=128, conv3x3=256, reduce5x5=24, conv5x5=64, pool_proj=64),
    InceptionSpec("4d", conv1x1=112, reduce3x3=144, conv3x3=288, reduce5x5=32, conv5x5=64, pool_proj=64,
                  aux=True),
    InceptionSpec("4e", conv1x1=256, reduce3x3=160, conv3x3=320, reduce5x5=32, conv5x5=128, pool_proj=128),
    InceptionSpec("5a", conv1x1=256, reduce3x3=160, conv3x3=320, reduce5x5=32, conv5x5=128, pool_proj=128,
                  pool_before=True),
    InceptionSpec("5b", conv1x1=384, reduce3x3=192, conv3x3=384, reduce5x5=48, conv5x5=128, pool_proj=128),
)

# Stem: conv 7x7/2 (64) -> max pool -> conv 1x1 (64) -> conv 3x3 (192) -> max pool.
STEM_WIDTH = 64
STEM_KERNEL = 7
STEM_STRIDE = 2
STEM_OUT_WIDTH = 192
POOL_STRIDE = 2  # every downsampling max pool; the stem, 3b and 4e are each followed by one
TOTAL_STRIDE = 32
BRANCH_POOL_SIZE = 3  # the stride-1 max pool of each module's fourth branch
PAPER_POOL_SIZES = (3, 3, 3, 3)  # pool1, pool2, pool3 (before 4a), pool4 (before 5a)
TORCHVISION_POOL_SIZES = (3, 3, 3, 2)  # torchvision's maxpool4 is 2x2/2

# Caffe's LRN as used in the paper's stem (bvlc_googlenet: local_size 5, alpha 1e-4, beta 0.75).
LRN_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75

# Auxiliary classifier (paper §5): average pool to 4x4, 1x1 conv (128), FC 1024, dropout, FC.
AUX_GRID = 4
AUX_FILTERS = 128
AUX_UNITS = 1024
AUX_POOLS = GRID_WINDOWS  # "adaptive" (torchvision) or "overlapping" (the paper's 5x5/3)

PAPER_DROPOUT = 0.4
TORCHVISION_DROPOUT = 0.2
AUX_DROPOUT = 0.7
TORCHVISION_BN_EPSILON = 1e-3  # torchvision's BasicConv2d
SE_REDUCTION = 1 / 16  # SENet's r = 16


def conv_unit(x, filters, kernel_size, *, strides=1, norm=True, bn_epsilon=BN_EPSILON, name):
    """Conv -> BN -> ReLU (torchvision's BasicConv2d) or, without `norm`, biased conv -> ReLU
    (the paper's)."""
    return conv_bn_act(x, filters, kernel_size, strides=strides, norm=norm, use_bias=not norm,
                       bn_epsilon=bn_epsilon, name=name)


def inception_module(
    x,
    conv1x1,
    reduce3x3,
    conv3x3,
    reduce5x5,
    conv5x5,
    pool_proj,
    *,
    branch_kernel=5,
    norm=True,
    bn_epsilon=BN_EPSILON,
    se_ratio=0.0,
    name,
):
    """One inception module: 1x1, (1x1 ->) 3x3, (1x1 ->) "5x5" and 3x3 max pool (-> 1x1)
    branches, concatenated along the channels.

    Args:
        x: Input tensor.
        conv1x1: Filters of the 1x1 branch.
        reduce3x3: Filters of the 1x1 reduction before the 3x3 conv; 0 omits it (the
            paper's "naive" module, Figure 2a).
        conv3x3: Filters of the 3x3 conv.
        reduce5x5: Filters of the 1x1 reduction before the "5x5" conv; 0 omits it.
        conv5x5: Filters of the "5x5" conv.
        pool_proj: Filters of the 1x1 projection after the max pool; 0 omits it (the
            pooled input then passes through, as in the naive module).
        branch_kernel: Kernel of the "5x5" branch (5 in the paper, 3 in torchvision).
        norm: Batch norm after each conv (torchvision) instead of conv biases (paper).
        bn_epsilon: Batch-norm epsilon.
        se_ratio: Squeeze-and-excitation ratio on the module output (SE-Inception); 0 disables.
        name: Module name prefix (`"inception3a"`).

    Returns:
        Output tensor with `conv1x1 + conv3x3 + conv5x5 + (pool_proj or input)` channels.
    """

    def conv(tensor, filters, kernel, part):
        return conv_unit(tensor, filters, kernel, norm=norm, bn_epsilon=bn_epsilon, name=f"{name}_{part}")

    branch1 = conv(x, conv1x1, 1, "branch1")
    branch2 = conv(x, reduce3x3, 1, "branch2_reduce") if reduce3x3 else x
    branch2 = conv(branch2, conv3x3, 3, "branch2")
    branch3 = conv(x, reduce5x5, 1, "branch3_reduce") if reduce5x5 else x
    branch3 = conv(branch3, conv5x5, branch_kernel, "branch3")
    branch4 = layers.MaxPooling2D(BRANCH_POOL_SIZE, 1, padding="same", name=f"{name}_branch4_pool")(x)
    if pool_proj:
        branch4 = conv(branch4, pool_proj, 1, "branch4")
    x = layers.Concatenate(name=f"{name}_concat")([branch1, branch2, branch3, branch4])
    if se_ratio:
        x = squeeze_excite(x, max(1, round(x.shape[-1] * se_ratio)), name=f"{name}_se")
    return x


def auxiliary_classifier(
    x,
    *,
    classes,
    classifier_activation,
    dropout=AUX_DROPOUT,
    pool="adaptive",
    norm=True,
    bn_epsilon=BN_EPSILON,
    name,
):
    """The auxiliary classifier: pool to 4x4 -> 1x1 conv (128) -> FC 1024 + ReLU -> dropout
    -> FC `classes`.

    Args:
        x: Output of the inception module it reads (4a or 4d).
        classes: Number of classes.
        classifier_activation: Activation of the `f"{name}_predictions"` layer.
        dropout: Dropout rate before the last layer (0.7 in the paper).
        pool: `GridAveragePooling2D` windows: `"adaptive"` (torchvision) or `"overlapping"`
            (the paper's 5x5/3 at 224 px).
        norm: Batch norm after the conv (torchvision) instead of a conv bias (paper).
        bn_epsilon: Batch-norm epsilon.
        name: Prefix (`"aux1"`).

    Returns:
        The auxiliary prediction tensor.
    """
    x = GridAveragePooling2D(AUX_GRID, windows=pool, name=f"{name}_pool")(x)
    x = conv_unit(x, AUX_FILTERS, 1, norm=norm, bn_epsilon=bn_epsilon, name=f"{name}_proj")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(AUX_UNITS, activation="relu", name=f"{name}_fc")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                        name=f"{name}_predictions")(x)


TORCHVISION = {
    "norm": True,
    "bn_epsilon": TORCHVISION_BN_EPSILON,
    "branch_kernel": 3,
    "lrn": False,
    "max_pool_sizes": TORCHVISION_POOL_SIZES,
    "aux_pool": "adaptive",
    "dropout": TORCHVISION_DROPOUT,
}
PAPER = {
    "norm": False,
    "branch_kernel": 5,
    "lrn": True,
    "max_pool_sizes": PAPER_POOL_SIZES,
    "aux_pool": "overlapping",
    "dropout": PAPER_DROPOUT,
}

VARIANTS = [
    {"name": "googlenet", "builder_name": "GoogLeNet", "config": TORCHVISION,
     "variant": "GoogLeNet as torchvision: batch norm (eps 1e-3), 3x3 conv in the \"5x5\" branch, "
                "no LRN, 2x2 last max pool, two auxiliary heads (adaptive 4x4 pooling)",
     "reference": "torchvision googlenet (aux_logits=True; 6,624,904 with aux_logits=False)"},
    {"name": "googlenet_paper", "builder_name": "GoogLeNetPaper", "config": PAPER,
     "variant": "GoogLeNet as the paper: conv biases, no batch norm, 5x5 branch, LRN in the stem, "
                "dropout 0.4, auxiliary heads with 5x5/3 average pooling",
     "reference": "Caffe bvlc_googlenet (6,998,552 without the auxiliary heads)"},
    {"name": "se_googlenet", "builder_name": "SEGoogLeNet", "config": {**TORCHVISION, "se_ratio": SE_REDUCTION},
     "variant": "SE-Inception: torchvision's GoogLeNet with SE (r=16) on every inception module output",
     "reference": "torchvision googlenet + SE blocks (SENet's SE-Inception; no published count)",
     "paper": "SENet (Hu et al., 2018)"},
]


@family_builder(name="googlenet")
def GoogLeNetFamily(
    *,
    norm=False,
    bn_epsilon=TORCHVISION_BN_EPSILON,
    branch_kernel=5,
    lrn=True,
    max_pool_sizes=PAPER_POOL_SIZES,
    aux_logits=True,
    aux_pool="overlapping",
    aux_dropout=AUX_DROPOUT,
    se_ratio=0.0,
    dropout=PAPER_DROPOUT,
    **head,
):
    """Builds any GoogLeNet (Inception-v1), the generic builder; the defaults are the paper's
    network (`GoogLeNet` is the registered torchvision one, `GoogLeNetPaper` the paper's).

    Args:
        norm: Batch norm after every conv (torchvision) instead of conv biases (paper).
        bn_epsilon: Batch-norm epsilon (torchvision's BasicConv2d: 1e-3).
        branch_kernel: Kernel of the "5x5" branch: 5 (paper) or 3 (torchvision).
        lrn: Local response normalisation after the first max pool and after the stem's 3x3
            conv (paper).
        max_pool_sizes: Kernels of the four stride-2 ceil-mode max pools (after conv1, after
            conv3, before 4a, before 5a); torchvision uses 2 for the last.
        aux_logits: Build the two auxiliary classifiers (on 4a and 4d) when `include_top`.
        aux_pool: Aux-head pooling to 4x4 (`GridAveragePooling2D` windows): `"overlapping"`
            (the paper's 5x5/3 at 224 px) or `"adaptive"` (torchvision's adaptive average pool).
        aux_dropout: Dropout in the auxiliary classifiers.
        se_ratio: Squeeze-and-excitation ratio on every inception module output (1/16 in
            SE-Inception); 0 disables.
        dropout: Dropout before the classifier.
        include_top: Whether to include the classifier (and the auxiliary classifiers).
        classifier_activation: Activation of the classifiers (`None` returns logits).

    Returns:
        A `keras.Model`; with `include_top` and `aux_logits` an `AuxiliaryOutputsModel` that
        returns `(main, aux1, aux2)` in training and `main` otherwise.
    """
    for argument, value in (("norm", norm), ("lrn", lrn), ("aux_logits", aux_logits)):
        check_bool(argument, value)
    check_choice("branch_kernel", branch_kernel, (3, 5))
    check_choice("aux_pool", aux_pool, AUX_POOLS)
    for argument, value in (("aux_dropout", aux_dropout), ("se_ratio", se_ratio)):
        check_rate(argument, value)
    check_positive_number("bn_epsilon", bn_epsilon)
    pools_needed = 2 + sum(spec.pool_before for spec in INCEPTION_V1)
    if (
        not isinstance(max_pool_sizes, (list, tuple))
        or len(max_pool_sizes) != pools_needed
        or any(isinstance(k, bool) or k not in (2, 3) for k in max_pool_sizes)
    ):
        raise ValueError(
            f"`max_pool_sizes` must be {pools_needed} kernel sizes, each 2 or 3, received "
            f"max_pool_sizes={max_pool_sizes!r}"
        )

    def features(x):
        pool_sizes = iter(max_pool_sizes)
        x = conv_unit(x, STEM_WIDTH, STEM_KERNEL, strides=STEM_STRIDE, norm=norm, bn_epsilon=bn_epsilon,
                      name="conv1")
        x = CeilModeMaxPooling2D(next(pool_sizes), POOL_STRIDE, name="pool1")(x)
        if lrn:
            x = LocalResponseNormalization(LRN_SIZE, LRN_ALPHA, LRN_BETA, name="norm1")(x)
        x = conv_unit(x, STEM_WIDTH, 1, norm=norm, bn_epsilon=bn_epsilon, name="conv2")
        x = conv_unit(x, STEM_OUT_WIDTH, 3, norm=norm, bn_epsilon=bn_epsilon, name="conv3")
        if lrn:
            x = LocalResponseNormalization(LRN_SIZE, LRN_ALPHA, LRN_BETA, name="norm2")(x)
        x = CeilModeMaxPooling2D(next(pool_sizes), POOL_STRIDE, name="pool2")(x)
        aux_outputs, pool_index = [], 2
        for spec in INCEPTION_V1:
            if spec.pool_before:
                pool_index += 1
                x = CeilModeMaxPooling2D(next(pool_sizes), POOL_STRIDE, name=f"pool{pool_index}")(x)
            x = inception_module(
                x, spec.conv1x1, spec.reduce3x3, spec.conv3x3, spec.reduce5x5, spec.conv5x5,
                spec.pool_proj, branch_kernel=branch_kernel, norm=norm, bn_epsilon=bn_epsilon,
                se_ratio=se_ratio, name=f"inception{spec.name}",
            )
            if spec.aux and aux_logits and head["include_top"]:
                aux_outputs.append(auxiliary_classifier(
                    x, classes=head["classes"], classifier_activation=head["classifier_activation"],
                    dropout=aux_dropout, pool=aux_pool, norm=norm, bn_epsilon=bn_epsilon,
                    name=f"aux{len(aux_outputs) + 1}",
                ))
        return (x, aux_outputs) if aux_outputs else x

    return build_classifier(features, min_size=TOTAL_STRIDE, dropout=dropout,
                            aux_loss_weights=(AUX_LOSS_WEIGHT, AUX_LOSS_WEIGHT), **head)


__all__ = ["GoogLeNetFamily"] + register_variants(
    GoogLeNetFamily,
    VARIANTS,
    family="googlenet",
    paper="Going Deeper with Convolutions (Szegedy et al., 2015)",
    namespace=globals(),
)
