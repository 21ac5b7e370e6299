"""Checkpoint layout of the ResNet family: torchvision/timm `ResNet` and timm's legacy SENet.

torchvision's `resnet*`/`resnext*`/`wide_resnet*` and timm's `ResNet` class (`resnet*d`,
`resnet50c`, `seresnet*`, `seresnext*`) share one module naming (`conv1`, `bn1`,
`layer{stage}.{block}.conv{i}`, `downsample`, `fc`); timm's deep stem is the Sequential
`conv1.{0,1,3,4,6}` followed by `bn1`, and its average-pool shortcut (ResNet-D) is
`downsample.{0: pool, 1: conv, 2: bn}`. SENet-154 exists only in timm's port of the Caffe
SENets (`legacy_senet154`), named `layer0.conv{i}`, `se_module`, `last_linear`.

The tables below are regular expressions over keras_cnn layer names (see
`keras_cnn.models.resnet`), each with the source module it reads and the layer kind.
"""

import functools
import re

from keras_cnn.weights.convert import LayerMapping
from keras_cnn.weights.families._common import IMAGENET, TORCH_BN_EPSILON, SourceSpec, lookup_source  # noqa: F401

# The ResNet layouts name their style explicitly ("resnet", or timm's "legacy_senet").
_spec = functools.partial(SourceSpec, style="resnet")


def _both(name, default="torchvision"):
    # torchvision's and timm's plain ResNets have identical state dicts.
    specs = {"torchvision": _spec("torchvision", name), "timm": _spec("timm", name)}
    return {default: specs[default], **specs}


