"""Weights of Inception-v3: keras.applications' InceptionV3, torchvision's `inception_v3` / timm's `inception_v3.*`.

Both libraries name the stem `Conv2d_1a_3x3`, `Conv2d_2a_3x3`, `Conv2d_2b_3x3`,
`Conv2d_3b_1x1`, `Conv2d_4a_3x3`, the modules `Mixed_5b`..`Mixed_7c` with TF-slim's branch
names (`branch5x5_1`, `branch3x3_2a`, ...; keras_cnn uses the same), each conv a
`BasicConv2d` (`.conv`, `.bn`, epsilon 1e-3), the auxiliary head `AuxLogits.conv0/conv1/fc`
and the classifier `fc`. The ImageNet weights (Google's, ported) expect [-1, 1] input:
torchvision's `transform_input=True`, timm's Inception mean/std.
"""

from keras_cnn.weights.families._common import (
    INCEPTION,
    TF_BN_EPSILON,
    SourceSpec,
    rule_mappings,
)
from keras_cnn.weights.spec import KerasApplicationsPort, WeightsSpec, torchvision_tag

# keras.applications' InceptionV3 (weights trained on "tf" [-1, 1] input) auto-numbers its
# layers (`conv2d_37`), so its weighted layers are paired with ours in creation order.
KERAS_APPLICATIONS = {
    "InceptionV3": KerasApplicationsPort(
        "inception_v3", "tf", keras_name="inception_v3", builder_args={"aux_logits": False},
        match="order",
    ),
}

# PyTorch's avg_pool2d(3, 1, padding=1) counts the padding (count_include_pad=True).
_SPEC = {"input_normalization": INCEPTION, "bn_epsilon": TF_BN_EPSILON, "builder_args": {"avg_pool_padding": "include"}}
SOURCES = {
    "inception_v3": {"torchvision": SourceSpec("torchvision", "inception_v3", **_SPEC),
                     "timm": SourceSpec("timm", "inception_v3", **_SPEC)},
}
STYLES = ("default",)
_KIND = {"conv": "conv", "bn": "batchnorm"}


def optional_sources(style):
    """Source modules a model without its classifier or auxiliary head leaves unused."""
    del style
    return ("fc", "AuxLogits")


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn Inception-v3 to torchvision's.

    Args:
        model: The keras_cnn model (SE-Inception-v3's SE layers have no counterpart and
            are reported by name).
        config: Its builder arguments (unused).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.
    """
    del config
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    stem = {"1a": "Conv2d_1a_3x3", "2a": "Conv2d_2a_3x3", "2b": "Conv2d_2b_3x3", "3b": "Conv2d_3b_1x1",
            "4a": "Conv2d_4a_3x3"}

    def stem_conv(match):
        return f"{stem[match.group('tag')]}.{match.group('part')}", _KIND[match.group("part")]

    def mixed(match):
        return (f"Mixed_{match.group('module')}.{match.group('branch')}.{match.group('part')}",
                _KIND[match.group("part")])

    def aux(match):
        return f"AuxLogits.{match.group('conv')}.{match.group('part')}", _KIND[match.group("part")]

    rules = (
        (r"stem_(?P<tag>1a|2a|2b|3b|4a)_(?P<part>conv|bn)", stem_conv),
        (r"mixed_(?P<module>\d[a-e])_(?P<branch>branch\w+?)_(?P<part>conv|bn)", mixed),
        (r"aux_(?P<conv>conv[01])_(?P<part>conv|bn)", aux),
        (r"aux_predictions", ("AuxLogits.fc", "dense")),
        (r"predictions", ("fc", "dense")),
    )
    return rule_mappings(model, rules, style)


# torchvision 0.29's Inception_V3_Weights.IMAGENET1K_V1 (resize 342, crop 299).
TAGS = (torchvision_tag("inception_v3", "IMAGENET1K_V1", "inception_v3_google-0cc3c7bd.pth", 77.294,
                        resize=342, crop=299),)

WEIGHTS = WeightsSpec(family="inception_v3", title="Inception-v3", keras_applications=KERAS_APPLICATIONS,
                      sources=SOURCES, styles=STYLES, layer_mappings=layer_mappings,
                      optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
