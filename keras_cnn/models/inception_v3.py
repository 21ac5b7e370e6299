"""Inception-v3 and SE-Inception-v3, from one configurable builder.

Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016. The layout (branch widths, the extra 5x5 branch of the 35x35 modules, the
auxiliary head on Mixed_6e) is TF-slim's, which torchvision and keras.applications share.
SE variant: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (SE-Inception: SE on
the output of every Inception module, their Fig. 2).

Every module is a row of `MODULES`; its branches come from one spec per module type and
one generic `inception_module` builds them all. The generic builder is `InceptionV3Family`;
the registry name `inception_v3` takes the CamelCase `InceptionV3` (keras.applications'
spelling, so `keras_cnn.InceptionV3(weights="imagenet")` works). Parameter counts equal
torchvision's `inception_v3` with and without the auxiliary head (see
`tests/models/test_inception_v3.py`).
"""

import dataclasses

from keras import layers

from keras_cnn.layers import GridAveragePooling2D, conv_bn_act, squeeze_excite
from keras_cnn.layers.conv_bn_act import BN_MOMENTUM
from keras_cnn.models.base import build_classifier, check_bool, check_rate, family_builder, head_dtype
from keras_cnn.registry import register_variants

# torchvision's BasicConv2d and keras.applications' conv2d_bn both use TF-slim's epsilon, so
# keras.applications' statistics port without an epsilon correction.
BN_EPSILON = 1e-3
SAME, VALID = "same", "valid"
POOL_SIZE = 3  # every pool inside the network is 3x3
REDUCTION_STRIDE = 2  # stem pools and the grid-reduction modules (Mixed_6a, Mixed_7a)

# The auxiliary classifier of torchvision's InceptionAux: pool 17x17 -> 5x5 (5x5/3 average
# pool, `GridAveragePooling2D` "overlapping" windows), 1x1 conv to 128, 5x5 conv to 768 (a 1x1
# map at 299 px), classifier.
AUX_GRID = 5
AUX_REDUCE_FILTERS = 128
AUX_FILTERS = 768
AUX_AFTER = "mixed_6e"
# TF-slim's train_image_classifier.py adds the aux cross-entropy with weight 0.4 (as does
# PyTorch's Inception-v3 fine-tuning recipe); the GoogLeNet 0.3 does not apply here.
AUX_LOSS_WEIGHT = 0.4

SE_REDUCTION = 1 / 16  # SENet's r = 16

# The smallest input for which every valid-padded stride-2 layer still has an output
# (the last grid reduction needs a 3x3 map): torchvision/keras.applications' 75 px.
MIN_SIZE = 75


@dataclasses.dataclass(frozen=True)
class Conv:
    """A conv-BN-ReLU step of a branch (`kernel` may be rectangular, e.g. `(1, 7)`)."""

    filters: int
    kernel: int | tuple = 1
    strides: int = 1
    padding: str = SAME


@dataclasses.dataclass(frozen=True)
class Pool:
    """A pooling step: `"avg"` keeps the grid (3x3/1, same), `"max"` halves it (3x3/2, valid)."""

    mode: str


@dataclasses.dataclass(frozen=True)
class Fork:
    """Parallel convs on the same input, concatenated (the 1x3 / 3x1 pairs of Mixed_7b/c)."""

    convs: tuple


AVG_POOL, MAX_POOL = Pool("avg"), Pool("max")


def _reduce(filters, kernel=3):
    """A stride-2 valid conv of the grid-reduction modules."""
    return Conv(filters, kernel, strides=REDUCTION_STRIDE, padding=VALID)


# Branches of each module type, `{branch name: steps}`, in torchvision's (and
# keras.applications') creation order: the weights port pairs layers by that order.
def _inception_a(pool_filters):
    """35x35 module (Mixed_5b/c/d)."""
    return {
        "branch1x1": (Conv(64),),
        "branch5x5": (Conv(48), Conv(64, 5)),
        "branch3x3dbl": (Conv(64), Conv(96, 3), Conv(96, 3)),
        "branch_pool": (AVG_POOL, Conv(pool_filters)),
    }