# Registry name -> {library: SourceSpec}; the first entry is the default source.
SOURCES = {
    **{f"resnet{d}": _both(f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "resnet200": {"timm": _spec("timm", "resnet200")},
    "resnet50c": {"timm": _spec("timm", "resnet50c")},
    **{f"resnet{d}d": {"timm": _spec("timm", f"resnet{d}d")} for d in (18, 34, 50, 101, 152, 200)},
    "resnext50_32x4d": _both("resnext50_32x4d"),
    "resnext101_32x4d": {"timm": _spec("timm", "resnext101_32x4d")},
    "resnext101_32x8d": _both("resnext101_32x8d"),
    "resnext101_64x4d": _both("resnext101_64x4d"),
    "wide_resnet50_2": _both("wide_resnet50_2"),
    "wide_resnet101_2": _both("wide_resnet101_2"),
    **{f"seresnet{d}": {"timm": _spec("timm", f"seresnet{d}")} for d in (18, 34, 50, 101, 152)},
    "seresnext50_32x4d": {"timm": _spec("timm", "seresnext50_32x4d")},
    "seresnext101_32x4d": {"timm": _spec("timm", "seresnext101_32x4d")},
    "senet154": {"timm": _spec("timm", "legacy_senet154", style="legacy_senet")},
}

_BLOCK = r"stage(?P<stage>\d+)_block(?P<block>\d+)"
_TORCH_BLOCK = "layer{stage}.{block0}"

# (keras layer name pattern, source module template, kind). Templates see the pattern's
# named groups, plus `block0`: our blocks count from 1, PyTorch's Sequential from 0.
_RESNET_BLOCKS = (
    (rf"{_BLOCK}_(?P<i>[123])_conv", _TORCH_BLOCK + ".conv{i}", "conv"),
    (rf"{_BLOCK}_(?P<i>[123])_bn", _TORCH_BLOCK + ".bn{i}", "batchnorm"),
    (rf"{_BLOCK}_se_reduce", _TORCH_BLOCK + ".se.fc1", "conv"),
    (rf"{_BLOCK}_se_expand", _TORCH_BLOCK + ".se.fc2", "conv"),
    (r"predictions", "fc", "dense"),
)
_STEM = (
    (r"stem_conv", "conv1", "conv"),
    (r"stem_bn", "bn1", "batchnorm"),
    # timm's deep stem: Sequential(conv, bn, act, conv, bn, act, conv), then bn1.
    (r"stem_1_conv", "conv1.0", "conv"),
    (r"stem_1_bn", "conv1.1", "batchnorm"),
    (r"stem_2_conv", "conv1.3", "conv"),
    (r"stem_2_bn", "conv1.4", "batchnorm"),
    (r"stem_3_conv", "conv1.6", "conv"),
    (r"stem_3_bn", "bn1", "batchnorm"),
)
STYLES = {
    "resnet": (
        *_STEM,
        (rf"{_BLOCK}_0_conv", _TORCH_BLOCK + ".downsample.0", "conv"),
        (rf"{_BLOCK}_0_bn", _TORCH_BLOCK + ".downsample.1", "batchnorm"),
        *_RESNET_BLOCKS,
    ),
    # timm ResNet-D (`avg_down`): downsample = Sequential(pool or Identity, conv, bn).
    "resnet_avg_down": (
        *_STEM,
        (rf"{_BLOCK}_0_conv", _TORCH_BLOCK + ".downsample.1", "conv"),
        (rf"{_BLOCK}_0_bn", _TORCH_BLOCK + ".downsample.2", "batchnorm"),
        *_RESNET_BLOCKS,
    ),
    "legacy_senet": (
        (r"stem_conv", "layer0.conv1", "conv"),
        (r"stem_bn", "layer0.bn1", "batchnorm"),
        (r"stem_(?P<i>[123])_conv", "layer0.conv{i}", "conv"),
        (r"stem_(?P<i>[123])_bn", "layer0.bn{i}", "batchnorm"),
        (rf"{_BLOCK}_0_conv", _TORCH_BLOCK + ".downsample.0", "conv"),
        (rf"{_BLOCK}_0_bn", _TORCH_BLOCK + ".downsample.1", "batchnorm"),
        (rf"{_BLOCK}_(?P<i>[123])_conv", _TORCH_BLOCK + ".conv{i}", "conv"),
        (rf"{_BLOCK}_(?P<i>[123])_bn", _TORCH_BLOCK + ".bn{i}", "batchnorm"),
        (rf"{_BLOCK}_se_reduce", _TORCH_BLOCK + ".se_module.fc1", "conv"),
        (rf"{_BLOCK}_se_expand", _TORCH_BLOCK + ".se_module.fc2", "conv"),
        (r"predictions", "last_linear", "dense"),
    ),
}


def source_spec(name, source=None):
    """The `SourceSpec` of registry name `name` from library `source` (default: the first).

    Raises:
        ValueError: for a name without checkpoints or an unknown source.
    """
    return lookup_source(SOURCES, "ResNet-family", name, source)


def _style(config, style):
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {sorted(STYLES)}, received style={style!r}")
    if style == "resnet" and config.get("avg_down"):
        return "resnet_avg_down"
    return style


def optional_sources(style):
    """Source modules a model built without its classifier leaves unused."""
    return ("last_linear",) if style == "legacy_senet" else ("fc",)


def layer_mappings(model, config, style="resnet"):
    """Maps every layer with weights of a keras_cnn ResNet to its source module.

    Args:
        model: The keras_cnn model.
        config: The builder arguments it was built with (`avg_down` picks timm's ResNet-D
            shortcut naming).
        style: A key of `STYLES` (see `SourceSpec.style`).

    Returns:
        A list of `LayerMapping`.

    Raises:
        ValueError: naming the first layer with weights that the layout has no module for
            (e.g. pre-activation layers, which have no timm/torchvision counterpart).
    """
    rules = [(re.compile(pattern), template, kind) for pattern, template, kind in STYLES[_style(config, style)]]
    mappings = []
    for layer in model.layers:
        if not layer.weights:
            continue
        for pattern, template, kind in rules:
            match = pattern.fullmatch(layer.name)
            if match:
                groups = match.groupdict()
                if "block" in groups:
                    groups["block0"] = int(groups["block"]) - 1
                mappings.append(LayerMapping(layer.name, template.format(**groups), kind))
                break
        else:
            raise ValueError(
                f"Layer {layer.name!r} of {model.name!r} has no counterpart in the {style!r} "
                "checkpoint layout"
            )
    return mappings
