"""Converting timm/torchvision state dicts into keras_cnn models, all or nothing.

A family declares, as data, which source module feeds which Keras layer and how
(`LayerMapping`: our layer name, the source prefix, and a kind from `KINDS`), in the
`layer_mappings` hook of its `WeightsSpec` (`keras_cnn.weights.families.<family>`). This module
does the rest for every family: it lays out each tensor (PyTorch convolutions are OIHW,
Keras' HWIO; dense weights are transposed), checks that every model variable gets exactly
one tensor, every source tensor is used (but for known bookkeeping like
`num_batches_tracked`), every shape and batch-norm epsilon agrees and the model normalises
its input the way the source model expects, and only then assigns anything: a checkpoint
that does not fit leaves the model untouched.
"""

import dataclasses
import os

import keras
import numpy as np

from keras_cnn.models.base import resolve_input_normalization
from keras_cnn.weights.families import CONVERTERS, FAMILY_WEIGHTS
from keras_cnn.weights.safetensors import load_state_dict
from keras_cnn.weights.spec import LayerMapping

__all__ = ["KINDS", "LayerMapping", "convert_checkpoint", "convert_state_dict", "family_converter",
           "plan_assignments"]

# Source tensors that carry no weights (BN's update counter).
IGNORED_SOURCE_SUFFIXES = (".num_batches_tracked",)
NORMALIZATION_LAYER = "input_norm"
# Relative tolerance for the input normalisation and BN epsilon checks (float32 round trips).
CONFIG_RTOL = 1e-6


def _conv_kernel(weight, target_shape):
    del target_shape
    return np.transpose(weight, (2, 3, 1, 0))  # (out, in/groups, kh, kw) -> (kh, kw, in/groups, out)


def _depthwise_kernel(weight, target_shape):
    # PyTorch's depthwise output channel c * multiplier + m is Keras' (c, m) pair.
    channels, multiplier = target_shape[2], target_shape[3]
    if weight.shape[0] != channels * multiplier or weight.shape[1] != 1:
        return weight  # the shape check reports it
    kh, kw = weight.shape[2:]
    return np.transpose(weight.reshape(channels, multiplier, kh, kw), (2, 3, 0, 1))


def _dense_kernel(weight, target_shape):
    del target_shape
    return np.transpose(weight)  # (out, in) -> (in, out)


def _same(value, target_shape):
    del target_shape
    return value


@dataclasses.dataclass(frozen=True)
class Kind:
    """How one kind of layer takes its tensors: Keras variable name -> (source suffix, layout).

    Attributes:
        name: The kind's name (`"conv"`).
        layer_types: Keras layer classes this kind applies to (a mapping naming a layer of
            another type is a family-table bug, reported as such).
        tensors: `{keras variable name: (source tensor suffix, layout function)}`.
    """

    name: str
    layer_types: tuple
    tensors: dict


KINDS = {
    "conv": Kind("conv", (keras.layers.Conv2D,),
                 {"kernel": ("weight", _conv_kernel), "bias": ("bias", _same)}),
    "depthwise": Kind("depthwise", (keras.layers.DepthwiseConv2D,),
                      {"kernel": ("weight", _depthwise_kernel), "bias": ("bias", _same)}),
    "dense": Kind("dense", (keras.layers.Dense,),
                  {"kernel": ("weight", _dense_kernel), "bias": ("bias", _same)}),
    "batchnorm": Kind("batchnorm", (keras.layers.BatchNormalization,),
                      {"gamma": ("weight", _same), "beta": ("bias", _same),
                       "moving_mean": ("running_mean", _same),
                       "moving_variance": ("running_var", _same)}),
}


# Rank of the source tensor each kernel layout expects.
KERNEL_RANKS = {"conv": 4, "depthwise": 4, "dense": 2}


def _unflatten_chw(weight, flattened_from):
    # (out, C*H*W) in PyTorch's flatten order -> (out, H*W*C) in Keras' (channels last).
    height, width, channels = flattened_from
    if weight.shape[1] != height * width * channels:
        return weight  # the shape check reports it
    return weight.reshape(-1, channels, height, width).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _layout(mapping, variable_name, value, target_shape):
    kind = mapping.kind
    _, layout = KINDS[kind].tensors[variable_name]
    if value.ndim != KERNEL_RANKS.get(kind, value.ndim) and variable_name == "kernel":
        return value  # wrong rank: the shape check reports it with the source shape
    if mapping.flattened_from is not None and kind == "dense" and variable_name == "kernel":
        value = _unflatten_chw(value, mapping.flattened_from)
    return layout(value, target_shape)


