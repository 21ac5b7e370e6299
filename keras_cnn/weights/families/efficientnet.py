"""Checkpoint layout of EfficientNet: timm's TF ports `tf_efficientnet_b0`..`b7` and `_l2`.

keras_cnn's EfficientNet pads like TensorFlow (`padding="same"`) and uses TF's batch-norm
epsilon 1e-3, which is exactly what timm's `tf_*` variants do (`Conv2dSame`, `BN_EPS_TF_DEFAULT`)
to run Google's checkpoints; timm's own `efficientnet_*` pad symmetrically and do not fit.
Every tag of a `tf_efficientnet_*` model (`.in1k`, `.ap_in1k`, `.aa_in1k`, the Noisy Student
`.ns_jft_in1k`) shares its architecture and state-dict layout.

timm names the stem `conv_stem`/`bn1`, block `j` of stage `i` `blocks.{i}.{j}` (stages
from 0) and the head `conv_head`/`bn2`/`classifier`. A block with expansion has
`conv_pw`/`bn1` (expand), `conv_dw`/`bn2`, `se.conv_reduce`/`se.conv_expand`,
`conv_pwl`/`bn3` (project); the first stage's blocks (expansion 1, timm's
`DepthwiseSeparableConv`) have `conv_dw`/`bn1`, `se`, `conv_pw`/`bn2`. keras_cnn block
`block{i}{letters}` is stage `i - 1`, block number `letters` (`a` = 0, ..., `z`, `aa`, ...).
"""

from keras_cnn.weights.families._common import TF_BN_EPSILON, SourceSpec, lookup_source, rule_mappings

# Registry name -> {library: SourceSpec}; EfficientNet-B6-Wide (Meta Pseudo Labels) has no
# timm/torchvision checkpoint.
SOURCES = {
    f"efficientnet_{key}": {"timm": SourceSpec("timm", f"tf_efficientnet_{key}", bn_epsilon=TF_BN_EPSILON)}
    for key in (*(f"b{i}" for i in range(8)), "l2")
}
STYLES = ("default",)


def source_spec(name, source=None):
    """The `SourceSpec` of registry name `name` from library `source` (default: timm)."""
    return lookup_source(SOURCES, "EfficientNet", name, source)


def optional_sources(style):
    """Source modules a model built without its classifier leaves unused."""
    del style
    return ("classifier",)


def block_index(letters):
    """The block number of keras_cnn's block suffix: `a` -> 0, `z` -> 25, `aa` -> 26."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("a") + 1
    return index - 1


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn EfficientNet to timm's `tf_efficientnet`.

    Args:
        model: The keras_cnn model.
        config: Its builder arguments (unused: the layer names carry the structure).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.

    Raises:
        ValueError: for an unknown style or a layer without a timm counterpart.
    """
    del config
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    names = {layer.name for layer in model.layers}

    def block(match):
        name, part = match.group("name"), match.group("part")
        prefix = f"blocks.{int(match.group('stage')) - 1}.{block_index(match.group('letters'))}"
        if f"{name}_expand_conv" in names:  # InvertedResidual
            modules = {"expand_conv": "conv_pw", "expand_bn": "bn1", "dwconv": "conv_dw", "bn": "bn2",
                       "project_conv": "conv_pwl", "project_bn": "bn3"}
        else:  # DepthwiseSeparableConv
            modules = {"dwconv": "conv_dw", "bn": "bn1", "project_conv": "conv_pw", "project_bn": "bn2"}
        modules.update(se_reduce="se.conv_reduce", se_expand="se.conv_expand")
        if part not in modules:
            raise ValueError(f"Layer {match.group(0)!r} has no counterpart in timm's tf_efficientnet")
        kind = ("depthwise" if part == "dwconv" else "batchnorm" if part.endswith("bn")
                else "conv")
        return f"{prefix}.{modules[part]}", kind

    rules = (
        (r"stem_conv", ("conv_stem", "conv")),
        (r"stem_bn", ("bn1", "batchnorm")),
        (r"top_conv", ("conv_head", "conv")),
        (r"top_bn", ("bn2", "batchnorm")),
        (r"predictions", ("classifier", "dense")),
        (r"(?P<name>block(?P<stage>\d+)(?P<letters>[a-z]+))_(?P<part>\w+)", block),
    )
    return rule_mappings(model, rules, style)
