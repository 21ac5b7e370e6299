"""Weights of SqueezeNet: torchvision's `squeezenet1_0` and `squeezenet1_1`.

torchvision's `features` Sequential is the stem conv (0) and its ReLU (1), then the max
pools and Fire modules (`squeeze`, `expand1x1`, `expand3x3`) in network order; the
classifier conv is `classifier.1` (after a dropout). Fire indices follow from the
builder's `pool_after` table. The bypass variant's identity shortcuts add no weights, so
`squeezenet1_0_bypass` loads `squeezenet1_0`'s checkpoint (with other outputs: it is a
different network, for fine-tuning).
"""

from keras_cnn.weights.families._common import SourceSpec
from keras_cnn.weights.spec import LayerMapping, WeightsSpec, torchvision_tag

SOURCES = {
    "squeezenet1_0": {"torchvision": SourceSpec("torchvision", "squeezenet1_0")},
    "squeezenet1_1": {"torchvision": SourceSpec("torchvision", "squeezenet1_1")},
}
STYLES = ("default",)
STEM_MODULES = 2  # Conv2d, ReLU
FIRST_FIRE = 2  # keras_cnn numbers Fire modules from fire2, as the paper


def optional_sources(style):
    """Source modules a model built without its classifier conv leaves unused."""
    del style
    return ("classifier",)


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn SqueezeNet to torchvision's.

    Args:
        model: The keras_cnn model.
        config: Its builder arguments (`fire_modules`, `pool_after`).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping` (a complex-bypass conv has no counterpart and is reported
        as an unfed variable).
    """
    from keras_cnn.models.squeezenet import FIRE_MODULES

    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    pool_after = config["pool_after"]
    fires = len(config.get("fire_modules", FIRE_MODULES))
    mappings = [LayerMapping("stem_conv", "features.0", "conv")]
    index = STEM_MODULES
    for position in range(fires + 1):
        if position in pool_after:
            index += 1
        if position < fires:
            fire = f"fire{position + FIRST_FIRE}"
            for part in ("squeeze", "expand1x1", "expand3x3"):
                mappings.append(LayerMapping(f"{fire}_{part}_conv", f"features.{index}.{part}", "conv"))
            index += 1
    if any(layer.name == "conv10_conv" for layer in model.layers):
        mappings.append(LayerMapping("conv10_conv", "classifier.1", "conv"))
    return mappings


# torchvision 0.29's SqueezeNet1_*_Weights.IMAGENET1K_V1.
TAGS = (
    torchvision_tag("squeezenet1_0", "IMAGENET1K_V1", "squeezenet1_0-b66bff10.pth", 58.092),
    torchvision_tag("squeezenet1_1", "IMAGENET1K_V1", "squeezenet1_1-b8a52dc0.pth", 58.178),
)

WEIGHTS = WeightsSpec(family="squeezenet", title="SqueezeNet", sources=SOURCES, styles=STYLES,
                      layer_mappings=layer_mappings, optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
