"""Weights from keras.applications models, with identical outputs.

keras.applications ResNets give every convolution a bias, also where batch norm follows
and makes it redundant. keras_cnn's convs before BN are bias-free; the bias is absorbed
exactly into the BN moving mean (`BN(x + b)` with mean `m` equals `BN(x)` with mean
`m - b`), and the BN epsilon difference is absorbed into the moving variance.
"""

import re

import keras
import numpy as np

# keras.applications constructor -> keras_cnn registry name.
KERAS_APPLICATIONS = {
    "ResNet50": "resnet50_v1",
    "ResNet101": "resnet101_v1",
    "ResNet152": "resnet152_v1",
    "ResNet50V2": "resnet50v2",
    "ResNet101V2": "resnet101v2",
    "ResNet152V2": "resnet152v2",
}
# keras.applications model.name -> constructor.
_MODEL_NAMES = {ctor.lower(): ctor for ctor in KERAS_APPLICATIONS}


class WeightsUnavailableError(OSError):
    """Named weights could not be fetched (offline, or the download failed)."""


def keras_applications_layer_name(name):
    """Maps a keras_cnn ResNet layer name to its keras.applications counterpart."""
    if name.startswith("stem_"):
        return "conv1_" + name[len("stem_"):]
    match = re.match(r"^stage(\d+)_(.*)$", name)
    if match:
        return f"conv{int(match.group(1)) + 1}_{match.group(2)}"
    return name


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def transfer_weights(source, target, name_map=keras_applications_layer_name):
    """Copies every weight of `source` into `target`, folding redundant conv biases.

    Args:
        source: The keras.applications model.
        target: The keras_cnn model of the same architecture.
        name_map: Maps a target layer name to the source layer name.

    Raises:
        ValueError: naming the first tensor that has no counterpart or another shape.
    """
    source_layers = {layer.name: layer for layer in _weighted_layers(source)}
    used = set()
    pending_bias = {}
    for layer in _weighted_layers(target):
        source_name = name_map(layer.name)
        if source_name not in source_layers:
            raise ValueError(
                f"Layer {layer.name!r} of {target.name!r} has no counterpart {source_name!r} in "
                f"{source.name!r}: the architectures differ"
            )
        src = source_layers[source_name]
        used.add(source_name)
        values = {w.path.split("/")[-1]: np.asarray(w.numpy()) for w in src.weights}
        if isinstance(layer, keras.layers.BatchNormalization):
            mean = values["moving_mean"]
            variance = values["moving_variance"] + src.epsilon - layer.epsilon
            conv_name = layer.name[: -len("bn")] + "conv"
            mean = mean - pending_bias.pop(conv_name, 0.0)
            if np.any(variance < 0):
                raise ValueError(f"Cannot absorb the epsilon of {src.name!r} into {layer.name!r}")
            new = [values["gamma"], values["beta"], mean, variance]
        else:
            new = [values["kernel"]]
            if getattr(layer, "use_bias", False):
                new.append(values["bias"])
            elif "bias" in values:
                if not layer.name.endswith("_conv"):
                    raise ValueError(f"Cannot absorb the bias of {src.name!r} into {layer.name!r}")
                pending_bias[layer.name] = values["bias"]
        for variable, value in zip(layer.weights, new):
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"Tensor {variable.path!r} has shape {tuple(variable.shape)} but "
                    f"{src.name!r} provides {value.shape}: the architectures differ"
                )
            variable.assign(value)
    if pending_bias:
        raise ValueError(f"Conv biases with no batch norm to absorb them: {sorted(pending_bias)}")
    unused = sorted(set(source_layers) - used)
    if unused:
        raise ValueError(f"Layers of {source.name!r} with no counterpart in {target.name!r}: {unused}")
    return target


def _source_config(model):
    names = {layer.name for layer in model.layers}
    include_top = "predictions" in names
    pooling = None
    if not include_top:
        last = model.layers[-1].name
        pooling = {"avg_pool": "avg", "max_pool": "max"}.get(last)
    config = {
        "include_top": include_top,
        "pooling": pooling,
        "input_shape": tuple(model.input_shape[1:]),
    }
    if include_top:
        head = model.get_layer("predictions")
        config["classes"] = head.units
        config["classifier_activation"] = keras.activations.serialize(head.activation)
    return config


def from_keras_applications(ka_model, **kwargs):
    """Returns the keras_cnn model that carries a keras.applications model's weights.

    Its outputs equal the original's (within float32 rounding) for every input, also
    after training changed the BN statistics and conv biases.

    Args:
        ka_model: A model from `keras.applications` (see `KERAS_APPLICATIONS`).
        **kwargs: Extra builder arguments (`name`, `drop_path_rate`, ...).

    Returns:
        The keras_cnn model.
    """
    from keras_cnn.registry import create_model

    ctor = _MODEL_NAMES.get(getattr(ka_model, "name", None))
    if ctor is None:
        raise ValueError(
            f"`ka_model` must be one of keras.applications {sorted(KERAS_APPLICATIONS)} (by "
            f"model name), received a model named {getattr(ka_model, 'name', ka_model)!r}"
        )
    model = create_model(KERAS_APPLICATIONS[ctor], **{**_source_config(ka_model), **kwargs})
    return transfer_weights(ka_model, model)


def load_keras_applications_imagenet(name, model, *, include_top):
    """Fills `model` (registry name `name`) with keras.applications' ImageNet weights."""
    ctor = {v: k for k, v in KERAS_APPLICATIONS.items()}[name]
    try:
        source = getattr(keras.applications, ctor)(weights="imagenet", include_top=include_top)
    except Exception as err:  # keras raises a bare Exception for a failed download.
        cache = keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras"
        raise WeightsUnavailableError(
            f"Could not obtain the ImageNet weights of keras.applications.{ctor} ({err}). "
            f"Offline, place the weights file keras.applications downloads for {ctor} "
            f"(include_top={include_top}) in {cache}/models/ and try again."
        ) from err
    return transfer_weights(source, model)
