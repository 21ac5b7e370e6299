"""VGG-11/13/16/19 and their batch-norm versions, as torchvision builds them.

Reference: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (configurations A, B, D and E of Table 1).

Five stages of 3x3 convolutions, each closed by a 2x2 max pool, then the fully connected
top shared with AlexNet (adaptive 7x7 average pool, two 4096-wide layers with dropout).
Layers carry keras.applications' names (`block{s}_conv{i}`, `fc1`, `fc2`, `predictions`),
so its ImageNet VGG16/VGG19 weights port by name.
"""

from keras import layers

from keras_cnn.layers import conv_bn_act
from keras_cnn.models.alexnet import (
    FC_DROPOUT,
    FC_UNITS,
    check_fixed_size_for_top,
    fully_connected_top,
)
from keras_cnn.models.base import (
    build_classifier,
    check_bool,
    check_int_sequence,
    check_positive_int,
    family_builder,
)
from keras_cnn.registry import register_variants

STAGE_WIDTHS = (64, 128, 256, 512, 512)
POOL_SIZE = 2  # 2x2 max pool, stride 2, after every stage
CONV_KERNEL = 3
TORCHVISION_GRID = 7  # AdaptiveAvgPool2d((7, 7)): the 7x7x512 maps of a 224 input

# Convolutions per stage of each configuration (Table 1 of the paper).
DEPTHS = {
    11: (1, 1, 2, 2, 2),  # A
    13: (2, 2, 2, 2, 2),  # B
    16: (2, 2, 3, 3, 3),  # D
    19: (2, 2, 4, 4, 4),  # E
}
WITH_KERAS_APPLICATIONS = (16, 19)



# One row per registered name.
VARIANTS = [
    {"name": "vgg11", "builder_name": "VGG11",
     "config": {"depths": DEPTHS[11], "batch_norm": False},
     "variant": "VGG-11 (configuration A), torchvision's adaptive 7x7 average pool before the "
                "FC layers",
     "reference": "torchvision vgg11"},
    {"name": "vgg13", "builder_name": "VGG13",
     "config": {"depths": DEPTHS[13], "batch_norm": False},
     "variant": "VGG-13 (configuration B), torchvision's adaptive 7x7 average pool before the "
                "FC layers",
     "reference": "torchvision vgg13"},
    {"name": "vgg16", "builder_name": "VGG16",
     "config": {"depths": DEPTHS[16], "batch_norm": False},
     "variant": "VGG-16 (configuration D), torchvision's adaptive 7x7 average pool before the "
                "FC layers",
     "reference": "torchvision vgg16 (same count as keras.applications VGG16)",
     "pretrained": ("imagenet",)},
    {"name": "vgg19", "builder_name": "VGG19",
     "config": {"depths": DEPTHS[19], "batch_norm": False},
     "variant": "VGG-19 (configuration E), torchvision's adaptive 7x7 average pool before the "
                "FC layers",
     "reference": "torchvision vgg19 (same count as keras.applications VGG19)",
     "pretrained": ("imagenet",)},
    {"name": "vgg11_bn", "builder_name": "VGG11BN",
     "config": {"depths": DEPTHS[11], "batch_norm": True},
     "variant": "VGG-11 (configuration A) with batch norm after every conv (conv biases kept, "
                "as torchvision), torchvision's adaptive 7x7 average pool before the FC layers",
     "reference": "torchvision vgg11_bn"},
    {"name": "vgg13_bn", "builder_name": "VGG13BN",
     "config": {"depths": DEPTHS[13], "batch_norm": True},
     "variant": "VGG-13 (configuration B) with batch norm after every conv (conv biases kept, "
                "as torchvision), torchvision's adaptive 7x7 average pool before the FC layers",
     "reference": "torchvision vgg13_bn"},
    {"name": "vgg16_bn", "builder_name": "VGG16BN",
     "config": {"depths": DEPTHS[16], "batch_norm": True},
     "variant": "VGG-16 (configuration D) with batch norm after every conv (conv biases kept, "
                "as torchvision), torchvision's adaptive 7x7 average pool before the FC layers",
     "reference": "torchvision vgg16_bn"},
    {"name": "vgg19_bn", "builder_name": "VGG19BN",
     "config": {"depths": DEPTHS[19], "batch_norm": True},
     "variant": "VGG-19 (configuration E) with batch norm after every conv (conv biases kept, "
                "as torchvision), torchvision's adaptive 7x7 average pool before the FC layers",
     "reference": "torchvision vgg19_bn"},
]


