"""Pretrained weights: keras.applications ports and named timm/torchvision checkpoints (`tags`).

Each family declares its weights in one module, `keras_cnn.weights.families.<family>`
(a `WeightsSpec`); the modules here do the generic work. The model builders and the registry
never import this package: on import it installs itself as the registry's named-weights
provider (`keras_cnn.registry.set_named_weights`), which `keras_cnn/__init__` does before the
model families register.
"""

from keras_cnn.registry import get_model_info, set_named_weights
from keras_cnn.weights.families import FAMILY_WEIGHTS
from keras_cnn.weights.keras_applications import (
    WeightsUnavailableError,
    from_keras_applications,
    keras_applications_name,
    keras_applications_ports,
    load_keras_applications_imagenet,
    transfer_weights,
)
from keras_cnn.weights.spec import KerasApplicationsPort, WeightsSpec
from keras_cnn.weights.tags import TAGS, WeightsTag, fetch, get_tag, load_tagged, tags_for

IMAGENET_CLASSES = 1000
# Builder arguments that do not change which weights a model has.
WEIGHT_NEUTRAL_ARGUMENTS = ("dropout", "drop_path_rate", "zero_gamma", "classes", "default_size")


def load_pretrained(name, tag, builder, kwargs):
    """Builds registry model `name` with the named weights `tag` (e.g. `"imagenet"`).

    Args:
        name: Registry name.
        tag: Weights tag listed in the model's `pretrained`.
        builder: The family builder with the variant's architecture preset.
        kwargs: The user's other builder arguments.

    Returns:
        The model carrying the weights.
    """
    info = get_model_info(name)
    kwargs = {k: v for k, v in kwargs.items() if k != "weights"}
    changed = sorted(k for k in kwargs if k in info.config and k not in WEIGHT_NEUTRAL_ARGUMENTS)
    if changed:
        raise ValueError(
            f"weights={tag!r} fixes the architecture of {name!r}; received architecture "
            f"arguments {changed}"
        )
    if "input_normalization" in kwargs:
        raise ValueError(
            f"weights={tag!r} fixes the input normalisation of {name!r}; received "
            f"input_normalization={kwargs['input_normalization']!r}"
        )
    include_top = kwargs.get("include_top", True)
    if include_top and kwargs.get("classes", IMAGENET_CLASSES) != IMAGENET_CLASSES:
        raise ValueError(
            f"weights={tag!r} with include_top=True needs classes={IMAGENET_CLASSES}, received "
            f"classes={kwargs['classes']!r}"
        )
    activation = kwargs.get("classifier_activation", "softmax")
    if include_top and activation not in (None, "softmax"):
        raise ValueError(
            f"weights={tag!r} supports classifier_activation None or 'softmax', received "
            f"classifier_activation={activation!r}"
        )
    input_shape = kwargs.get("input_shape")
    if isinstance(input_shape, (tuple, list)) and len(input_shape) == 3 and input_shape[-1] != 3:
        raise ValueError(
            f"weights={tag!r} expects 3 input channels, received input_shape={input_shape!r}"
        )
    kwargs.setdefault("name", name)
    if tag == "imagenet" and keras_applications_name(name):
        return load_keras_applications_imagenet(name, builder, kwargs)
    if tag in TAGS:
        return load_tagged(name, tag, kwargs)
    raise ValueError(f"No loader for weights={tag!r} of {name!r}")


def named_weights(name):
    """The `weights=` names registry name `name` accepts, as its family's `WeightsSpec` declares:
    `"imagenet"` for a keras.applications port, then its timm/torchvision tags."""
    return tuple(tag for spec in FAMILY_WEIGHTS.values() for tag in spec.named_weights(name))


def load_checkpoint(name, path, kwargs):
    """Builds registry model `name` from a timm/torchvision checkpoint file given as `weights=`.

    Args:
        name: Registry name.
        path: An existing `.safetensors` / `.pth` file.
        kwargs: The user's other builder arguments.

    Returns:
        The model carrying the converted weights (`keras_cnn.weights.convert.convert_checkpoint`).

    Raises:
        ValueError: The family has no checkpoint converter (the message says what to do instead)
            or the checkpoint does not fit.
    """
    from keras_cnn.weights.convert import convert_checkpoint
    from keras_cnn.weights.families import CONVERTERS

    family = get_model_info(name).family
    if family not in CONVERTERS:
        raise ValueError(
            f"`weights` is a timm/torchvision checkpoint, which keras_cnn converts for the families "
            f"{sorted(CONVERTERS)} only ({name!r} is a {family!r} model); pass a Keras weights file "
            f"(.weights.h5 or .keras), received weights={path!r}"
        )
    return convert_checkpoint(name, path, **kwargs)


class _RegistryProvider:
    """`keras_cnn.registry.NamedWeights`: what the registry asks of this package."""

    tags_for = staticmethod(named_weights)
    load_pretrained = staticmethod(load_pretrained)
    load_checkpoint = staticmethod(load_checkpoint)


set_named_weights(_RegistryProvider())

__all__ = [
    "FAMILY_WEIGHTS",
    "TAGS",
    "KerasApplicationsPort",
    "WeightsSpec",
    "WeightsTag",
    "WeightsUnavailableError",
    "from_keras_applications",
    "keras_applications_ports",
    "load_pretrained",
    "named_weights",
    "fetch",
    "get_tag",
    "tags_for",
    "transfer_weights",
]
