"""Weights from keras.applications models, with identical outputs.

Each family's `WeightsSpec` (`keras_cnn.weights.families.<family>`) declares what its
keras.applications namesakes need (`keras_applications`: constructor -> `spec.KerasApplicationsPort`)
and how its layer names map onto theirs (`keras_layer_name`); this module does the copying.

keras.applications ResNets give every convolution a bias, also where batch norm follows
and makes it redundant. keras_cnn's convs before BN are bias-free; the bias is absorbed
exactly into the BN moving mean (`BN(x + b)` with mean `m` equals `BN(x)` with mean
`m - b`), and a BN epsilon difference into the moving variance. keras.applications
preprocessing ("caffe", "tf", "torch" modes, or EfficientNet's in-model rescaling) becomes
the keras_cnn model's `input_normalization`, so the port takes RGB [0, 255] like every
keras_cnn model; a "caffe" model's BGR channel order is folded into its first conv.
"""

import fnmatch

import keras
import numpy as np

from keras_cnn.weights.families import FAMILY_WEIGHTS


class WeightsUnavailableError(OSError):
    """Named weights could not be fetched (offline, or the download failed)."""


def keras_applications_ports():
    """`{constructor name: (KerasApplicationsPort, layer_name_map)}` over all families."""
    return {ctor: (port, spec.keras_layer_name)
            for spec in FAMILY_WEIGHTS.values() for ctor, port in spec.keras_applications.items()}


def _skipped(name, skip_source_layers):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in skip_source_layers)


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def transfer_weights(source, target, name_map, *, skip_source_layers=(), bgr_conv=None):
    """Copies every weight of `source` into `target`, folding redundant conv biases.

    Args:
        source: The keras.applications model.
        target: The keras_cnn model of the same architecture.
        name_map: Maps a target layer name to the source layer name.
        skip_source_layers: Names or shell-style patterns of source layers deliberately left out.
        bgr_conv: Target layer whose kernel's input channels are reversed.

    Returns:
        `target`.

    Raises:
        ValueError: naming the first tensor that has no counterpart or another shape.
    """
    source_layers = {
        layer.name: layer for layer in _weighted_layers(source)
        if not _skipped(layer.name, skip_source_layers)
    }
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
        values = {w.name: np.asarray(keras.ops.convert_to_numpy(w)) for w in src.weights}
        if isinstance(layer, keras.layers.BatchNormalization):
            mean = values["moving_mean"] - pending_bias.pop(layer.name[: -len("bn")] + "conv", 0.0)
            variance = values["moving_variance"] + src.epsilon - layer.epsilon
            if np.any(variance < 0):
                raise ValueError(f"Cannot absorb the epsilon of {src.name!r} into {layer.name!r}")
            values.update(moving_mean=mean, moving_variance=variance)
        elif "bias" in values and not any(w.name == "bias" for w in layer.weights):
            if not layer.name.endswith("_conv"):
                raise ValueError(f"Cannot absorb the bias of {src.name!r} into {layer.name!r}")
            pending_bias[layer.name] = values.pop("bias")
        if isinstance(layer, keras.layers.BatchNormalization):
            # keras.applications BNs with scale=False / center=False (InceptionV3) have no
            # gamma / beta: they are the identity values.
            if layer.scale:
                values.setdefault("gamma", np.ones_like(values["moving_mean"]))
            if layer.center:
                values.setdefault("beta", np.zeros_like(values["moving_mean"]))
        for variable in layer.weights:
            if variable.name not in values:
                raise ValueError(
                    f"Tensor {variable.path!r} has no counterpart in {src.name!r} "
                    f"(which has {sorted(values)})"
                )
            value = values.pop(variable.name)
            if layer.name == bgr_conv and variable.name == "kernel":
                value = value[..., ::-1, :]
            if (isinstance(layer, keras.layers.Dense) and value.ndim == 4
                    and value.shape[:2] == (1, 1)):
                # A 1x1 conv classifier (keras.applications MobileNet) is a dense layer.
                value = value.reshape(value.shape[2:])
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"Tensor {variable.path!r} has shape {tuple(variable.shape)} but "
                    f"{src.name!r} provides {value.shape}: the architectures differ"
                )
            variable.assign(value)
        if values:
            raise ValueError(f"Tensors {sorted(values)} of {src.name!r} have no counterpart in "
                             f"{layer.name!r}")
    if pending_bias:
        raise ValueError(f"Conv biases with no batch norm to absorb them: {sorted(pending_bias)}")
    unused = sorted(set(source_layers) - used)
    if unused:
        raise ValueError(f"Layers of {source.name!r} with no counterpart in {target.name!r}: {unused}")
    return target


