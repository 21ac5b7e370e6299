"""Transfer learning: a new head on a pretrained backbone, and stage-wise freezing.

Fine-tuning (Kornblith et al., "Do Better ImageNet Models Transfer Better?", CVPR 2019; Bag of
Tricks §6; the Keras transfer-learning guide) in two phases:

1. the backbone is frozen and only the new head trains (a randomly initialised head would
   otherwise send large gradients into the pretrained features);
2. the last stages (or all of them) are unfrozen and train with a smaller learning rate.

Batch normalisation is the subtle part. A Keras `BatchNormalization` layer with
`trainable=False` runs in inference mode (it normalises with its moving statistics and does not
update them), so a frozen backbone keeps its pretrained statistics. When stages are unfrozen,
`train_bn=False` (the default, as the Keras guide recommends for small target datasets) keeps
their BN layers frozen too, so a few small target batches cannot overwrite the statistics
learned on ImageNet; `train_bn=True` lets them adapt (large target datasets).

    backbone = keras_cnn.ResNet50(include_top=False, weights="imagenet")
    model = transfer_model(backbone, classes=37, dropout=0.2)
    freeze_backbone(model)                        # phase 1: head only
    model.compile(...); model.fit(..., epochs=5)
    freeze_backbone(model, trainable_stages=2)    # phase 2: stages 3-4 and the head
    model.compile(...); model.fit(..., initial_epoch=5, epochs=30)   # recompile after (un)freezing

Stages are the backbone's stride levels found by `keras_cnn.models.features.stage_outputs`,
so this works for every registered family and any functional CNN.
"""

import keras

from keras_cnn.models.base import head_dtype
from keras_cnn.models.features import stage_outputs
from keras_cnn.validation import check_bool, check_positive_int

__all__ = ["HEAD_PREFIX", "backbone_stages", "freeze_backbone", "transfer_model"]

# Layers of the new head are named f"{HEAD_PREFIX}{part}"; freezing never touches them.
HEAD_PREFIX = "transfer_head_"


def _check_model(argument, model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"`{argument}` must be a keras.Model, received {argument}={model!r}")


def transfer_model(backbone, classes, *, dropout=0.0, pooling="avg", classifier_activation=None, name=None):
    """`backbone` cut at its last feature map, with a new pooled classifier head.

    Any classifier top of `backbone` (pooling, dropout, its `predictions`) is dropped: the cut
    is at the last layer every path to the output goes through at the deepest stride. The
    returned model shares the backbone's layers and weights.

    Args:
        backbone: A functional image model, e.g. `keras_cnn.ResNet50(include_top=False,
            weights=...)` or a trained keras_cnn classifier loaded from a `.keras` file.
        classes: Classes of the new task.
        dropout: Dropout rate before the new classifier.
        pooling: `"avg"` or `"max"` global pooling.
        classifier_activation: Activation of the new classifier (`None`: logits).
        name: Model name (default `f"{backbone.name}_transfer"`).

    Returns:
        A `keras.Model` from the backbone's input to the new head's output.
    """
    _check_model("backbone", backbone)
    check_positive_int("classes", classes)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a float in [0, 1), received dropout={dropout!r}")
    if pooling not in ("avg", "max"):
        raise ValueError(f"`pooling` must be 'avg' or 'max', received pooling={pooling!r}")
    stages = stage_outputs(backbone)
    x = backbone.get_layer(list(stages.values())[-1]).output
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    x = pool(name=f"{HEAD_PREFIX}pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{HEAD_PREFIX}dropout")(x)
    outputs = keras.layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                                 name=f"{HEAD_PREFIX}predictions")(x)
    return keras.Model(backbone.inputs, outputs, name=name or f"{backbone.name}_transfer")


def backbone_stages(model):
    """The backbone layers of `model` grouped by stage (stride level), input side first.

    Args:
        model: A model from `transfer_model` (or any functional CNN; layers named with
            `HEAD_PREFIX` are excluded).

    Returns:
        A list of lists of layers: stage `i` holds the layers after stage `i - 1`'s output up to
        and including its own output (branches and SE gates go with the stage they feed); a
        level without weights is merged into the next.
    """
    _check_model("model", model)
    ends = set(stage_outputs(model).values())
    stages, current = [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name.startswith(HEAD_PREFIX):
            continue
        current.append(layer)
        # A level without weights (the normalisation and padding at stride 1) joins the next.
        if layer.name in ends and any(member.weights for member in current):
            stages.append(current)
            current = []
    if current:  # layers after the last stage output that are not head layers (a kept top)
        stages[-1].extend(current)
    return stages


def freeze_backbone(model, trainable_stages=0, *, train_bn=False):
    """Freezes the backbone except its last `trainable_stages` stages; the head stays trainable.

    Recompile the model after calling this (Keras collects the trainable variables when it
    compiles the train step).

    Args:
        model: A model from `transfer_model`.
        trainable_stages: Backbone stages to train, counted from the output side: `0` (head
            only), an int, or `"all"`.
        train_bn: Whether batch normalisation layers of trainable stages train (batch statistics,
            moving averages updated, γ/β learned). `False` keeps them in inference mode.

    Returns:
        The names of the backbone layers left trainable (with weights).
    """
    _check_model("model", model)
    stages = backbone_stages(model)
    if trainable_stages == "all":
        trainable_stages = len(stages)
    if isinstance(trainable_stages, bool) or not isinstance(trainable_stages, int) or trainable_stages < 0:
        raise ValueError(f"`trainable_stages` must be 'all' or an int >= 0, received "
                         f"trainable_stages={trainable_stages!r}")
    if trainable_stages > len(stages):
        raise ValueError(f"`trainable_stages` must be at most the {len(stages)} stages of {model.name!r}, "
                         f"received trainable_stages={trainable_stages}")
    check_bool("train_bn", train_bn)
    model.trainable = True
    trainable = []
    for index, stage in enumerate(stages):
        unfrozen = index >= len(stages) - trainable_stages
        for layer in stage:
            is_bn = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = unfrozen and (train_bn or not is_bn)
            if layer.trainable and layer.weights:
                trainable.append(layer.name)
    return trainable
