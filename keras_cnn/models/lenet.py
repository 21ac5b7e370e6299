"""LeNet-5 in its common full-connection form, with the paper's sparse C3 as a flag.

Reference: LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proceedings of the IEEE, 1998 (Section II-B).

C1 (6@5x5) - S2 (2x2 subsampling) - C3 (16@5x5) - S4 - C5 (120@5x5) - F6 (84) - output, on
32x32 inputs. The common version has tanh units, plain average pooling and a softmax
output: 61,706 parameters for one input channel and 10 classes. The paper's own network
differs in three ways: S2/S4 have a trainable coefficient and bias per map, the output is a
layer of Euclidean RBF units, and C3 sees only some S2 maps (Table I, 1,516 instead of
2,416 parameters). The last one is the `c3_table` flag here; the other two are not built.
"""

import keras
from keras import layers, ops

from keras_cnn.layers import GroupedConv2D
from keras_cnn.models.alexnet import fully_connected_top
from keras_cnn.models.base import (
    build_classifier,
    check_bool,
    check_choice,
    check_positive_int,
    family_builder,
)
from keras_cnn.registry import register_variants

KERNEL = 5  # every convolution is 5x5, unpadded
SUBSAMPLING = 2  # S2/S4: 2x2 windows, stride 2
F6_UNITS = 84  # a 7x12 bitmap per class in the paper's RBF output
MNIST_SIZE = 32  # 28x28 digits padded to 32x32 (Section III-A)
MNIST_CLASSES = 10
POOL_TYPES = ("avg", "max")

# C1, C3, C5: one row per convolution; `pool` names the subsampling layer after it.
LENET5_CONVS = (
    {"name": "c1", "filters": 6, "pool": "s2"},
    {"name": "c3", "filters": 16, "pool": "s4"},
    {"name": "c5", "filters": 120, "pool": None},
)
# Table I: the S2 maps each C3 map sees. Six see 3 contiguous maps, six 4 contiguous, three
# 4 non-contiguous and one all six, "to break the symmetry" and save connections.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

VARIANTS = [
    {"name": "lenet5", "builder_name": "LeNet5",
     "config": {"default_size": MNIST_SIZE, "classes": MNIST_CLASSES},
     "variant": "LeNet-5, common form: tanh, average pooling, fully connected C3, softmax "
                "output; 32x32 input, 10 classes",
     "reference": "the widely published count, 61,706 for 1 input channel (62,006 for 3)"},
]


