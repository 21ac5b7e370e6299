"""The model registry: every builder under its timm/torchvision name.

Families declare their variants as rows of data (`register_variants`); each row spells out
one registry name (`"resnet50"`) and one CamelCase builder (`keras_cnn.ResNet50`), the same
function under two spellings. The builders are made here at import, so
`keras_cnn/__init__.pyi` (written by `tools/gen_stubs.py`) declares them for type checkers
and IDEs.
"""

import dataclasses
import difflib
import fnmatch
import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, Protocol

_MODELS: dict[str, "ModelInfo"] = {}


class NamedWeights(Protocol):
    """What the registry needs of named weights; `keras_cnn.weights` provides it.

    The registry never imports `keras_cnn.weights` (which builds models through the registry):
    importing `keras_cnn.weights` calls `set_named_weights`, and `keras_cnn/__init__` imports it
    before the model families register (see DEVELOPERS.md, "Adding weights").
    """

    def tags_for(self, name: str) -> tuple:
        """The `weights=` names registry name `name` accepts (`"imagenet"`, tags)."""

    def load_pretrained(self, name: str, tag: str, builder: Callable, kwargs: dict) -> Any:
        """Builds registry model `name` with the named weights `tag`."""

    def load_checkpoint(self, name: str, path: str, kwargs: dict) -> Any:
        """Builds registry model `name` from a timm/torchvision checkpoint file (`.safetensors`, `.pth`)."""


_named_weights: NamedWeights | None = None


def set_named_weights(provider: NamedWeights):
    """Installs the named-weights provider, before any family registers its variants.

    Raises:
        ValueError: if variants were registered already (they would lack their named weights).
    """
    global _named_weights
    if _MODELS and provider is not _named_weights:
        raise ValueError(
            f"set_named_weights must run before the model families register; {len(_MODELS)} "
            f"names are registered already (import keras_cnn.weights first), received {provider!r}"
        )
    _named_weights = provider


