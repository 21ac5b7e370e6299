"""Multi-scale features from any backbone: the stage outputs at strides 4, 8, 16 and 32.

The input of a detection or segmentation head (FPN, U-Net, DeepLab, Bag of Tricks §6) is the
feature pyramid of a classification backbone: for each stride, the last feature map at that
resolution. timm gets it from per-model `feature_info` tables; here it is read off the graph,
so every builder (and any single-input functional CNN) supports it without a table:

- the stride of a layer is the product of the strides of the convolutions and poolings
  before it (so it does not depend on the input size or padding: Inception-v3's valid-padded
  147/73/35/17/8 px maps at 299 px are strides 2/4/8/16/32);
- the feature at a stride is the last layer at that stride that **every path from the input
  to the output goes through** (its dominator): a stage's closing residual add, concatenation
  or transition, never one branch of a block, an SE gate or an auxiliary classifier.

    backbone = keras_cnn.ResNet50(include_top=False, input_shape=(None, None, 3))
    features = keras_cnn.feature_extractor(backbone)            # shares backbone's weights
    pyramid = features(images)                                  # {"P2": ..., "P5": ...}
    # ResNet-50: P2 (H/4, 256), P3 (H/8, 512), P4 (H/16, 1024), P5 (H/32, 2048)

Outputs are named like KerasHub's `pyramid_outputs`: level `P{k}` has stride `2**k`.
"""

import math

import keras

from keras_cnn.layers.pooling import GridAveragePooling2D
from keras_cnn.validation import check_positive_int

__all__ = ["feature_extractor", "feature_layers", "stage_outputs"]

DEFAULT_STRIDES = (4, 8, 16, 32)


def _check_model(model):
    if not isinstance(model, keras.Model) or not hasattr(model, "_inbound_nodes"):
        raise ValueError(f"`model` must be a Keras functional model, received {model!r}")
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        shapes = [tuple(t.shape) for t in model.inputs]
        raise ValueError(f"`model` must have one image input (batch, height, width, channels), received "
                         f"inputs of shapes {shapes}")


def _check_strides(strides):
    if isinstance(strides, int) or not strides:
        raise ValueError(f"`strides` must be a non-empty sequence of powers of two, received strides={strides!r}")
    for stride in strides:
        check_positive_int("strides", stride)
        if stride & (stride - 1):
            raise ValueError(f"`strides` must be powers of two, received strides={tuple(strides)!r}")
    if len(set(strides)) != len(strides):
        raise ValueError(f"`strides` must not repeat, received strides={tuple(strides)!r}")


def _predecessors(model):
    """Layer name -> names of the layers whose outputs it consumes (inside `model`)."""
    names = {layer.name for layer in model.layers}
    graph = {}
    for layer in model.layers:
        parents = set()
        for node in layer._inbound_nodes:
            parents |= {t._keras_history.operation.name for t in node.input_tensors}
        graph[layer.name] = parents & names
    return graph


def _dominators_of_output(model, graph):
    """Names of the layers that every input-to-output path passes through.

    `model.layers` is in topological order, so one pass of dom(n) = {n} U (intersection of
    dom(p) over predecessors p) is exact for a DAG.
    """
    dominators = {}
    for layer in model.layers:
        parents = graph[layer.name]
        common = set.intersection(*(dominators[p] for p in parents)) if parents else set()
        dominators[layer.name] = common | {layer.name}
    output_layer = model.outputs[0]._keras_history.operation.name
    return dominators[output_layer]


def _own_stride(layer):
    """How much `layer` itself downsamples (a fraction when it upsamples); `None`: unknown."""
    if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.UpSampling2D)):
        factor = layer.strides if isinstance(layer, keras.layers.Conv2DTranspose) else layer.size
        return 1 / _first(factor)
    if hasattr(layer, "strides"):
        return _first(layer.strides)
    if isinstance(layer, (keras.layers.Resizing, GridAveragePooling2D)):
        return None
    return 1


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _layer_strides(model, graph):
    """Layer name -> nominal stride for every layer with a 4-D feature-map output.

    The stride is the product of the strides of the convolutions and poolings on the way
    from the input, so it does not depend on the input size (a 64 px AlexNet ends in a 1 px
    map that is still stride 32). Layers after a resize to a fixed size (adaptive pooling) or a
    global pooling with `keepdims` (SE gates) have none.
    """
    strides = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            strides[layer.name] = 1  # a start, never a feature (`feature_layers` skips it)
            continue
        known = [strides[p] for p in graph[layer.name] if p in strides]
        own = _own_stride(layer)
        keeps_no_map = len(layer.output.shape) != 4 or isinstance(
            layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
        )
        if known and own is not None and not keeps_no_map:
            strides[layer.name] = max(known) * own
    return strides


def _block_of(name):
    """The block prefix of a layer name: up to its last indexed token before the part.

    `"block3a_expand_swish"` -> `"block3a_"`, `"stage2_block1_conv2"` -> `"stage2_block1_"`,
    `"mixed_6e_concat"` -> `"mixed_6e_"`; `""` for unindexed names (`"stem_conv"`).
    """
    tokens = name.split("_")[:-1]
    while tokens and not any(c.isdigit() for c in tokens[-1]):
        tokens.pop()
    return "_".join(tokens) + "_" if tokens else ""


