"""Weights of DenseNet: keras.applications' DenseNet121/169/201, and torchvision's (and timm's)
`densenet121/161/169/201`.

Both libraries name the modules `features.conv0`/`norm0` (stem),
`features.denseblock{b}.denselayer{i}.norm1/conv1/norm2/conv2`,
`features.transition{b}.norm/conv`, `features.norm5` and `classifier`. keras_cnn's
keras.applications names count blocks from 2 (`conv2_block1_0_bn`, transition `pool2`).
torchvision's downloadable checkpoints still spell `norm.1`, `conv.2`, ... (an old PyTorch
naming torchvision itself rewrites on load); `canonical_state_dict` does the same.
"""

import re

from keras_cnn.weights.families._common import SourceSpec, rule_mappings
from keras_cnn.weights.spec import KerasApplicationsPort, WeightsSpec, torchvision_tag

# keras.applications DenseNets use torchvision's preprocessing ("torch" mode: the
# ImageNet mean/std of [0, 1] images) and keras_cnn's layer names (the default
# `keras_layer_name`).
KERAS_APPLICATIONS = {
    f"DenseNet{depth}": KerasApplicationsPort(f"densenet{depth}", "imagenet")
    for depth in (121, 169, 201)
}

SOURCES = {
    f"densenet{depth}": {"torchvision": SourceSpec("torchvision", f"densenet{depth}"),
                         "timm": SourceSpec("timm", f"densenet{depth}")}
    for depth in (121, 161, 169, 201)
}
STYLES = ("default",)
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def optional_sources(style):
    """Source modules a model built without its classifier leaves unused."""
    del style
    return ("classifier",)


def canonical_state_dict(state_dict, style="default"):
    """Renames torchvision's legacy `denselayer{i}.norm.1.weight` keys to `norm1.weight`."""
    del style
    renamed = {}
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def _block(match):
    layer = f"features.denseblock{int(match.group('stage')) - 1}.denselayer{match.group('index')}"
    module, kind = {"0_bn": ("norm1", "batchnorm"), "1_conv": ("conv1", "conv"),
                    "1_bn": ("norm2", "batchnorm"), "2_conv": ("conv2", "conv")}[match.group("part")]
    return f"{layer}.{module}", kind


def _transition(match):
    module, kind = {"bn": ("norm", "batchnorm"), "conv": ("conv", "conv")}[match.group("part")]
    return f"features.transition{int(match.group('stage')) - 1}.{module}", kind


RULES = (
    (r"conv1_conv", ("features.conv0", "conv")),
    (r"conv1_bn", ("features.norm0", "batchnorm")),
    (r"conv(?P<stage>\d+)_block(?P<index>\d+)_(?P<part>0_bn|1_conv|1_bn|2_conv)", _block),
    (r"pool(?P<stage>\d+)_(?P<part>bn|conv)", _transition),
    (r"bn", ("features.norm5", "batchnorm")),
    (r"predictions", ("classifier", "dense")),
)


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn ImageNet DenseNet to torchvision's.

    Args:
        model: The keras_cnn model.
        config: Its builder arguments (a CIFAR stem or plain, non-bottleneck layers have no
            torchvision counterpart and are reported by layer name).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.
    """
    del config
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    return rule_mappings(model, RULES, style)


# torchvision 0.29's DenseNet*_Weights.IMAGENET1K_V1.
TAGS = (
    torchvision_tag("densenet121", "IMAGENET1K_V1", "densenet121-a639ec97.pth", 74.434),
    torchvision_tag("densenet161", "IMAGENET1K_V1", "densenet161-8d451a50.pth", 77.138),
    torchvision_tag("densenet169", "IMAGENET1K_V1", "densenet169-b2777c0a.pth", 75.600),
    torchvision_tag("densenet201", "IMAGENET1K_V1", "densenet201-c1103571.pth", 76.896),
)

WEIGHTS = WeightsSpec(family="densenet", title="DenseNet", keras_applications=KERAS_APPLICATIONS,
                      sources=SOURCES, styles=STYLES, layer_mappings=layer_mappings,
                      optional_sources=optional_sources, canonical_state_dict=canonical_state_dict, tags=TAGS)
source_spec = WEIGHTS.source_spec
