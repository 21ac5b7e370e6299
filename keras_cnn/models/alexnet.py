"""AlexNet: torchvision's single-tower network and the paper's two-GPU original.

Reference: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012. torchvision's `alexnet` is the single-tower variant of
Krizhevsky, "One weird trick for parallelizing convolutional neural networks", 2014
(64-192-384-256-256 filters, no response normalisation).

Both are rows of `VARIANTS` for the one builder `AlexNetFamily` (the registry name `alexnet`
takes the CamelCase `AlexNet`); the paper's split over two GPUs is `groups=2` on the
convolutions that saw only their own GPU's maps (conv2, conv4, conv5).
The fully connected top (`fully_connected_top`) is shared with VGG and LeNet-5.
"""

import keras
from keras import layers

from keras_cnn.layers import LocalResponseNormalization, conv_bn_act
from keras_cnn.models.base import (
    build_classifier,
    check_choice,
    check_int_sequence,
    check_positive_int,
    family_builder,
    head_dtype,
)
from keras_cnn.registry import register_variants

FC_UNITS = 4096  # both hidden fully connected layers
FC_DROPOUT = 0.5  # paper §4.2
POOL_SIZE = 3  # overlapping max pooling, 3x3 windows with stride 2 (paper §3.4)
POOL_STRIDE = 2
TORCHVISION_GRID = 6  # torchvision's AdaptiveAvgPool2d((6, 6)): the paper's 6x6x256 maps
# Paper §3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75, with alpha multiplying the plain sum
# of squares; LocalResponseNormalization (torch semantics) divides alpha by n.
LRN_SIZE = 5
LRN_ALPHA = 1e-4 * LRN_SIZE
LRN_BETA = 0.75
LRN_K = 2.0
TWO_GPUS = 2

# One row per convolution. `padding` is explicit (PyTorch's), `pool` adds the overlapping
# max pool after it and `lrn` the response normalisation between its ReLU and the pool.
TORCHVISION_CONVS = (
    {"filters": 64, "kernel": 11, "stride": 4, "padding": 2, "pool": True},
    {"filters": 192, "kernel": 5, "padding": 2, "pool": True},
    {"filters": 384, "kernel": 3, "padding": 1},
    {"filters": 256, "kernel": 3, "padding": 1},
    {"filters": 256, "kernel": 3, "padding": 1, "pool": True},
)
PAPER_CONVS = (
    # The paper's 224x224 input, padded by 2 as torchvision does, gives its 55x55 conv1
    # maps (Caffe's bvlc_alexnet reaches the same maps from 227x227 without padding).
    {"filters": 96, "kernel": 11, "stride": 4, "padding": 2, "lrn": True, "pool": True},
    {"filters": 256, "kernel": 5, "padding": 2, "groups": TWO_GPUS, "lrn": True, "pool": True},
    {"filters": 384, "kernel": 3, "padding": 1},
    {"filters": 384, "kernel": 3, "padding": 1, "groups": TWO_GPUS},
    {"filters": 256, "kernel": 3, "padding": 1, "groups": TWO_GPUS, "pool": True},
)
CONV_ROW_DEFAULTS = {"stride": 1, "padding": 0, "groups": 1, "lrn": False, "pool": False}
DROPOUT_POSITIONS = ("before_dense", "after_activation")

VARIANTS = [
    {"name": "alexnet", "builder_name": "AlexNet", "config": {},
     "variant": "AlexNet as torchvision: single tower 64-192-384-256-256, no LRN, adaptive "
                "6x6 average pool, dropout before each hidden FC layer",
     "reference": "torchvision alexnet",
     "paper": "One weird trick for parallelizing convolutional neural networks "
              "(Krizhevsky, 2014)"},
    {"name": "alexnet_paper", "builder_name": "AlexNetPaper",
     "config": {"convs": PAPER_CONVS, "dropout_position": "after_activation"},
     "variant": "The paper's AlexNet: 96-256-384-384-256 with the two-GPU split as groups=2 "
                "on conv2/4/5, LRN after conv1/conv2, dropout after each hidden FC layer",
     "reference": "Caffe bvlc_alexnet (60,965,224 parameters, the paper's '60 million')"},
]


