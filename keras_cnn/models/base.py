"""The head contract shared by every builder (the keras.applications signature).

Each family builder validates its own architecture arguments, then hands a function that
maps the input tensor to the last feature map to `build_classifier`, which owns input
handling, the classification head / feature pooling, and loading a weights file.
"""

import functools
import inspect
import numbers
import os
import re
import sys
import warnings

import keras
from keras import layers

from keras_cnn.validation import (  # noqa: F401  (families import them from here too)
    check_bool,
    check_choice,
    check_int_sequence,
    check_positive_int,
    check_positive_number,
    check_rate,
)

POOLING_MODES = (None, "avg", "max")

# Keras maps a functional graph (building, cloning, loading a `.keras` file) with one Python
# recursion level per layer on the longest path; EfficientNet-L2 has ~1,900 layers there,
# past Python's default limit of 1,000.
RECURSION_LIMIT = 20_000


def ensure_recursion_limit(limit=RECURSION_LIMIT):
    """Raises Python's recursion limit to `limit` (never lowers it) for very deep graphs."""
    if sys.getrecursionlimit() < limit:
        sys.setrecursionlimit(limit)

# The preprocessing contract: every keras_cnn model takes RGB pixel values in [0, 255] and
# normalises them in its first layer, so a data pipeline never needs to know which
# convention a set of weights was trained with. Values are (mean, std) per RGB channel.
INPUT_NORMALIZATIONS = {
    # torchvision/timm and most papers: ImageNet statistics of [0, 1] images.
    "imagenet": ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)),
    # keras.applications "tf" mode: scale to [-1, 1].
    "tf": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    # keras.applications "caffe" mode (in RGB order; the BGR channel order of those
    # weights is folded into the first convolution when they are ported).
    "caffe": ((123.68, 116.779, 103.939), (1.0, 1.0, 1.0)),
}


# The head contract: the keyword arguments every family builder takes, documented once here.
# `family_builder` adds them to a family's signature and docstring; the family receives them
# as `**head` and hands them to `build_classifier` unchanged.
HEAD_ARGS_DOC = """
        include_top: Whether to include the classifier (global pooling, dropout and the
            `predictions` layer, or the family's own top).
        weights: `None` or the path of a weights file (`.weights.h5` or `.keras`). Named
            weights are taken by the registered builders, e.g.
            `keras_cnn.ResNet50V1(weights="imagenet")`.
        input_tensor: Optional Keras tensor to use as the input.
        input_shape: Optional `(height, width, channels)`; spatial sizes may be `None`.
        pooling: Global pooling for `include_top=False` (`None`, `"avg"`, `"max"`).
        classes: Number of classes.
        classifier_activation: Activation of the classifier (`None` returns logits).
        input_normalization: How the model normalises its RGB [0, 255] input (see
            `keras_cnn.models.base.INPUT_NORMALIZATIONS`); `None` if inputs arrive normalised.
        default_size: Input size used when no `input_shape` is given.
        name: Model name.
"""

# name: (default, annotation). A family may override a default (`family_builder(classes=10)`).
HEAD_ARGS = {
    "include_top": (True, "bool"),
    "weights": (None, "str | os.PathLike[str] | None"),
    "input_tensor": (None, "keras.KerasTensor | None"),
    "input_shape": (None, "tuple[int | None, int | None, int] | None"),
    "pooling": (None, "str | None"),
    "classes": (1000, "int"),
    "classifier_activation": ("softmax", "str | Callable[..., Any] | None"),
    "input_normalization": ("imagenet", "str | tuple[Any, Any] | None"),
    "default_size": (224, "int"),
    "name": (None, "str"),
}


def _head_arg_docs():
    entries = re.split(r"\n(?=        \w+: )", HEAD_ARGS_DOC.strip("\n"))
    return {entry.split(":", 1)[0].strip(): entry for entry in entries}


def _with_head_docs(doc, documented):
    """Appends the `HEAD_ARGS_DOC` entries a family does not document itself to its Args."""
    extra = "\n".join(text for arg, text in _head_arg_docs().items() if arg not in documented)
    head, sep, tail = doc.partition("\n\n    Returns:")
    return f"{head}\n{extra}{sep}{tail}"


