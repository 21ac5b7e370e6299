"""Weights of GoogLeNet: torchvision's `googlenet`, auxiliary heads included.

torchvision names the stem `conv1`..`conv3` and each module `inception{3a..5b}` with
branches `branch1`, `branch2.{0: reduce, 1: 3x3}`, `branch3.{0, 1}`, `branch4.1` (after
the pool), every conv a `BasicConv2d` (`.conv`, `.bn`, epsilon 1e-3). The auxiliary heads
are `aux{1,2}.conv` and `aux{1,2}.fc1/fc2` (`fc1` reads the 4x4 map flattened channels
first) and the classifier `fc`. torchvision's ImageNet weights are used with
`transform_input=True`, which turns its ImageNet-normalised input into [-1, 1] input:
the converted model normalises with mean = std = 0.5 (`"tf"`).
"""

from keras_cnn.weights.families._common import (
    INCEPTION,
    TF_BN_EPSILON,
    SourceSpec,
    rule_mappings,
)
from keras_cnn.weights.spec import LayerMapping, WeightsSpec, torchvision_tag

SOURCES = {
    "googlenet": {"torchvision": SourceSpec("torchvision", "googlenet", input_normalization=INCEPTION,
                                            bn_epsilon=TF_BN_EPSILON)},
}
STYLES = ("default",)
_KIND = {"conv": "conv", "bn": "batchnorm"}
_BRANCHES = {"branch1": "branch1", "branch2_reduce": "branch2.0", "branch2": "branch2.1",
             "branch3_reduce": "branch3.0", "branch3": "branch3.1", "branch4": "branch4.1"}


def optional_sources(style):
    """Source modules a model without its classifier or auxiliary heads leaves unused."""
    del style
    return ("fc", "aux1", "aux2")


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn GoogLeNet to torchvision's.

    Args:
        model: The keras_cnn model (`googlenet`; the paper's and SE variants have layers
            without a torchvision counterpart, reported by name).
        config: Its builder arguments (unused).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.
    """
    del config
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")

    def module(match):
        return (f"{match.group('module')}.{_BRANCHES[match.group('branch')]}.{match.group('part')}",
                _KIND[match.group("part")])

    def aux_fc(match):
        return f"{match.group('aux')}.fc1", "dense"

    rules = (
        (r"(?P<stem>conv[123])_(?P<part>conv|bn)", ("{stem}.{part}", None)),
        (r"(?P<module>inception\d[a-e])_(?P<branch>branch\d(?:_reduce)?)_(?P<part>conv|bn)", module),
        (r"(?P<aux>aux[12])_proj_(?P<part>conv|bn)", ("{aux}.conv.{part}", None)),
        (r"(?P<aux>aux[12])_fc", aux_fc),
        (r"(?P<aux>aux[12])_predictions", ("{aux}.fc2", "dense")),
        (r"predictions", ("fc", "dense")),
    )
    mappings = []
    for mapping in rule_mappings(model, rules, style):
        kind = mapping.kind or _KIND[mapping.source.rsplit(".", 1)[1]]
        flattened = None
        if mapping.target.endswith("_fc"):  # reads Flatten(4x4 pooled map)
            aux = mapping.target[: -len("_fc")]
            flattened = tuple(int(d) for d in model.get_layer(f"{aux}_flatten").input.shape[1:])
        mappings.append(LayerMapping(mapping.target, mapping.source, kind, flattened_from=flattened))
    return mappings


# torchvision 0.29's GoogLeNet_Weights.IMAGENET1K_V1.
TAGS = (torchvision_tag("googlenet", "IMAGENET1K_V1", "googlenet-1378be20.pth", 69.778),)

WEIGHTS = WeightsSpec(family="googlenet", title="GoogLeNet", sources=SOURCES, styles=STYLES,
                      layer_mappings=layer_mappings, optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