def _inception_b():
    """35x35 -> 17x17 grid reduction (Mixed_6a; paper Fig. 10)."""
    return {
        "branch3x3": (_reduce(384),),
        "branch3x3dbl": (Conv(64), Conv(96, 3), _reduce(96)),
        "branch_pool": (MAX_POOL,),
    }


def _inception_c(channels_7x7):
    """17x17 module with 7x7 convs factorised into 1x7 and 7x1 (Mixed_6b..e; paper Fig. 6)."""
    c7 = channels_7x7
    return {
        "branch1x1": (Conv(192),),
        "branch7x7": (Conv(c7), Conv(c7, (1, 7)), Conv(192, (7, 1))),
        "branch7x7dbl": (Conv(c7), Conv(c7, (7, 1)), Conv(c7, (1, 7)), Conv(c7, (7, 1)),
                         Conv(192, (1, 7))),
        "branch_pool": (AVG_POOL, Conv(192)),
    }


def _inception_d():
    """17x17 -> 8x8 grid reduction (Mixed_7a)."""
    return {
        "branch3x3": (Conv(192), _reduce(320)),
        "branch7x7x3": (Conv(192), Conv(192, (1, 7)), Conv(192, (7, 1)), _reduce(192)),
        "branch_pool": (MAX_POOL,),
    }


def _inception_e():
    """8x8 module with expanded 1x3 / 3x1 outputs (Mixed_7b/c; paper Fig. 7)."""
    split = Fork((Conv(384, (1, 3)), Conv(384, (3, 1))))
    return {
        "branch1x1": (Conv(320),),
        "branch3x3": (Conv(384), split),
        "branch3x3dbl": (Conv(448), Conv(384, 3), split),
        "branch_pool": (AVG_POOL, Conv(192)),
    }


MODULE_TYPES = {"a": _inception_a, "b": _inception_b, "c": _inception_c, "d": _inception_d,
                "e": _inception_e}

# The stem (torchvision's Conv2d_1a_3x3 ... maxpool2): 299 -> 35x35x192.
STEM = (
    ("1a", Conv(32, 3, strides=REDUCTION_STRIDE, padding=VALID)),
    ("2a", Conv(32, 3, padding=VALID)),
    ("2b", Conv(64, 3)),
    ("pool1", MAX_POOL),
    ("3b", Conv(80)),
    ("4a", Conv(192, 3, padding=VALID)),
    ("pool2", MAX_POOL),
)

# One row per Inception module, in network order (torchvision's Mixed_* names).
MODULES = (
    {"name": "mixed_5b", "type": "a", "args": {"pool_filters": 32}},
    {"name": "mixed_5c", "type": "a", "args": {"pool_filters": 64}},
    {"name": "mixed_5d", "type": "a", "args": {"pool_filters": 64}},
    {"name": "mixed_6a", "type": "b", "args": {}},
    {"name": "mixed_6b", "type": "c", "args": {"channels_7x7": 128}},
    {"name": "mixed_6c", "type": "c", "args": {"channels_7x7": 160}},
    {"name": "mixed_6d", "type": "c", "args": {"channels_7x7": 160}},
    {"name": "mixed_6e", "type": "c", "args": {"channels_7x7": 192}},
    {"name": "mixed_7a", "type": "d", "args": {}},
    {"name": "mixed_7b", "type": "e", "args": {}},
    {"name": "mixed_7c", "type": "e", "args": {}},
)

TV = "torchvision"
SENET = "SENet (Hu et al., 2018)"