def _pretrained(name, row_pretrained):
    # The row's own names first, then the provider's; a name in both counts once.
    named = _named_weights.tags_for(name) if _named_weights is not None else ()
    return tuple(dict.fromkeys((*row_pretrained, *named)))


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one named model.

    Attributes:
        name: Registry name, following timm/torchvision (`"resnet50d"`).
        builder_name: The CamelCase builder exported by `keras_cnn` (`"ResNet50D"`).
        builder: The builder itself.
        family: Family module name (`"resnet"`).
        config: The architecture arguments the row passes to the family builder.
        variant: One line saying exactly which variant this name is.
        paper: The paper the family (or variant) comes from.
        reference: The implementation whose parameter count this name matches.
        pretrained: Named weights accepted by `weights=` (besides `None` and a path).
    """

    name: str
    builder_name: str
    builder: Callable
    family: str
    config: dict
    variant: str
    paper: str
    reference: str
    pretrained: tuple

    @property
    def default_size(self) -> int:
        """Input resolution the reference evaluates at."""
        return self.config.get("default_size", 224)

    @property
    def default_classes(self) -> int:
        """Default number of classes (1000 for ImageNet models)."""
        return self.config.get("classes", 1000)


class UnknownArgumentError(TypeError, ValueError):
    """A keyword a builder does not take: a `TypeError` as for any function, and a `ValueError`
    as for any other bad argument of keras_cnn (so either `except` catches it)."""


# Files a builder's `weights=` reads itself (Keras) and the timm/torchvision checkpoints it hands
# to the family's converter.
KERAS_WEIGHTS_SUFFIXES = (".weights.h5", ".keras", ".h5")
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def check_keywords(builder_name, signature, kwargs):
    """Raises `UnknownArgumentError` for a keyword `signature` lacks, listing close matches."""
    valid = list(signature.parameters)
    for key in kwargs:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.7)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UnknownArgumentError(
                f"{builder_name}() got an unexpected keyword argument {key!r}{hint} Its arguments: {sorted(valid)}"
            )


def _looks_like_path(weights):
    return (os.sep in weights or "/" in weights or weights.startswith(("~", "."))
            or weights.endswith(KERAS_WEIGHTS_SUFFIXES + CHECKPOINT_SUFFIXES))


def _unknown_weights(name, builder_name, weights, pretrained):
    """The `ValueError` for a `weights` string that is neither a file nor a named weights of `name`."""
    if _looks_like_path(weights):
        return ValueError(f"`weights` file does not exist, received weights={weights!r}")
    others = [n for n in list_models(pretrained=True) if weights in _MODELS[n].pretrained]
    close = difflib.get_close_matches(name, others, n=3, cutoff=0.6) or [
        n for n in others if n.startswith(name.rstrip("0123456789"))][:3]
    if pretrained:
        message = (f"{builder_name} ({name!r}) has no weights={weights!r}; pass one of its named weights "
                   f"explicitly: {list(pretrained)}, e.g. {builder_name}(weights={pretrained[-1]!r})")
    else:
        message = f"{builder_name} ({name!r}) has no named weights; received weights={weights!r}"
    if close:
        spelled = ", ".join(f"{n!r} ({_MODELS[n].builder_name}(weights={weights!r}))" for n in close)
        message += f". Models with weights={weights!r} close to {name!r}: {spelled}"
    elif others:
        message += f". Models with weights={weights!r}: {others}"
    return ValueError(message + ". `weights` takes None, a named weights tag or an existing file.")


def _variant_builder(family_builder, info_fields, config):
    name = info_fields["name"]
    pretrained = info_fields["pretrained"]

    signature = inspect.signature(family_builder)

    def builder(**kwargs):
        check_keywords(info_fields["builder_name"], signature, kwargs)
        weights = kwargs.get("weights")
        if isinstance(weights, str) and weights in pretrained:
            return _named_weights.load_pretrained(name, weights, functools.partial(family_builder, **config), kwargs)
        if isinstance(weights, (str, os.PathLike)):
            path = os.path.expanduser(os.fspath(weights))
            if not os.path.isfile(path):
                raise _unknown_weights(name, info_fields["builder_name"], os.fspath(weights), pretrained)
            if path.endswith(CHECKPOINT_SUFFIXES):
                # A timm/torchvision checkpoint, not a Keras weights file: the family's converter
                # maps it (or says which families have one).
                return _named_weights.load_checkpoint(name, path, {k: v for k, v in kwargs.items() if k != "weights"})
            kwargs["weights"] = path
        kwargs.setdefault("name", name)
        return family_builder(**{**config, **kwargs})

    builder.__name__ = builder.__qualname__ = info_fields["builder_name"]
    builder.__doc__ = (
        f"{info_fields['variant']}\n\n"
        f"Registry name `{name!r}`; parameters match {info_fields['reference']}.\n"
        f"Paper: {info_fields['paper']}.\n\n"
        f"Takes the keyword arguments of `{family_builder.__module__}.{family_builder.__name__}` "
        f"(the architecture ones are preset to {config}).\n"
        f"`weights` also accepts: {', '.join(map(repr, pretrained)) or 'no named weights'}.\n"
    )
    builder.__wrapped__ = family_builder
    # The signature IDEs, `help()` and `inspect.signature` show: the family builder's
    # arguments, all keyword-only, with the row's architecture and name as defaults.
    builder.__signature__ = signature.replace(parameters=[
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                          default={**config, "name": name}.get(parameter.name, parameter.default))
        for parameter in signature.parameters.values()
        if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ])
    return builder


def register_variants(family_builder, rows, *, family, paper, namespace):
    """Registers one builder per row and exports it into the family module's namespace.

    Args:
        family_builder: The family's generic builder (e.g. `resnet.ResNet`).
        rows: Iterable of dicts with keys `name`, `builder_name`, `variant`, `reference`,
            `config` (architecture arguments, including `default_size`/`classes` where they
            differ from 224/1000) and optionally `paper` and `pretrained`.
        family: Family name.
        paper: Paper reference for the family (a row may override it).
        namespace: The family module's `globals()`; builders are added to it.

    Returns:
        The list of builder names added.
    """
    defaults = {"pretrained": (), "paper": paper}
    added = []
    for row in rows:
        fields = {**defaults, **row}
        # Named weights (keras_cnn.weights, through `set_named_weights`) join the row's own.
        fields["pretrained"] = _pretrained(fields["name"], fields["pretrained"])
        config = dict(fields.pop("config"))
        if fields["name"] in _MODELS:
            raise ValueError(f"model name {fields['name']!r} is registered twice")
        builder = _variant_builder(family_builder, fields, config)
        builder.__module__ = namespace["__name__"]
        _MODELS[fields["name"]] = ModelInfo(builder=builder, family=family, config=config, **fields)
        namespace[fields["builder_name"]] = builder
        added.append(fields["builder_name"])
    return added


def list_models(pattern=None, *, family=None, pretrained=False):
    """Lists registered model names.

    Args:
        pattern: Optional shell-style wildcard (`"seresnext*"`).
        family: Only names of this family (`"resnet"`).
        pretrained: Only names that accept named pretrained weights.

    Returns:
        Sorted list of names.
    """
    names = sorted(_MODELS)
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    if family is not None:
        names = [n for n in names if _MODELS[n].family == family]
    if pretrained:
        names = [n for n in names if _MODELS[n].pretrained]
    return names


def get_model_info(name) -> ModelInfo:
    """Returns the `ModelInfo` of a registered name; `ValueError` for unknown names."""
    if not isinstance(name, str) or name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=5)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"Unknown model name={name!r}.{hint} `keras_cnn.list_models()` lists all "
            f"{len(_MODELS)} names."
        )
    return _MODELS[name]


def create_model(name, **kwargs: Any):
    """Builds a registered model by name: `create_model("resnet50d", classes=10)`.

    Args:
        name: A name from `list_models()`.
        **kwargs: Arguments of the builder (`include_top`, `weights`, `input_shape`, ...).

    Returns:
        A `keras.Model`.
    """
    return get_model_info(name).builder(**kwargs)