def fully_connected_top(x, *, units, activation, dropout, dropout_position, grid, classes,
                        classifier_activation):
    """The fully connected classifier of the pre-GAP networks (LeNet, AlexNet, VGG).

    The last feature map is average-pooled to a fixed `grid` (PyTorch's adaptive pooling,
    so any input size at least the network's minimum works, as in torchvision) and
    flattened; `grid=None` averages it globally instead, which equals flattening wherever
    the map is 1x1 (LeNet-5's C5 at 32x32) and also accepts unknown sizes.

    Args:
        x: Last feature map.
        units: Widths of the hidden dense layers (`fc1`, `fc2`, ...).
        activation: Activation of the hidden layers.
        dropout: Dropout rate of the hidden layers (0 disables).
        dropout_position: `"before_dense"` (torchvision AlexNet: dropout, then each hidden
            dense) or `"after_activation"` (the AlexNet paper, VGG).
        grid: Output size of the adaptive average pool, or `None` for global pooling.
        classes: Number of classes.
        classifier_activation: Activation of `predictions`.

    Returns:
        The `predictions` tensor.

    Raises:
        ValueError: if `grid` is set and the spatial input size is unknown.
    """
    if grid is None:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    else:
        if any(dim is None for dim in x.shape[1:3]):
            raise ValueError(
                "include_top=True needs a fixed spatial size (the top pools to a "
                f"{grid}x{grid} grid and flattens it); use include_top=False for free sizes, "
                f"received an input_shape giving a feature map of shape {tuple(x.shape[1:])}"
            )
        x = layers.AdaptiveAveragePooling2D(grid, name="adaptive_pool")(x)
        x = layers.Flatten(name="flatten")(x)
    for index, width in enumerate(units, start=1):
        if dropout and dropout_position == "before_dense":
            x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
        x = layers.Dense(width, name=f"fc{index}")(x)
        x = layers.Activation(activation, name=f"fc{index}_{activation}")(x)
        if dropout and dropout_position == "after_activation":
            x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    return layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                        name="predictions")(x)


def check_fixed_size_for_top(include_top, input_shape, input_tensor):
    """Raises `ValueError` naming `input_shape` when a flattening top meets free sizes."""
    if not include_top:
        return
    shape = input_shape
    if input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
        shape = tuple(input_tensor.shape[1:])
    if isinstance(shape, (list, tuple)) and len(shape) == 3 and None in tuple(shape[:2]):
        raise ValueError(
            "include_top=True needs fixed spatial sizes (the fully connected top flattens a "
            "fixed grid; include_top=False takes free sizes), received "
            f"input_shape={tuple(shape)!r}"
        )


def check_conv_rows(argument, rows):
    """Validates a table of convolution rows; returns them with the defaults filled in."""
    allowed = {"filters", "kernel", *CONV_ROW_DEFAULTS}
    if not isinstance(rows, (list, tuple)) or not rows or not all(
        isinstance(row, dict) and {"filters", "kernel"} <= set(row) <= allowed for row in rows
    ):
        raise ValueError(
            f"`{argument}` must be a non-empty sequence of dicts with keys filters, kernel and "
            f"optionally {sorted(CONV_ROW_DEFAULTS)}, received {argument}={rows!r}"
        )
    filled = [{**CONV_ROW_DEFAULTS, **row} for row in rows]
    for row in filled:
        for key in ("filters", "kernel", "stride", "groups"):
            check_positive_int(argument, row[key])
        check_positive_int(argument, row["padding"], minimum=0)
        if row["filters"] % row["groups"]:
            raise ValueError(f"`{argument}` rows need filters divisible by groups, received "
                             f"{argument}={rows!r}")
        if not isinstance(row["lrn"], bool) or not isinstance(row["pool"], bool):
            raise ValueError(f"`{argument}` rows need True/False for lrn and pool, received "
                             f"{argument}={rows!r}")
    in_channels = [None] + [row["filters"] for row in filled[:-1]]
    for channels, row in zip(in_channels, filled):
        if channels is not None and channels % row["groups"]:
            raise ValueError(f"`{argument}` rows need input channels divisible by groups, "
                             f"received {argument}={rows!r}")
    return filled


