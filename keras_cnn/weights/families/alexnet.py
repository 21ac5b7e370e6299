"""Weights of AlexNet: torchvision's `alexnet` (the single-tower network).

torchvision's `features` Sequential holds the convs at 0, 3, 6, 8, 10 (with ReLUs and
max pools between) and `classifier` the linear layers at 1, 4, 6 (after dropouts); the
first reads the 6x6 map flattened channels first, which the conversion reorders. The
conv indices follow from the builder's `convs` table (each conv is followed by a ReLU,
and by a max pool where `pool` is set). The paper's two-tower `alexnet_paper` (LRN,
grouped convs) has no torchvision checkpoint.
"""

from keras_cnn.weights.families._common import SourceSpec
from keras_cnn.weights.families.vgg import dense_top_mappings
from keras_cnn.weights.spec import LayerMapping, WeightsSpec, torchvision_tag

SOURCES = {"alexnet": {"torchvision": SourceSpec("torchvision", "alexnet")}}
STYLES = ("default",)
CLASSIFIER_INDICES = (1, 4, 6)  # Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear


def optional_sources(style):
    """Source modules a model built without its fully connected top leaves unused."""
    del style
    return ("classifier",)


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn AlexNet to torchvision's.

    Args:
        model: The keras_cnn model.
        config: Its builder arguments (`convs`).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.
    """
    from keras_cnn.models.alexnet import TORCHVISION_CONVS

    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    mappings, index = [], 0
    for number, row in enumerate(config.get("convs", TORCHVISION_CONVS), start=1):
        if row.get("lrn"):
            raise ValueError(f"torchvision's AlexNet has no response normalisation, received convs row {row!r}")
        mappings.append(LayerMapping(f"conv{number}_conv", f"features.{index}", "conv"))
        index += 3 if row.get("pool") else 2  # conv + relu (+ max pool)
    if any(layer.name == "predictions" for layer in model.layers):
        mappings.extend(dense_top_mappings(model, CLASSIFIER_INDICES))
    return mappings


# torchvision 0.29's AlexNet_Weights.IMAGENET1K_V1.
TAGS = (torchvision_tag("alexnet", "IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", 56.522),)

WEIGHTS = WeightsSpec(family="alexnet", title="AlexNet", sources=SOURCES, styles=STYLES,
                      layer_mappings=layer_mappings, optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