def _check_normalization(model, input_normalization, source_name):
    try:
        layer = model.get_layer(NORMALIZATION_LAYER)
    except ValueError:
        layer = None
    channels = model.input_shape[-1]
    expected = resolve_input_normalization(input_normalization, channels)
    if expected is None and layer is None:
        return
    if expected is None or layer is None:
        raise ValueError(
            f"{source_name} expects input_normalization={input_normalization!r}, but model "
            f"{model.name!r} {'has no' if layer is None else 'has an'} {NORMALIZATION_LAYER!r} layer; "
            f"build it with input_normalization={input_normalization!r}"
        )
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float64).reshape(-1)
    std = np.sqrt(np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float64).reshape(-1))
    want_mean, want_std = (np.asarray(v, np.float64) for v in expected)
    if not (np.allclose(mean, want_mean, rtol=CONFIG_RTOL, atol=1e-6)
            and np.allclose(std, want_std, rtol=CONFIG_RTOL, atol=1e-6)):
        raise ValueError(
            f"{source_name} expects inputs normalised with mean {want_mean.tolist()} / std "
            f"{want_std.tolist()} (of [0, 255] pixels), but model {model.name!r} uses mean "
            f"{mean.tolist()} / std {std.tolist()}; build it with "
            f"input_normalization={input_normalization!r}"
        )


def plan_assignments(model, state_dict, mappings, *, bn_epsilon, source_name="state dict",
                     ignored_suffixes=IGNORED_SOURCE_SUFFIXES, optional_sources=()):
    """Matches every model variable with one laid-out source tensor, assigning nothing.

    Args:
        model: The Keras model.
        state_dict: `{source name: np.ndarray}`.
        mappings: `LayerMapping`s covering every Keras layer with weights.
        bn_epsilon: The source's batch-norm epsilon; each Keras BN must use the same.
        source_name: How errors name the checkpoint.
        ignored_suffixes: Source tensors deliberately left unused.
        optional_sources: Source module prefixes (classifier, auxiliary heads) whose
            tensors may go unused: a model built without its top keeps the backbone. A
            model that has those layers still needs every one of their variables fed.

    Returns:
        `[(variable, value)]`, one pair per model variable.

    Raises:
        ValueError: naming the first mismatching tensor (missing, unexpected, wrong shape),
            a layer mapped twice or not at all, or a batch-norm epsilon that differs.
    """
    variables_by_layer = {}
    for mapping in mappings:
        if mapping.kind not in KINDS:
            raise ValueError(f"Mapping {mapping} has unknown kind {mapping.kind!r}; kinds: {sorted(KINDS)}")
        if mapping.target in variables_by_layer:
            raise ValueError(f"Layer {mapping.target!r} of {model.name!r} is mapped twice")
        try:
            layer = model.get_layer(mapping.target)
        except ValueError as err:
            raise ValueError(
                f"Mapping {mapping.source!r} -> {mapping.target!r}: model {model.name!r} has no "
                f"layer {mapping.target!r}"
            ) from err
        kind = KINDS[mapping.kind]
        if not isinstance(layer, kind.layer_types):
            raise ValueError(
                f"Mapping {mapping.source!r} -> {mapping.target!r} has kind {mapping.kind!r}, but "
                f"the layer is a {type(layer).__name__}"
            )
        variables_by_layer[mapping.target] = (mapping, layer)

    plan, used, planned = [], set(), set()
    for mapping, layer in variables_by_layer.values():
        if isinstance(layer, keras.layers.BatchNormalization) and not np.isclose(
            layer.epsilon, bn_epsilon, rtol=CONFIG_RTOL, atol=0.0
        ):
            raise ValueError(
                f"Layer {layer.name!r} has batch-norm epsilon {layer.epsilon}, but {source_name} "
                f"was trained with {bn_epsilon} ({mapping.source!r}): outputs would differ"
            )
        for variable in layer.weights:
            spec = KINDS[mapping.kind].tensors.get(variable.name)
            if spec is None:
                raise ValueError(
                    f"Variable {variable.path!r} has no source tensor in kind {mapping.kind!r}"
                )
            key = f"{mapping.source}.{spec[0]}"
            if key not in state_dict:
                raise ValueError(
                    f"{source_name} is missing tensor {key!r} for {variable.path!r} "
                    f"(shape {tuple(variable.shape)})"
                )
            value = np.asarray(state_dict[key])
            laid_out = _layout(mapping, variable.name, value, tuple(variable.shape))
            if tuple(laid_out.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Tensor {key!r} of {source_name} has shape {tuple(value.shape)}, which does not "
                    f"fit {variable.path!r} of shape {tuple(variable.shape)}"
                )
            used.add(key)
            planned.add(id(variable))
            plan.append((variable, laid_out))

    for variable in model.weights:
        if id(variable) not in planned:
            raise ValueError(
                f"Variable {variable.path!r} of {model.name!r} is not fed by any source tensor "
                "(no mapping names its layer)"
            )
    for key in state_dict:
        if key in used or key.endswith(tuple(ignored_suffixes)):
            continue
        if not key.startswith(tuple(f"{prefix}." for prefix in optional_sources)):
            raise ValueError(
                f"Tensor {key!r} (shape {tuple(np.shape(state_dict[key]))}) of {source_name} has no "
                f"counterpart in {model.name!r}: unexpected tensor"
            )
    return plan