def _source_config(model):
    names = {layer.name for layer in model.layers}
    include_top = "predictions" in names
    config = {"include_top": include_top, "input_shape": tuple(model.input_shape[1:])}
    if include_top:
        head = model.get_layer("predictions")
        # keras.applications MobileNet's `predictions` is an Activation after a 1x1 conv.
        config["classes"] = getattr(head, "units", None) or int(model.output_shape[-1])
        config["classifier_activation"] = keras.activations.serialize(head.activation)
    else:
        last = model.layers[-1]
        # Some keras.applications models (MobileNet) leave their pooling layers unnamed.
        config["pooling"] = (
            "avg" if isinstance(last, keras.layers.GlobalAveragePooling2D)
            else "max" if isinstance(last, keras.layers.GlobalMaxPooling2D) else None
        )
    return config


def _port_for(ctor):
    ports = keras_applications_ports()
    if ctor not in ports:
        raise ValueError(f"No keras_cnn port for keras.applications.{ctor}; ports: {sorted(ports)}")
    return ports[ctor]


def _order_map(source, target, skip_source_layers):
    sources = [layer for layer in _weighted_layers(source)
               if not _skipped(layer.name, skip_source_layers)]
    targets = _weighted_layers(target)
    if len(sources) != len(targets):
        raise ValueError(
            f"{source.name!r} has {len(sources)} layers with weights, {target.name!r} has "
            f"{len(targets)}: the architectures differ"
        )
    pairs = {}
    for src, dst in zip(sources, targets):
        src_type = type(src).__name__
        dst_type = type(dst).__name__
        if src_type != dst_type and {src_type, dst_type} != {"Conv2D", "Dense"}:
            raise ValueError(
                f"Layer {dst.name!r} ({dst_type}) of {target.name!r} pairs with {src.name!r} "
                f"({src_type}) of {source.name!r}: the architectures differ"
            )
        pairs[dst.name] = src.name
    return pairs.__getitem__


def _port_into(source, model, port, layer_map):
    if port.match == "order":
        layer_map = _order_map(source, model, port.skip_source_layers)
    return transfer_weights(
        source,
        model,
        layer_map,
        skip_source_layers=port.skip_source_layers,
        bgr_conv=port.bgr_conv,
    )


def _normalization(port, source):
    value = port.input_normalization
    return value(source) if callable(value) else value


def from_keras_applications(ka_model, **kwargs):
    """Returns the keras_cnn model that carries a keras.applications model's weights.

    The result takes RGB [0, 255] input (the keras_cnn contract) and its outputs equal
    `ka_model(preprocess_input(x))` within float32 rounding, for any weights, including
    trained BN statistics and conv biases.

    Args:
        ka_model: A model from `keras.applications` (see `keras_applications_ports()`).
        **kwargs: Extra builder arguments (`name`, `drop_path_rate`, ...).

    Returns:
        The keras_cnn model.
    """
    from keras_cnn.registry import create_model

    model_name = getattr(ka_model, "name", None)
    matches = [
        (port, layer_map) for ctor, (port, layer_map) in keras_applications_ports().items()
        if (port.keras_name(model_name) if callable(port.keras_name)
            else model_name == (port.keras_name or ctor.lower()))
    ]
    if not matches:
        raise ValueError(
            f"`ka_model` must be a keras.applications model with a keras_cnn port "
            f"({sorted(keras_applications_ports())}), received a model named {model_name!r}"
        )
    port, layer_map = matches[0]
    config = {**_source_config(ka_model), **port.builder_args,
              "input_normalization": _normalization(port, ka_model)}
    model = create_model(port.name, **{**config, **kwargs})
    return _port_into(ka_model, model, port, layer_map)


def keras_applications_name(name):
    """The keras.applications constructor whose ImageNet weights fit registry `name`."""
    for ctor, (port, _) in keras_applications_ports().items():
        if port.name == name:
            return ctor
    return None


def load_keras_applications_imagenet(name, builder, kwargs):
    """Builds registry model `name` with keras.applications' ImageNet weights."""
    ctor = keras_applications_name(name)
    port, layer_map = _port_for(ctor)
    include_top = kwargs.get("include_top", True)
    try:
        source = getattr(keras.applications, ctor)(weights="imagenet", include_top=include_top)
    except Exception as err:  # keras raises a bare Exception for a failed download.
        raise WeightsUnavailableError(
            f"Could not obtain the ImageNet weights of keras.applications.{ctor} ({err}). "
            f"Offline, place the weights file that keras.applications.{ctor}"
            f"(weights='imagenet', include_top={include_top}) downloads in "
            "~/.keras/models/ (or $KERAS_HOME/models/) and try again."
        ) from err
    kwargs = {**port.builder_args, "input_normalization": _normalization(port, source), **kwargs}
    return _port_into(source, builder(**kwargs), port, layer_map)
