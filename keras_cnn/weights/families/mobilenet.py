"""Weights of MobileNet v1: keras.applications' MobileNet (alpha 1.0), and timm's
`mobilenetv1_100` and `mobilenetv1_125`.

timm builds MobileNet v1 with its EfficientNet class: `conv_stem`/`bn1`, then stages of
`DepthwiseSeparableConv` blocks `blocks.{stage}.{j}` (`conv_dw`/`bn1`, `conv_pw`/`bn2`),
a new stage starting at every stride-2 block, and `classifier`. keras_cnn numbers the 13
blocks `block1`..`block13`; the stage split is read off the builder's `blocks` table.
timm's `mobilenetv1_*` weights (ra4 recipe) expect [-1, 1] input (mean = std = 0.5), as
the registry rows do. keras.applications' `mobilenet` (TF padding, truncated widths) and
the 0.5x / 0.75x rows have no timm checkpoint.
"""

import re

from keras_cnn.weights.families._common import INCEPTION, SourceSpec, rule_mappings
from keras_cnn.weights.spec import KerasApplicationsPort, WeightsSpec, timm_tag


def is_keras_applications_mobilenet_100(model_name):
    """Whether a keras.applications model name is an alpha-1.0 MobileNet (the one registered).

    keras.applications names its MobileNets f"mobilenet_{alpha:0.2f}_{rows}".
    """
    return re.fullmatch(r"mobilenet_1\.00_(\d+|None)", str(model_name)) is not None


KERAS_APPLICATIONS = {
    "MobileNet": KerasApplicationsPort("mobilenet", "tf", keras_name=is_keras_applications_mobilenet_100),
}


def keras_layer_name(name):
    """Maps a keras_cnn MobileNet layer name to keras.applications' (`block3_dw_bn` ->
    `conv_dw_3_bn`)."""
    if name == "predictions":
        return "conv_preds"  # keras.applications' classifier is a 1x1 conv
    if name.startswith("stem_"):
        return "conv1" + name[len("stem"):].replace("_conv", "")
    match = re.match(r"^block(\d+)_(dw|pw)_(conv|bn)$", name)
    if match:
        index, kind, part = match.groups()
        return f"conv_{kind}_{index}" + ("_bn" if part == "bn" else "")
    return name


SOURCES = {
    f"mobilenetv1_{width}": {"timm": SourceSpec("timm", f"mobilenetv1_{width}", input_normalization=INCEPTION)}
    for width in ("100", "125")
}
STYLES = ("default",)


def optional_sources(style):
    """Source modules a model built without its classifier leaves unused."""
    del style
    return ("classifier",)


def timm_block_names(blocks):
    """timm's `blocks.{stage}.{j}` prefix of each keras_cnn block (`block1` first)."""
    prefixes, stage, index = [], 0, -1
    for number, block in enumerate(blocks):
        if number > 0 and block["stride"] != 1:
            stage, index = stage + 1, -1
        index += 1
        prefixes.append(f"blocks.{stage}.{index}")
    return prefixes


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn MobileNet v1 to timm's `mobilenetv1_*`.

    Args:
        model: The keras_cnn model.
        config: Its builder arguments (`blocks`, if given, sets the stage split).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.
    """
    from keras_cnn.models.mobilenet import BLOCKS

    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    prefixes = timm_block_names(config.get("blocks", BLOCKS))
    parts = {("dw", "conv"): ("conv_dw", "depthwise"), ("dw", "bn"): ("bn1", "batchnorm"),
             ("pw", "conv"): ("conv_pw", "conv"), ("pw", "bn"): ("bn2", "batchnorm")}

    def block(match):
        module, kind = parts[match.group("half"), match.group("part")]
        return f"{prefixes[int(match.group('number')) - 1]}.{module}", kind

    rules = (
        (r"stem_conv", ("conv_stem", "conv")),
        (r"stem_bn", ("bn1", "batchnorm")),
        (r"predictions", ("classifier", "dense")),
        (r"block(?P<number>\d+)_(?P<half>dw|pw)_(?P<part>conv|bn)", block),
    )
    return rule_mappings(model, rules, style)


# timm's Hugging Face checkpoint (timm 1.0.31 `pretrained_cfg`; top-1 from timm's results table).
TAGS = (
    timm_tag("mobilenetv1_100", "mobilenetv1_100.ra4_e3600_r224_in1k", 224, 0.875, "bicubic", 75.384,
             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
)

WEIGHTS = WeightsSpec(family="mobilenet", title="MobileNet", keras_applications=KERAS_APPLICATIONS,
                      keras_layer_name=keras_layer_name, sources=SOURCES, styles=STYLES,
                      layer_mappings=layer_mappings, optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
