"""Weights of VGG: keras.applications' VGG16/VGG19 and torchvision's `vgg11/13/16/19` and `vgg*_bn`.

torchvision's `features` is one Sequential: per conv `Conv2d` (+ `BatchNorm2d`) + `ReLU`,
a `MaxPool2d` closing each stage; its index of each conv and BN follows from the builder's
`depths` and `batch_norm`. The top is `classifier.{0, 3, 6}`; the first reads the 7x7
feature map flattened in PyTorch's channels-first order, which the conversion reorders.
"""

from keras_cnn.weights.families._common import SourceSpec
from keras_cnn.weights.spec import KerasApplicationsPort, LayerMapping, WeightsSpec, torchvision_tag

# keras.applications VGG16/VGG19 were trained on "caffe" input (BGR, mean subtraction).
KERAS_APPLICATIONS = {
    f"VGG{d}": KerasApplicationsPort(f"vgg{d}", "caffe", bgr_conv="block1_conv1_conv")
    for d in (16, 19)
}


def keras_layer_name(name):
    """Maps a keras_cnn VGG layer name to keras.applications' (`block1_conv1_conv` ->
    `block1_conv1`; the fully connected layers share their names)."""
    return name[: -len("_conv")] if name.endswith("_conv") else name


SOURCES = {
    f"vgg{depth}{bn}": {"torchvision": SourceSpec("torchvision", f"vgg{depth}{bn}")}
    for depth in (11, 13, 16, 19) for bn in ("", "_bn")
}
STYLES = ("default",)
CLASSIFIER_INDICES = (0, 3, 6)  # Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear


def optional_sources(style):
    """Source modules a model built without its fully connected top leaves unused."""
    del style
    return ("classifier",)


def flattened_shape(model):
    """The `(height, width, channels)` map the first fully connected layer flattens."""
    return tuple(int(d) for d in model.get_layer("flatten").input.shape[1:])


def dense_top_mappings(model, indices):
    """`fc1`, `fc2`, ..., `predictions` -> `classifier.{index}` (shared with AlexNet)."""
    dense = [layer.name for layer in model.layers if layer.name.startswith("fc") and layer.weights]
    dense.append("predictions")
    if len(dense) != len(indices):
        raise ValueError(
            f"{model.name!r} has {len(dense)} fully connected layers {dense}, but the torchvision "
            f"classifier has {len(indices)}"
        )
    mappings = []
    for position, (target, index) in enumerate(zip(dense, indices)):
        flattened = flattened_shape(model) if position == 0 else None
        mappings.append(LayerMapping(target, f"classifier.{index}", "dense", flattened_from=flattened))
    return mappings


def layer_mappings(model, config, style="default"):
    """Maps every layer with weights of a keras_cnn VGG to torchvision's.

    Args:
        model: The keras_cnn model.
        config: Its builder arguments (`depths`, `batch_norm`).
        style: `"default"` (the only layout).

    Returns:
        A list of `LayerMapping`.
    """
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, received style={style!r}")
    batch_norm = config.get("batch_norm", False)
    mappings, index = [], 0
    for stage, depth in enumerate(config["depths"], start=1):
        for conv in range(1, depth + 1):
            name = f"block{stage}_conv{conv}"
            mappings.append(LayerMapping(f"{name}_conv", f"features.{index}", "conv"))
            if batch_norm:
                mappings.append(LayerMapping(f"{name}_bn", f"features.{index + 1}", "batchnorm"))
            index += 3 if batch_norm else 2  # conv (+ bn) + relu
        index += 1  # max pool
    if any(layer.name == "predictions" for layer in model.layers):
        mappings.extend(dense_top_mappings(model, CLASSIFIER_INDICES))
    return mappings


# torchvision 0.29's VGG*_Weights.IMAGENET1K_V1.
TAGS = (
    torchvision_tag("vgg11", "IMAGENET1K_V1", "vgg11-8a719046.pth", 69.020),
    torchvision_tag("vgg11_bn", "IMAGENET1K_V1", "vgg11_bn-6002323d.pth", 70.370),
    torchvision_tag("vgg13", "IMAGENET1K_V1", "vgg13-19584684.pth", 69.928),
    torchvision_tag("vgg13_bn", "IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", 71.586),
    torchvision_tag("vgg16", "IMAGENET1K_V1", "vgg16-397923af.pth", 71.592),
    torchvision_tag("vgg16_bn", "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 73.360),
    torchvision_tag("vgg19", "IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", 72.376),
    torchvision_tag("vgg19_bn", "IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", 74.218),
)

WEIGHTS = WeightsSpec(family="vgg", title="VGG", keras_applications=KERAS_APPLICATIONS,
                      keras_layer_name=keras_layer_name, sources=SOURCES, styles=STYLES,
                      layer_mappings=layer_mappings, optional_sources=optional_sources, tags=TAGS)
source_spec = WEIGHTS.source_spec