VARIANTS = [
    {"name": "inception_v3", "builder_name": "InceptionV3",
     "config": {"default_size": 299},
     "variant": "Inception-v3 with the auxiliary classifier on Mixed_6e (torchvision's "
                "aux_logits=True; aux_logits=False is keras.applications.InceptionV3)",
     "reference": f"{TV} inception_v3", "pretrained": ("imagenet",)},
    {"name": "se_inception_v3", "builder_name": "SEInceptionV3",
     "config": {"se_ratio": SE_REDUCTION, "default_size": 299},
     "variant": "SE-Inception-v3: Inception-v3 with SE (r=16) on every Inception module output",
     "reference": f"{TV} inception_v3 + SE blocks (C/16 bottleneck, biased 1x1 convs)",
     "paper": SENET},
]


def _conv(x, spec, name):
    return conv_bn_act(x, spec.filters, spec.kernel, strides=spec.strides, padding=spec.padding,
                       bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, name=name)


AVG_POOL_PADDINGS = ("exclude", "include")


def _pool(x, spec, name, avg_pool_padding="exclude"):
    if spec.mode == "avg":
        if avg_pool_padding == "include":
            # torchvision/timm: avg_pool2d(3, 1, padding=1) divides by 9 at the border too.
            x = layers.ZeroPadding2D(1, name=f"{name}_avg_pad")(x)
            return layers.AveragePooling2D(POOL_SIZE, 1, padding=VALID, name=f"{name}_avg")(x)
        # padding="same" averages only real pixels, as TF-slim/keras.applications.
        return layers.AveragePooling2D(POOL_SIZE, 1, padding=SAME, name=f"{name}_avg")(x)
    return layers.MaxPooling2D(POOL_SIZE, REDUCTION_STRIDE, name=f"{name}_max")(x)


def inception_branch(x, steps, *, name, avg_pool_padding="exclude"):
    """One branch: conv/pool steps in sequence; a `Fork` ends it with parallel convs.

    Convs are named as torchvision's: `branch5x5_1`, `branch5x5_2`, a fork's `_2a`/`_2b`;
    a single-conv branch keeps the bare branch name (`branch1x1`, `branch_pool`).

    Args:
        x: Input tensor.
        steps: Sequence of `Conv`, `Pool` and (last) `Fork` steps.
        name: Branch name prefix (`"mixed_5b_branch5x5"`).
        avg_pool_padding: Whether a 3x3/1 average pool's border windows count the zero
            padding (`"include"`, PyTorch) or only real pixels (`"exclude"`, TensorFlow).

    Returns:
        Output tensor.
    """
    convs = [s for s in steps if not isinstance(s, Pool)]
    index = 0
    for step in steps:
        if isinstance(step, Pool):
            x = _pool(x, step, name, avg_pool_padding)
            continue
        index += 1
        tag = name if len(convs) == 1 else f"{name}_{index}"
        if isinstance(step, Fork):
            outputs = [_conv(x, conv, f"{tag}{chr(ord('a') + i)}") for i, conv in enumerate(step.convs)]
            x = layers.Concatenate(name=f"{name}_concat")(outputs)
        else:
            x = _conv(x, step, tag)
    return x


def inception_module(x, branches, *, se_ratio=0.0, avg_pool_padding="exclude", name):
    """An Inception module: parallel branches, concatenated, then optional SE.

    Args:
        x: Input tensor.
        branches: `{branch name: steps}` (see `inception_branch`), in creation order.
        se_ratio: Squeeze-and-excitation ratio on the module output (0 disables SE).
        avg_pool_padding: See `inception_branch`.
        name: Module name (`"mixed_5b"`).

    Returns:
        Output tensor.
    """
    outputs = [inception_branch(x, steps, name=f"{name}_{branch}", avg_pool_padding=avg_pool_padding)
               for branch, steps in branches.items()]
    x = layers.Concatenate(name=f"{name}_concat")(outputs)
    if se_ratio:
        channels = x.shape[-1]
        x = squeeze_excite(x, max(1, round(channels * se_ratio)), name=f"{name}_se")
    return x


