"""Weights of EfficientNet: keras.applications' EfficientNetB0-B7 (whose layer names keras_cnn
carries, so they port by name) and timm's TF ports `tf_efficientnet_b0`..`b7` and `_l2`.

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

import math

import keras

from keras_cnn.weights.families._common import TF_BN_EPSILON, SourceSpec, rule_mappings
from keras_cnn.weights.spec import KerasApplicationsPort, WeightsSpec, timm_tag


def keras_applications_normalization(ka_model):
    """The `(mean, std)` equal to a keras.applications EfficientNet's in-model preprocessing.

    The model rescales by 1/255, applies a `Normalization` (mean, variance) and, with the
    ImageNet weights, a per-channel `Rescaling` that completes the standardisation. Those
    layers compose to `a * x + b` per channel, which is `(x - mean) / std` with
    `std = 1 / a`, `mean = -b / a`.

    Args:
        ka_model: A keras.applications EfficientNetB0-B7.

    Returns:
        `(mean, std)` per RGB channel, for [0, 255] input.
    """
    scale, shift = [1.0] * 3, [0.0] * 3
    for layer in ka_model.layers[1:]:
        if isinstance(layer, keras.layers.Rescaling):
            factor = [float(v) for v in keras.ops.convert_to_numpy(layer.scale).reshape(-1)]
            factor = factor * (3 // len(factor))
            offset = float(layer.offset)
            scale = [a * f for a, f in zip(scale, factor)]
            shift = [b * f + offset for b, f in zip(shift, factor)]
        elif isinstance(layer, keras.layers.Normalization):
            mean = keras.ops.convert_to_numpy(layer.mean).reshape(-1)
            # Keras' Normalization divides by max(sqrt(variance), epsilon).
            std = [max(math.sqrt(float(v)), keras.backend.epsilon())
                   for v in keras.ops.convert_to_numpy(layer.variance).reshape(-1)]
            scale = [a / s for a, s in zip(scale, std)]
            shift = [(b - float(m)) / s for b, m, s in zip(shift, mean, std)]
        else:
            break  # the preprocessing ends where the network begins
    return tuple(-b / a for a, b in zip(scale, shift)), tuple(1.0 / a for a in scale)


# keras_cnn's EfficientNet layers carry keras.applications' names (the default
# `keras_layer_name`); the preprocessing layers become the input normalisation.
KERAS_APPLICATIONS = {
    f"EfficientNetB{i}": KerasApplicationsPort(
        f"efficientnet_b{i}",
        keras_applications_normalization,
        skip_source_layers=("normalization", "normalization_*"),
    )
    for i in range(8)
}

# Registry name -> {library: SourceSpec}; EfficientNet-B6-Wide (Meta Pseudo Labels) has no
# timm/torchvision checkpoint.
SOURCES = {
    f"efficientnet_{key}": {"timm": SourceSpec("timm", f"tf_efficientnet_{key}", bn_epsilon=TF_BN_EPSILON)}
    for key in (*(f"b{i}" for i in range(8)), "l2")
}
STYLES = ("default",)


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


# timm's Hugging Face checkpoints (timm 1.0.31 `pretrained_cfg`; top-1 from timm's results table):
# the TF-ported ones (`tf_` = TF "same" padding, as keras_cnn builds it), AutoAugment-trained
# and Noisy Student (JFT-300M unlabeled) ones.
TAGS = (
    *(timm_tag(f"efficientnet_b{i}", f"tf_efficientnet_b{i}.aa_in1k", size, crop, "bicubic", top1)
      for i, size, crop, top1 in ((0, 224, 0.875, 76.882), (1, 240, 0.882, 78.840), (2, 260, 0.890, 80.082),
                                  (3, 300, 0.904, 81.648), (4, 380, 0.922, 83.040), (5, 456, 0.934, 83.696),
                                  (6, 528, 0.942, 84.118), (7, 600, 0.949, 84.436))),
    *(timm_tag(f"efficientnet_b{i}", f"tf_efficientnet_b{i}.ns_jft_in1k", size, crop, "bicubic", top1)
      for i, size, crop, top1 in ((0, 224, 0.875, 78.684), (1, 240, 0.882, 81.388), (2, 260, 0.890, 82.412),
                                  (3, 300, 0.904, 84.064), (4, 380, 0.922, 85.176), (5, 456, 0.934, 86.102),
                                  (6, 528, 0.942, 86.476), (7, 600, 0.949, 86.852))),
    timm_tag("efficientnet_l2", "tf_efficientnet_l2.ns_jft_in1k", 800, 0.96, "bicubic", 88.362),
    timm_tag("efficientnet_l2", "tf_efficientnet_l2.ns_jft_in1k_475", 475, 0.936, "bicubic", 88.250),
)

WEIGHTS = WeightsSpec(family="efficientnet", title="EfficientNet", keras_applications=KERAS_APPLICATIONS,
                      sources=SOURCES, styles=STYLES, layer_mappings=layer_mappings,
                      optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