@keras.saving.register_keras_serializable(package="keras_cnn")
class ChannelGather(layers.Layer):
    """Picks input channels by index (the inputs of LeNet-5's sparsely connected C3).

    Args:
        indices: Channel indices, in output order; repeats are allowed.
        **kwargs: Standard `keras.layers.Layer` arguments.
    """

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return ops.take(inputs, self.indices, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


def sparse_conv(x, table, *, activation, name):
    """A 5x5 convolution in which output map `j` sees only the input maps `table[j]`.

    Consecutive maps with equally many inputs become one grouped convolution over the
    gathered inputs, so the parameters are exactly those of the table.

    Args:
        x: Input tensor.
        table: Input-channel indices of each output map.
        activation: Activation after the convolution.
        name: Layer prefix (`"c3"`).

    Returns:
        Output tensor with `len(table)` channels, in table order.
    """
    runs = []
    for maps in table:
        if runs and len(runs[-1][-1]) == len(maps):
            runs[-1].append(maps)
        else:
            runs.append([maps])
    outputs = []
    for index, run in enumerate(runs, start=1):
        gathered = ChannelGather([c for maps in run for c in maps],
                                 name=f"{name}_{index}_gather")(x)
        outputs.append(GroupedConv2D(len(run), KERNEL, groups=len(run),
                                     name=f"{name}_{index}_conv")(gathered))
    x = layers.Concatenate(name=f"{name}_concat")(outputs) if len(outputs) > 1 else outputs[0]
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def _min_input_size(convs):
    for size in range(1, 4096):
        current, fits = size, True
        for row in convs:
            current -= KERNEL - 1
            fits = fits and current >= 1
            if row["pool"]:
                current //= SUBSAMPLING
                fits = fits and current >= 1
        if fits:
            return size
    raise ValueError("the convolution table shrinks every input below 1 pixel")


@family_builder(classes=MNIST_CLASSES, default_size=MNIST_SIZE, name="lenet5")
def LeNet(
    convs=LENET5_CONVS,
    *,
    fc_units=(F6_UNITS,),
    activation="tanh",
    pool_type="avg",
    c3_table=False,
    dropout=0.0,
    **head,
):
    """Builds a LeNet.

    Args:
        convs: Convolution rows (`name`, `filters`, `pool`: the name of the 2x2
            subsampling layer after it, or `None`), see `LENET5_CONVS`.
        fc_units: Widths of the hidden fully connected layers (F6).
        activation: Activation of every hidden layer.
        pool_type: `"avg"` (the paper's subsampling, without its trainable coefficient) or
            `"max"`.
        c3_table: Connect the second convolution (C3) sparsely by the paper's Table I.
        dropout: Dropout after each hidden fully connected layer (the paper has none).
        include_top: Whether to include F6 and the output layer.
        input_shape: Optional `(height, width, channels)`; any channel count works.
        pooling: Global pooling for `include_top=False` (`None`, `"avg"`, `"max"`); the top
            ignores it.
        input_normalization: How the model normalises its [0, 255] input (see
            `keras_cnn.models.base.INPUT_NORMALIZATIONS`); `None` if inputs arrive normalised.

    Returns:
        A `keras.Model`. At 32x32 C5's map is 1x1 and the top is the paper's full
        connection; larger inputs give a C5 map that the top averages (the paper's remark
        that C5 is a convolution, not a fully connected layer, for larger inputs).
    """
    rows_ok = isinstance(convs, (list, tuple)) and convs and all(
        isinstance(row, dict) and set(row) == {"name", "filters", "pool"}
        and isinstance(row["name"], str) and row["name"]
        and (row["pool"] is None or isinstance(row["pool"], str))
        and not isinstance(row["filters"], bool) and isinstance(row["filters"], int)
        and row["filters"] >= 1
        for row in convs
    )
    if not rows_ok:
        raise ValueError(f"`convs` must be a non-empty sequence of dicts with keys name, filters "
                         f"(int >= 1) and pool (a name or None), received convs={convs!r}")
    if not isinstance(fc_units, (list, tuple)):
        raise ValueError(f"`fc_units` must be a sequence of integers >= 1, received "
                         f"fc_units={fc_units!r}")
    for units in fc_units:
        check_positive_int("fc_units", units)
    try:
        # A name, not a callable: it also names the activation layers.
        valid_activation = isinstance(activation, str) and keras.activations.get(activation)
    except (ValueError, TypeError):
        valid_activation = False
    if not valid_activation:
        raise ValueError(f"`activation` must be a Keras activation name, received "
                         f"activation={activation!r}")
    check_choice("pool_type", pool_type, POOL_TYPES)
    check_bool("c3_table", c3_table)
    if c3_table and (len(convs) < 2 or convs[0]["filters"] != max(max(m) for m in C3_TABLE) + 1
                     or convs[1]["filters"] != len(C3_TABLE)):
        raise ValueError(f"`c3_table` needs a first convolution of 6 and a second of 16 maps, "
                         f"received c3_table=True with convs={convs!r}")
    pool_layer = layers.AveragePooling2D if pool_type == "avg" else layers.MaxPooling2D

    def features(x):
        for index, row in enumerate(convs):
            if c3_table and index == 1:
                x = sparse_conv(x, C3_TABLE, activation=activation, name=row["name"])
            else:
                x = layers.Conv2D(row["filters"], KERNEL, name=f"{row['name']}_conv")(x)
                x = layers.Activation(activation, name=f"{row['name']}_{activation}")(x)
            if row["pool"]:
                x = pool_layer(SUBSAMPLING, name=row["pool"])(x)
        return x

    def top(x, *, classes, classifier_activation, dropout, pooling):
        del pooling  # the top averages C5's map itself
        return fully_connected_top(x, units=fc_units, activation=activation, dropout=dropout,
                                   dropout_position="after_activation", grid=None,
                                   classes=classes, classifier_activation=classifier_activation)

    return build_classifier(features, min_size=_min_input_size(convs), dropout=dropout, top_fn=top,
                            **head)


__all__ = ["LeNet"] + register_variants(
    LeNet,
    VARIANTS,
    family="lenet",
    paper="Gradient-Based Learning Applied to Document Recognition (LeCun et al., 1998)",
    namespace=globals(),
)