def convert_state_dict(model, state_dict, mappings, *, bn_epsilon, input_normalization,
                       source_name="state dict", optional_sources=()):
    """Loads a PyTorch-layout state dict into a keras_cnn model, all or nothing.

    Args:
        model: The keras_cnn model, built with the source's architecture.
        state_dict: `{name: np.ndarray}` (from `load_state_dict`).
        mappings: The family's `LayerMapping`s for this model.
        bn_epsilon: The source's batch-norm epsilon.
        input_normalization: The normalisation the source expects (e.g. `"imagenet"`); the
            model must have been built with it (it takes [0, 255] input).
        source_name: How errors name the checkpoint.
        optional_sources: Source module prefixes that may go unused (see
            `plan_assignments`).

    Returns:
        `model`.

    Raises:
        ValueError: naming the first mismatch; the model is then left unchanged.
    """
    _check_normalization(model, input_normalization, source_name)
    plan = plan_assignments(model, state_dict, mappings, bn_epsilon=bn_epsilon,
                            source_name=source_name, optional_sources=optional_sources)
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype, copy=False))
    return model


def family_converter(family):
    """The `WeightsSpec` of a registry family with a checkpoint layout.

    Args:
        family: Registry family name (`"resnet"`).

    Returns:
        The family's `WeightsSpec` (`keras_cnn.weights.families.<family>.WEIGHTS`).

    Raises:
        ValueError: if the family has no timm/torchvision checkpoint layout.
    """
    if family not in CONVERTERS:
        raise ValueError(
            f"No checkpoint converter for family {family!r}; families with one: {sorted(CONVERTERS)}"
        )
    return FAMILY_WEIGHTS[family]


def convert_checkpoint(name, checkpoint, *, source=None, **kwargs):
    """Builds registry model `name` and loads a timm/torchvision checkpoint into it.

    Args:
        name: Registry name (`"resnet50d"`).
        checkpoint: A `.safetensors` / `.pth` path, or a `{name: np.ndarray}` state dict.
        source: Which library's layout the checkpoint has (a library of the name in the
            family's `WeightsSpec.sources`); `None` uses the library the registry name follows.
        **kwargs: Builder arguments (`include_top`, `input_shape`, `classifier_activation`,
            or architecture overrides for reduced test models); `input_normalization` is
            set from the source.

    Returns:
        The converted model.

    Raises:
        ValueError: for an unknown name/family/source or a checkpoint that does not fit.
    """
    from keras_cnn.registry import get_model_info

    info = get_model_info(name)
    weights = family_converter(info.family)
    spec = weights.source_spec(name, source)
    if "input_normalization" in kwargs:
        raise ValueError(
            f"The checkpoint fixes the input normalisation of {name!r}; received "
            f"input_normalization={kwargs['input_normalization']!r}"
        )
    source_name = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "state dict"
    state_dict = load_state_dict(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    state_dict = weights.canonical_state_dict(state_dict, spec.style)
    for key, value in spec.builder_args.items():
        if kwargs.get(key, value) != value:
            raise ValueError(f"The {spec.library} checkpoint of {name!r} needs {key}={value!r}; received "
                             f"{key}={kwargs[key]!r}")
    kwargs = {**spec.builder_args, **kwargs}
    kwargs.setdefault("name", name)
    model = info.builder(input_normalization=spec.input_normalization, **kwargs)
    config = {**info.config, **kwargs}
    mappings = weights.layer_mappings(model, config, spec.style)
    return convert_state_dict(model, state_dict, mappings, bn_epsilon=spec.bn_epsilon,
                              input_normalization=spec.input_normalization,
                              source_name=repr(source_name),
                              optional_sources=weights.optional_sources(spec.style))