def vgg_stage(x, filters, depth, *, batch_norm, name):
    """`depth` 3x3 convolutions (with ReLU, optionally batch norm) and a 2x2 max pool.

    Args:
        x: Input tensor.
        filters: Width of the stage.
        depth: Number of convolutions.
        batch_norm: Batch norm after every convolution.
        name: Stage prefix (`"block1"`).

    Returns:
        Output tensor.
    """
    for index in range(1, depth + 1):
        # torchvision's vgg*_bn keep the conv bias although BN cancels it: the reference
        # counts (vgg16_bn's 138,365,992) and its checkpoints include it.
        x = conv_bn_act(x, filters, CONV_KERNEL, use_bias=True, norm=batch_norm,
                        name=f"{name}_conv{index}")
    return layers.MaxPooling2D(POOL_SIZE, POOL_SIZE, name=f"{name}_pool")(x)


@family_builder(name="vgg")
def VGG(
    depths,
    *,
    widths=STAGE_WIDTHS,
    batch_norm=False,
    fc_units=(FC_UNITS, FC_UNITS),
    grid=TORCHVISION_GRID,
    dropout=FC_DROPOUT,
    **head,
):
    """Builds any VGG network.

    Args:
        depths: Number of 3x3 convolutions in each stage.
        widths: Width of each stage.
        batch_norm: Batch norm after every convolution (torchvision's `vgg*_bn`).
        fc_units: Widths of the hidden fully connected layers.
        grid: Output size of the adaptive average pool before the fully connected layers
            (7 in torchvision; at 224x224 it is the identity, as in keras.applications).
        dropout: Dropout after each hidden fully connected layer.
        include_top: Whether to include the fully connected top.
        input_shape: Optional `(height, width, channels)`; with `include_top=True` the
            spatial sizes must be known.
        pooling: Global pooling for `include_top=False` (`None`, `"avg"`, `"max"`); the
            fully connected top ignores it.

    Returns:
        A `keras.Model`.
    """
    check_int_sequence("depths", depths)
    check_int_sequence("widths", widths, length=len(depths))
    check_int_sequence("fc_units", fc_units)
    check_positive_int("grid", grid)
    check_bool("batch_norm", batch_norm)
    check_fixed_size_for_top(head["include_top"], head["input_shape"], head["input_tensor"])

    def features(x):
        for stage, (depth, width) in enumerate(zip(depths, widths), start=1):
            x = vgg_stage(x, width, depth, batch_norm=batch_norm, name=f"block{stage}")
        return x

    def top(x, *, classes, classifier_activation, dropout, pooling):
        del pooling  # the fully connected top has its own adaptive pool
        return fully_connected_top(x, units=fc_units, activation="relu", dropout=dropout,
                                   dropout_position="after_activation", grid=grid,
                                   classes=classes, classifier_activation=classifier_activation)

    return build_classifier(features, min_size=POOL_SIZE ** len(depths), dropout=dropout,
                            top_fn=top, **head)


__all__ = ["VGG"] + register_variants(
    VGG,
    VARIANTS,
    family="vgg",
    paper="Very Deep Convolutional Networks for Large-Scale Image Recognition "
          "(Simonyan & Zisserman, 2015)",
    namespace=globals(),
)
