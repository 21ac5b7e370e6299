"""Weights of the ResNet family: keras.applications' ResNets, torchvision/timm `ResNet` and
timm's legacy SENet.

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

from keras_cnn.weights.families._common import SourceSpec
from keras_cnn.weights.spec import (
    KerasApplicationsPort,
    LayerMapping,
    WeightsSpec,
    timm_tag,
    torchvision_tag,
)

# keras.applications namesakes: v1 weights were trained on "caffe" (BGR, mean-only)
# input, v2 weights on "tf" ([-1, 1]) input.
KERAS_APPLICATIONS = {
    **{f"ResNet{d}": KerasApplicationsPort(f"resnet{d}_v1", "caffe", bgr_conv="stem_conv")
       for d in (50, 101, 152)},
    **{f"ResNet{d}V2": KerasApplicationsPort(f"resnet{d}v2", "tf") for d in (50, 101, 152)},
}


def keras_layer_name(name):
    """Maps a keras_cnn ResNet layer name to keras.applications' (`stage1_` -> `conv2_`)."""
    if name.startswith("stem_"):
        return "conv1_" + name[len("stem_"):]
    match = re.match(r"^stage(\d+)_(.*)$", name)
    if match:
        return f"conv{int(match.group(1)) + 1}_{match.group(2)}"
    return name


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


# torchvision's ResNet weights (torchvision 0.29 `ResNet*_Weights` / `ResNeXt*` / `Wide_ResNet*`:
# url, "acc@1", transforms' resize_size). V2 is the "new training recipe" (resize 232); then
# timm's Hugging Face checkpoints (timm 1.0.31 `pretrained_cfg`: input_size, crop_pct,
# interpolation; top-1 at that input size from timm's results/results-imagenet.csv, commit 7479d451).
TAGS = (
    torchvision_tag("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758),
    torchvision_tag("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314),
    torchvision_tag("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.130),
    torchvision_tag("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, resize=232),
    torchvision_tag("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374),
    torchvision_tag("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, resize=232),
    torchvision_tag("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312),
    torchvision_tag("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, resize=232),
    torchvision_tag("resnext50_32x4d", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 77.618),
    torchvision_tag("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 81.198, resize=232),
    torchvision_tag("resnext101_32x8d", "IMAGENET1K_V1", "resnext101_32x8d-8ba56ff5.pth", 79.312),
    torchvision_tag("resnext101_32x8d", "IMAGENET1K_V2", "resnext101_32x8d-110c445d.pth", 82.834, resize=232),
    torchvision_tag("resnext101_64x4d", "IMAGENET1K_V1", "resnext101_64x4d-173b62eb.pth", 83.246, resize=232),
    torchvision_tag("wide_resnet50_2", "IMAGENET1K_V1", "wide_resnet50_2-95faca4d.pth", 78.468),
    torchvision_tag("wide_resnet50_2", "IMAGENET1K_V2", "wide_resnet50_2-9ba9bcbe.pth", 81.602, resize=232),
    torchvision_tag("wide_resnet101_2", "IMAGENET1K_V1", "wide_resnet101_2-32ee1156.pth", 78.848),
    torchvision_tag("wide_resnet101_2", "IMAGENET1K_V2", "wide_resnet101_2-d733dc28.pth", 82.510, resize=232),
    timm_tag("resnet18", "resnet18.a1_in1k", 224, 0.95, "bicubic", 71.488),
    timm_tag("resnet34", "resnet34.a1_in1k", 224, 0.95, "bicubic", 76.414),
    timm_tag("resnet50", "resnet50.a1_in1k", 224, 0.95, "bicubic", 80.382),
    timm_tag("resnet101", "resnet101.a1_in1k", 224, 0.95, "bicubic", 81.494),
    timm_tag("resnet152", "resnet152.a1_in1k", 224, 0.95, "bicubic", 81.998),
    timm_tag("resnet50c", "resnet50c.gluon_in1k", 224, 0.875, "bicubic", 78.016),
    timm_tag("resnet18d", "resnet18d.ra2_in1k", 224, 0.875, "bicubic", 72.268),
    timm_tag("resnet34d", "resnet34d.ra2_in1k", 224, 0.875, "bicubic", 77.104),
    timm_tag("resnet50d", "resnet50d.a1_in1k", 224, 0.95, "bicubic", 80.730),
    timm_tag("resnet50d", "resnet50d.ra2_in1k", 224, 0.875, "bicubic", 80.548),
    timm_tag("resnet101d", "resnet101d.gluon_in1k", 224, 0.875, "bicubic", 80.466),
    timm_tag("resnet152d", "resnet152d.gluon_in1k", 224, 0.875, "bicubic", 80.476),
    timm_tag("resnet200d", "resnet200d.ra2_in1k", 256, 0.95, "bicubic", 83.240),
    timm_tag("resnext50_32x4d", "resnext50_32x4d.a1_in1k", 224, 0.95, "bicubic", 80.526),
    timm_tag("resnext101_32x4d", "resnext101_32x4d.fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", 80.936),
    timm_tag("resnext101_32x8d", "resnext101_32x8d.fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", 81.620),
    timm_tag("resnext101_64x4d", "resnext101_64x4d.c1_in1k", 224, 0.95, "bicubic", 82.446),
    timm_tag("wide_resnet50_2", "wide_resnet50_2.racm_in1k", 224, 0.875, "bicubic", 81.488),
    timm_tag("wide_resnet101_2", "wide_resnet101_2.tv2_in1k", 176, 0.875, "bilinear", 80.488),
    timm_tag("seresnet50", "seresnet50.a1_in1k", 224, 0.95, "bicubic", 80.012),
    timm_tag("seresnext50_32x4d", "seresnext50_32x4d.gluon_in1k", 224, 0.875, "bicubic", 79.918),
    timm_tag("seresnext101_32x4d", "seresnext101_32x4d.gluon_in1k", 224, 0.875, "bicubic", 80.886),
)

WEIGHTS = WeightsSpec(
    family="resnet",
    title="ResNet-family",
    keras_applications=KERAS_APPLICATIONS,
    keras_layer_name=keras_layer_name,
    sources=SOURCES,
    styles=tuple(STYLES),
    layer_mappings=layer_mappings,
    optional_sources=optional_sources,
    tags=TAGS,
)
source_spec = WEIGHTS.source_spec