def family_builder(**defaults):
    """Decorates a family's generic builder that takes the head contract as `**head`.

    The decorated builder's signature lists the family's own arguments followed by the head
    arguments of `HEAD_ARGS` as keyword-only parameters (with the family's `defaults`), so
    `inspect.signature`, `help()` and an unknown keyword (a `TypeError`) behave as if they were
    written out; its docstring gains the `HEAD_ARGS_DOC` entries it does not write itself. The
    family receives every head argument (defaults applied) in `**head` and passes them on to
    `build_classifier(features, ..., **head)`.

    Args:
        **defaults: Family defaults of head arguments; `name` is required.

    Returns:
        The decorator.
    """
    unknown = set(defaults) - set(HEAD_ARGS)
    if unknown or "name" not in defaults:
        raise TypeError(f"family_builder takes `name` and defaults of {sorted(HEAD_ARGS)}, "
                        f"received {sorted(defaults)}")

    def decorate(func):
        own = inspect.signature(func)
        params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        if len(params) == len(own.parameters) or set(HEAD_ARGS) & set(own.parameters):
            raise TypeError(f"{func.__name__} must take the head arguments as **head only")
        params += [
            inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY,
                              default=defaults.get(arg, default), annotation=annotation)
            for arg, (default, annotation) in HEAD_ARGS.items()
        ]
        signature = own.replace(parameters=params, return_annotation="keras.Model")

        @functools.wraps(func)
        def builder(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as err:  # an unknown keyword, as for any function
                raise TypeError(f"{func.__name__}() {err}") from None
            bound.apply_defaults()
            return func(*bound.args, **bound.kwargs)

        builder.__signature__ = signature
        documented = set(re.findall(r"^        (\w+):", func.__doc__, flags=re.MULTILINE))
        builder.__doc__ = _with_head_docs(func.__doc__, documented)
        return builder

    return decorate


def _check_activation(classifier_activation):
    if classifier_activation is None:
        return
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`classifier_activation` must be None, a Keras activation name or a callable, "
            f"received classifier_activation={classifier_activation!r}"
        ) from err


def resolve_input_shape(input_shape, input_tensor, *, default_size, min_size):
    """Validates `input_shape` / `input_tensor` and returns the (H, W, C) shape to build."""
    if keras.backend.image_data_format() != "channels_last":
        raise ValueError(
            "keras_cnn builds channels-last models; received image_data_format="
            f"{keras.backend.image_data_format()!r} (set it with keras.backend.set_image_data_format)"
        )
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "`input_tensor` must be a symbolic Keras tensor (from `keras.Input` or a layer), "
                f"received input_tensor of type {type(input_tensor).__name__}"
            )
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                f"`input_shape`={input_shape!r} disagrees with the shape of `input_tensor` "
                f"{tensor_shape!r}"
            )
        input_shape = tensor_shape
    if input_shape is None:
        return (default_size, default_size, 3)
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a (height, width, channels) tuple, received input_shape={input_shape!r}"
        )
    height, width, channels = input_shape
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(
            f"`input_shape` must end with a positive channel count, received input_shape={input_shape!r}"
        )
    if height in (1, 3) and channels not in (1, 3, 4):
        # (3, 224, 224) is an image in PyTorch's layout; the builders only make NHWC models.
        raise ValueError(
            "keras_cnn models are channels-last: `input_shape` is (height, width, channels), received "
            f"input_shape={input_shape!r}, which looks channels-first (use {(width, channels, height)!r})"
        )
    for dim in (height, width):
        if dim is None:
            continue
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < min_size:
            raise ValueError(
                f"`input_shape` spatial sizes must be None or integers >= {min_size} for this "
                f"network, received input_shape={input_shape!r}"
            )
    return tuple(input_shape)


def validate_head_args(
    *, include_top, weights, pooling, classes, classifier_activation, dropout, name, default_size=224
):
    """Checks the head-contract arguments every builder shares."""
    check_bool("include_top", include_top)
    check_choice("pooling", pooling, POOLING_MODES)
    check_positive_int("classes", classes)
    check_positive_int("default_size", default_size)
    check_rate("dropout", dropout)
    _check_activation(classifier_activation)
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, received name={name!r}")
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                f"`weights` must be None, a named weights tag or a path, received weights={weights!r}"
            )
        if not os.path.isfile(weights):
            raise ValueError(
                "`weights` file does not exist (`weights` takes None, a named weights tag of the "
                f"model or an existing weights file), received weights={str(weights)!r}"
            )