def _entering_blocks(names, layer_strides):
    """Stride -> name prefix of the block that leaves it in its middle (`"block3a_"`), if any.

    An inverted-residual or pre-activation block whose strided convolution comes after an
    expansion or a pre-activation starts at the finer stride: its first layers are on the main
    path there, but the stage's output is the block's input. Such a block is recognised by its
    names (`f"{block}_{part}"`): the last main-path layer before the stride changes and the first
    after it are in the same block, which has several layers at the coarser stride. A block
    whose only coarser layer is its closing pool (VGG, DenseNet's transitions, AlexNet) is not
    entered: its earlier layers are the features.

    Args:
        names: Main-path layer names in topological order.
        layer_strides: Layer name -> stride, for every layer with a 4-D output.
    """
    entering = {}
    for i in range(1, len(names)):
        before, after = names[i - 1], names[i]
        block = _block_of(after)
        if layer_strides[after] <= layer_strides[before] or not block or _block_of(before) != block:
            continue
        coarser = [n for n, s in layer_strides.items() if n.startswith(block) and s == layer_strides[after]]
        if len(coarser) > 1:
            entering[layer_strides[before]] = block
    return entering


def stage_outputs(model):
    """Every stride `model` reaches on its main path, with the layer that ends it there.

    Args:
        model: A functional image model (any keras_cnn builder, with or without its top).

    Returns:
        A dict stride -> layer name in increasing stride (topological) order; the last entry
        is the final feature map (where a new head goes).
    """
    _check_model(model)
    graph = _predecessors(model)
    main_path = _dominators_of_output(model, graph)
    layer_strides = _layer_strides(model, graph)
    names = [
        layer.name for layer in model.layers
        if layer.name in main_path and layer.name in layer_strides
        # padding only frames the map before a strided op: its input is the feature
        and not isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D))
    ]
    entering = _entering_blocks(names, layer_strides)
    last_at = {}
    for name in names:
        stride = layer_strides[name]
        if stride not in entering or not name.startswith(entering[stride]):
            last_at[stride] = name
    return last_at


def feature_layers(model, strides=None):
    """Names of the layers whose outputs are `model`'s features at `strides`.

    Args:
        model: A functional image model (any keras_cnn builder, with or without its top).
        strides: Powers of two, e.g. `(4, 8, 16, 32)`; `None`: those of `DEFAULT_STRIDES` the
            model has (as timm's `features_only`, a net without a stride-32 level, such as
            SqueezeNet, gives the levels it has).

    Returns:
        A dict stride -> layer name, in the order of `strides`.

    Raises:
        ValueError: If `model` does not reach a requested stride on its main path (with
            `strides=None`: none of `DEFAULT_STRIDES`); the message lists the strides it has.
    """
    _check_model(model)
    if strides is not None:
        _check_strides(strides)
    last_at = stage_outputs(model)
    if strides is None:
        strides = tuple(s for s in DEFAULT_STRIDES if s in last_at)
        if not strides:
            raise ValueError(f"{model.name!r} has no feature map at the default strides {list(DEFAULT_STRIDES)} "
                             f"(it has {sorted(last_at)}); pass the `strides` it has")
    missing = [s for s in strides if s not in last_at]
    if missing:
        raise ValueError(f"{model.name!r} has no feature map at strides {missing} (it has "
                         f"{sorted(last_at)}), received strides={tuple(strides)!r}")
    return {stride: last_at[stride] for stride in strides}


def feature_extractor(model, strides=None, *, name=None, **kwargs):
    """A model returning `model`'s multi-scale features (timm's `features_only`).

    The extractor shares its layers and weights with `model`: training it (or a head on it)
    fine-tunes the backbone.

    Args:
        model: A functional image model, or a registry name built with `include_top=False`
            and `kwargs` (e.g. `input_shape=(None, None, 3)`, `weights="imagenet"`).
        strides: Feature strides, powers of two; `None` (the default): those of `(4, 8, 16, 32)`
            the model has (SqueezeNet: 4, 8 and 16), as timm's `features_only` does.
        name: Name of the extractor (default `f"{model.name}_features"`).
        **kwargs: Builder arguments, only with a registry name.

    Returns:
        A `keras.Model` whose output is a dict `{"P2": ..., "P5": ...}` (level `k` = stride
        `2**k`) of feature maps `(batch, ~H / stride, ~W / stride, channels)` (exactly
        `ceil(H / stride)` for "same"-padded networks).
    """
    if isinstance(model, str):
        from keras_cnn.registry import create_model

        model = create_model(model, include_top=False, **kwargs)
    elif kwargs:
        raise ValueError(f"Builder arguments are only accepted with a registry name; received a model and "
                         f"{sorted(kwargs)}")
    layers = feature_layers(model, strides)
    outputs = {f"P{int(math.log2(s))}": model.get_layer(n).output for s, n in layers.items()}
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_features")