def _min_input_size(rows):
    """The smallest input size for which every conv and pool has a non-empty output."""
    for size in range(1, 4096):
        current, fits = size, True
        for row in rows:
            current = (current + 2 * row["padding"] - row["kernel"]) // row["stride"] + 1
            fits = fits and current >= 1
            if row["pool"]:
                fits = fits and current >= POOL_SIZE
                current = (current - POOL_SIZE) // POOL_STRIDE + 1
        if fits:
            return size
    raise ValueError("the convolution table shrinks every input below 1 pixel")


def alexnet_features(x, rows):
    """The convolutional tower: one `conv{i}` block per row of `rows`.

    Args:
        x: Input tensor.
        rows: Convolution rows (see `TORCHVISION_CONVS`), defaults filled in.

    Returns:
        The last feature map.
    """
    for index, row in enumerate(rows, start=1):
        name = f"conv{index}"
        if row["padding"]:
            # PyTorch's explicit padding; conv1's 2 is not the k // 2 of "symmetric".
            x = layers.ZeroPadding2D(row["padding"], name=f"{name}_pad")(x)
        x = conv_bn_act(x, row["filters"], row["kernel"], strides=row["stride"],
                        groups=row["groups"], padding="valid", use_bias=True, norm=False,
                        name=name)
        if row["lrn"]:
            x = LocalResponseNormalization(LRN_SIZE, alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K,
                                           name=f"{name}_lrn")(x)
        if row["pool"]:
            x = layers.MaxPooling2D(POOL_SIZE, POOL_STRIDE, name=f"{name}_pool")(x)
    return x


@family_builder(name="alexnet")
def AlexNetFamily(
    convs=TORCHVISION_CONVS,
    *,
    fc_units=(FC_UNITS, FC_UNITS),
    grid=TORCHVISION_GRID,
    dropout_position="before_dense",
    dropout=FC_DROPOUT,
    **head,
):
    """Builds any AlexNet (the generic builder; `AlexNet` is the registered torchvision one).

    Args:
        convs: Convolution rows: dicts with `filters`, `kernel` and optionally `stride`,
            `padding` (explicit, PyTorch's), `groups`, `lrn` and `pool` (see
            `TORCHVISION_CONVS`, `PAPER_CONVS`).
        fc_units: Widths of the hidden fully connected layers.
        grid: Output size of the adaptive average pool before the fully connected layers.
        dropout_position: `"before_dense"` (torchvision) or `"after_activation"` (paper).
        dropout: Dropout rate of the hidden fully connected layers.
        include_top: Whether to include the fully connected top.
        input_shape: Optional `(height, width, channels)`; with `include_top=True` the
            spatial sizes must be known.
        pooling: Global pooling for `include_top=False` (`None`, `"avg"`, `"max"`); the
            fully connected top ignores it.

    Returns:
        A `keras.Model`.
    """
    rows = check_conv_rows("convs", convs)
    check_int_sequence("fc_units", fc_units)
    check_positive_int("grid", grid)
    check_choice("dropout_position", dropout_position, DROPOUT_POSITIONS)
    check_fixed_size_for_top(head["include_top"], head["input_shape"], head["input_tensor"])

    def top(x, *, classes, classifier_activation, dropout, pooling):
        del pooling  # the fully connected top has its own adaptive pool
        return fully_connected_top(x, units=fc_units, activation="relu", dropout=dropout,
                                   dropout_position=dropout_position, grid=grid,
                                   classes=classes, classifier_activation=classifier_activation)

    return build_classifier(lambda x: alexnet_features(x, rows), min_size=_min_input_size(rows),
                            dropout=dropout, top_fn=top, **head)


__all__ = ["AlexNetFamily"] + register_variants(
    AlexNetFamily,
    VARIANTS,
    family="alexnet",
    paper="ImageNet Classification with Deep Convolutional Neural Networks "
          "(Krizhevsky et al., 2012)",
    namespace=globals(),
)