def resolve_input_normalization(input_normalization, channels):
    """Validates `input_normalization`; returns per-channel `(mean, std)` lists or None."""
    if input_normalization is None:
        return None
    value = input_normalization
    if isinstance(value, str):
        if value not in INPUT_NORMALIZATIONS:
            raise ValueError(
                f"`input_normalization` must be None, a (mean, std) pair or one of "
                f"{sorted(INPUT_NORMALIZATIONS)}, received input_normalization={value!r}"
            )
        value = INPUT_NORMALIZATIONS[value]
        if channels != 3:  # grey or multispectral input: use the RGB averages per channel
            value = tuple((sum(v) / 3,) for v in value)
    try:
        mean, std = value
        mean = [float(v) for v in (mean if isinstance(mean, (list, tuple)) else [mean])]
        std = [float(v) for v in (std if isinstance(std, (list, tuple)) else [std])]
    except (TypeError, ValueError):
        mean = std = None
    if (
        not mean
        or len(mean) != len(std)
        or len(mean) not in (1, channels)
        or any(not v > 0 for v in std)
    ):
        raise ValueError(
            "`input_normalization` must be None, a preset name or a (mean, std) pair with one "
            f"value or {channels} (one per channel) each and std > 0, received "
            f"input_normalization={input_normalization!r}"
        )
    return mean * (channels // len(mean)), std * (channels // len(std))


def head_dtype():
    """The dtype of classifier layers: float32 under a mixed policy, else the policy's."""
    # Under a mixed policy, logits and softmax stay float32 so losses are stable.
    policy = keras.mixed_precision.global_policy()
    return "float32" if policy.compute_dtype in ("float16", "bfloat16") else None


def classification_head(x, *, include_top, pooling, classes, classifier_activation, dropout):
    """Global pooling, dropout and the `predictions` layer (or only pooling)."""
    pool = layers.GlobalMaxPooling2D if pooling == "max" else layers.GlobalAveragePooling2D
    pool_name = "max_pool" if pooling == "max" else "avg_pool"
    if include_top:
        x = pool(name=pool_name)(x)
        if dropout:
            x = layers.Dropout(dropout, name="head_dropout")(x)
        return layers.Dense(
            classes, activation=classifier_activation, dtype=head_dtype(), name="predictions"
        )(x)
    if pooling is not None:
        x = pool(name=pool_name)(x)
    return x


def build_classifier(
    features_fn,
    *,
    name,
    default_size,
    min_size,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    dropout=0.0,
    input_normalization="imagenet",
    top_fn=None,
    aux_loss_weights=None,
):
    """Builds a `keras.Model` from a feature extractor and the shared head contract.

    Args:
        features_fn: Function mapping the image input tensor to the last feature map, or
            to `(feature_map, [aux_output, ...])` for a family with auxiliary classifiers
            (the aux outputs are final classifier tensors, built only with `include_top`).
        name: Model name.
        default_size: Resolution used when neither `input_shape` nor `input_tensor` is given.
        min_size: Smallest spatial size the network accepts.
        include_top: Whether to add pooling, dropout and the `predictions` layer.
        weights: `None` or the path of a weights file (`.weights.h5` or `.keras`).
        input_tensor: Optional symbolic tensor to build on.
        input_shape: Optional `(height, width, channels)`; spatial sizes may be `None`.
        pooling: `None`, `"avg"` or `"max"`: the global pooling of a feature extractor
            (`include_top=False`), or the head's pooling (default average).
        classes: Number of classes of the `predictions` layer.
        classifier_activation: Activation of the `predictions` layer (`None` for logits).
        dropout: Dropout rate before the `predictions` layer.
        input_normalization: How the model normalises its [0, 255] input: a key of
            `INPUT_NORMALIZATIONS`, a `(mean, std)` pair (scalars or per channel), or
            `None` for inputs the caller has already normalised.
        top_fn: Optional family-specific top (e.g. VGG's fully connected layers), called as
            `top_fn(x, classes=..., classifier_activation=..., dropout=..., pooling=...)`
            when `include_top`; it must end in a layer named `predictions` with
            `dtype=head_dtype()`. `None` uses the standard pooling + dropout + dense head.
        aux_loss_weights: With auxiliary outputs, the weight of each aux loss in
            `model.fit` (GoogLeNet: 0.3 each).

    Returns:
        The model (an `AuxiliaryOutputsModel` when `features_fn` returned aux outputs).
    """
    ensure_recursion_limit()
    validate_head_args(
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout=dropout,
        name=name,
        default_size=default_size,
    )
    shape = resolve_input_shape(
        input_shape, input_tensor, default_size=default_size, min_size=min_size
    )
    if input_tensor is None:
        img_input = layers.Input(shape=shape, name="input")
        inputs = img_input
    else:
        img_input = input_tensor
        inputs = keras.utils.get_source_inputs(input_tensor)
    x = img_input
    normalization = resolve_input_normalization(input_normalization, shape[-1])
    if normalization is not None:
        mean, std = normalization
        x = layers.Normalization(
            mean=mean, variance=[s * s for s in std], name="input_norm"
        )(x)
    x = features_fn(x)
    x, aux_outputs = x if isinstance(x, tuple) else (x, [])
    head_args = dict(classes=classes, classifier_activation=classifier_activation,
                     dropout=dropout, pooling=pooling)
    if include_top and top_fn is not None:
        x = top_fn(x, **head_args)
    else:
        x = classification_head(x, include_top=include_top, **head_args)
    if aux_outputs:
        if not include_top:
            raise RuntimeError(f"{name}: auxiliary outputs need include_top=True")
        loss_weights = (AUX_LOSS_WEIGHT,) * len(aux_outputs) if aux_loss_weights is None else aux_loss_weights
        model = AuxiliaryOutputsModel(inputs, [x, *aux_outputs], name=name,
                                      aux_loss_weights=loss_weights)
    else:
        model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_weights_file(model, weights)
    return model


AUX_LOSS_WEIGHT = 0.3  # GoogLeNet paper: each auxiliary loss is added with weight 0.3


@keras.saving.register_keras_serializable(package="keras_cnn")
class AuxiliaryOutputsModel(keras.Model):
    """A functional classifier that also returns auxiliary classifier outputs in training.

    `model(x, training=True)` returns `(main, *aux)`; `model(x)` at inference, `predict`,
    `evaluate`, an exported SavedModel and the model nested in another one return only
    `main`. Under `model.fit` the compiled loss is applied to every output and the aux
    losses are added with `aux_loss_weights`; metrics see only `main`.

    Args:
        *args: `inputs`, `outputs` (`[main, *aux]`) and the other `keras.Model` arguments.
        aux_loss_weights: One weight per auxiliary output.
        **kwargs: `keras.Model` keyword arguments.
    """

    def __init__(self, *args, aux_loss_weights=(AUX_LOSS_WEIGHT,), **kwargs):
        super().__init__(*args, **kwargs)
        aux_loss_weights = tuple(aux_loss_weights)
        if len(aux_loss_weights) != len(self.outputs) - 1 or any(
            not isinstance(w, numbers.Real) or not w >= 0 for w in aux_loss_weights
        ):
            raise ValueError(
                f"`aux_loss_weights` must hold one non-negative number per auxiliary output "
                f"({len(self.outputs) - 1}), received aux_loss_weights={aux_loss_weights!r}"
            )
        self.aux_loss_weights = tuple(float(w) for w in aux_loss_weights)

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        return tuple(outputs) if training else outputs[0]

    def compute_output_spec(self, inputs, training=None, mask=None):
        outputs = super().compute_output_spec(inputs, training=training, mask=mask)
        return tuple(outputs) if training else outputs[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (tuple, list)):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        main, *aux = y_pred
        # The main term also carries the model's regularisation losses, once.
        loss = super().compute_loss(x, y, main, sample_weight, training)
        if self._compile_loss is not None:
            for weight, output in zip(self.aux_loss_weights, aux):
                loss = loss + weight * self._compile_loss(y, output, sample_weight)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (tuple, list)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "aux_loss_weights": list(self.aux_loss_weights)}


def load_weights_file(model, path):
    """Loads a weights file into `model`; a file that does not fit is a `ValueError`."""
    with warnings.catch_warnings(record=True) as caught:
        # Keras only warns about parts of a file it could not load; here that is an error.
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as err:  # Keras raises several types for a file that does not fit.
            raise ValueError(
                f"`weights` file does not fit model {model.name!r}, received weights="
                f"{str(path)!r}: {err}"
            ) from err
    problems = [str(w.message) for w in caught if "load" in str(w.message).lower()
                or "skipping" in str(w.message).lower()]
    if problems:
        raise ValueError(
            f"`weights` file does not fit model {model.name!r}, received weights={str(path)!r}: "
            f"{problems[0]}"
        )