def inception_aux(x, *, classes, classifier_activation, name="aux"):
    """torchvision's InceptionAux: pool to 5x5, 1x1 conv, 5x5 conv, global pool, classifier.

    Args:
        x: The Mixed_6e feature map.
        classes: Number of classes.
        classifier_activation: Activation of `aux_predictions` (the main head's).
        name: Layer name prefix.

    Returns:
        The auxiliary class scores (`aux_predictions`).
    """
    x = GridAveragePooling2D(AUX_GRID, windows="overlapping", name=f"{name}_pool")(x)
    x = _conv(x, Conv(AUX_REDUCE_FILTERS), f"{name}_conv0")
    x = _conv(x, Conv(AUX_FILTERS, AUX_GRID, padding=VALID), f"{name}_conv1")
    x = layers.GlobalAveragePooling2D(name=f"{name}_avg_pool")(x)
    return layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                        name=f"{name}_predictions")(x)


@family_builder(default_size=299, name="inception_v3")
def InceptionV3Family(
    *,
    aux_logits=True,
    se_ratio=0.0,
    avg_pool_padding="exclude",
    dropout=0.5,
    **head,
):
    """Builds Inception-v3 or SE-Inception-v3 (the generic builder; `InceptionV3` is the
    registered `inception_v3`, which also takes `weights="imagenet"`).

    Args:
        aux_logits: Add the auxiliary classifier on Mixed_6e (with `include_top`): the model
            then returns `(main, aux)` when called with `training=True` and only `main`
            otherwise; `model.fit` adds the aux loss with weight 0.4.
        se_ratio: Squeeze-and-excitation ratio on every Inception module output (`1/16` in
            SE-Inception-v3); 0 disables SE.
        avg_pool_padding: How the modules' 3x3/1 average pools treat the border:
            `"exclude"` averages real pixels only (TensorFlow, TF-slim and keras.applications,
            whose `weights="imagenet"` need it), `"include"` divides by 9 counting the zero
            padding (PyTorch's `avg_pool2d(padding=1)`: torchvision/timm checkpoints need it).
        input_shape: Optional `(height, width, channels)`; spatial sizes must be >= 75.
        classifier_activation: Activation of both classifiers (`None` returns logits).
        dropout: Dropout before the main classifier (torchvision: 0.5).

    Returns:
        A `keras.Model` (an `AuxiliaryOutputsModel` with the auxiliary classifier).
    """
    check_bool("aux_logits", aux_logits)
    check_rate("se_ratio", se_ratio)
    if avg_pool_padding not in AVG_POOL_PADDINGS:
        raise ValueError(f"`avg_pool_padding` must be one of {AVG_POOL_PADDINGS}, received "
                         f"avg_pool_padding={avg_pool_padding!r}")
    with_aux = aux_logits and head["include_top"] is True

    def features(x):
        for tag, step in STEM:
            x = _pool(x, step, f"stem_{tag}") if isinstance(step, Pool) else _conv(x, step, f"stem_{tag}")
        aux = []
        for row in MODULES:
            branches = MODULE_TYPES[row["type"]](**row["args"])
            x = inception_module(x, branches, se_ratio=se_ratio, avg_pool_padding=avg_pool_padding,
                                 name=row["name"])
            if with_aux and row["name"] == AUX_AFTER:
                aux.append(inception_aux(x, classes=head["classes"],
                                         classifier_activation=head["classifier_activation"]))
        return (x, aux) if aux else x

    return build_classifier(features, min_size=MIN_SIZE, dropout=dropout,
                            aux_loss_weights=(AUX_LOSS_WEIGHT,), **head)


__all__ = ["InceptionV3Family"] + register_variants(
    InceptionV3Family,
    VARIANTS,
    family="inception_v3",
    paper="Rethinking the Inception Architecture for Computer Vision (Szegedy et al., 2016)",
    namespace=globals(),
)
