"""Training configs: typed, nested recipe configs and `--set` overrides at any depth.

A recipe (`recipes/<name>.py`, installed as `keras_cnn.recipes.<name>`) is a module with a
`config()` function returning a plain nested dict of what it changes; a derived recipe calls its
base's `config()` and `merge`s its changes. `resolve_config` turns that into a `Config`: frozen
dataclasses, one per section, each with its defaults and its checks (`check(cfg)`) side by side:

    method, model, model_args, weights      what to train (top level)
    data       dataset, image size, splits, preprocessing          (`Data`)
    augment    RandAugment, erasing, colour jitter, mixup, cutmix  (`Augment`)
    schedule   epochs, batch size, steps, learning-rate schedule   (`Schedule`)
    optim      optimizer, learning rate, weight decay, EMA         (`Optim`)
    loss       label smoothing                                     (`Loss`)
    run        precision, XLA, seed, determinism, backups          (`Run`)
    distill    knowledge distillation from a trained teacher       (`Distill`, supervised)
    transfer   fine-tuning a pretrained backbone                   (`Transfer`, supervised)
    mpl        Meta Pseudo Labels                                  (`MPL`, method "mpl")
    noisy_student  Noisy Student                                   (`NoisyStudent`, method "noisy_student")

A config's `method` selects the training job (`keras_cnn.jobs.TRAINERS`): `"supervised"` (the
default), `"mpl"` or `"noisy_student"`, and with it the sections that exist: a key the method
would ignore is an error, not a silent no-op. `teacher` has one meaning per section:
`distill.teacher` is the trained network a supervised run distills from, `mpl.teacher` the
network MPL trains next to the student, `noisy_student.teacher` the round-0 teacher.

**Flat keys.** Every field also has a flat name, the key of the earlier flat configs, so
`--set epochs=4`, `--set learning_rate=0.2`, `--set model_args.stem_width=8` and `cfg["epochs"]`
keep working: a `Config` is a read-only mapping over its method's flat keys. The flat name is the
field's name, except `schedule` (`schedule.name`), `schedule_args` (`schedule.args`), `optimizer`
(`optim.name`), `distill_temperature` / `distill_alpha` (`distill.temperature` / `.alpha`); the
method-specific ones (`teacher`, `teacher_args`, `teacher_weights`, `ssl_split`,
`labels_per_class`) map to the section of the config's method. `flat_keys(method)` lists the
mapping. Overrides take either form: `--set optim.learning_rate=0.2`, `--set mpl.uda_weight=8`,
`--set schedule.args.decay_rate=0.9`.

**Checks.** A value must have its field's type (`learning_rate` a number, `nesterov` a bool)
and, for `optimizer`, `schedule`, `weight_decay_mode`, `preprocessing` and the pseudo-label
modes, be one of the choices; `model_args` must be keywords of the model's builder (and not
those the job sets: `classes`, `input_shape`, ...). `apply_overrides` checks what it sets,
naming the key as the user typed it, before anything trains; `Config.check` checks them all.
"""

import ast
import collections.abc
import dataclasses
import difflib
import importlib
import inspect
import numbers
import pkgutil

from keras_cnn.validation import check_bool, check_choice, check_positive_int

__all__ = [
    "DEFAULTS",
    "METHODS",
    "METHOD_DEFAULTS",
    "METHOD_EXCLUDED",
    "SECTIONS",
    "MPL",
    "Augment",
    "Config",
    "Data",
    "Distill",
    "Loss",
    "NoisyStudent",
    "Optim",
    "Run",
    "Schedule",
    "Transfer",
    "apply_overrides",
    "check_model_args",
    "defaults_for",
    "flat_keys",
    "list_recipes",
    "load_recipe",
    "merge",
    "resolve_config",
]

METHODS = ("supervised", "mpl", "noisy_student")


def _check_optional_int(argument, value):
    if value is not None:
        check_positive_int(argument, value)


@dataclasses.dataclass(frozen=True)
class Data:
    """The data (keras_cnn.data)."""

    dataset: str = "digits"
    image_size: object = None  # None: the dataset's native training size
    train_split: str = "train"
    eval_split: str = "eval"
    preprocessing: str = "auto"  # "auto" (the dataset's: "cifar" / "imagenet"), "cifar", "imagenet", "none"
    crop_fraction: float = 0.875  # eval: resize to size / crop_fraction, then center crop
    download: bool = False  # let tfds download a missing dataset (never for ImageNet: manual download)

    def check(self, cfg):
        _check_optional_int("image_size", self.image_size)
        check_choice("preprocessing", self.preprocessing, ("auto", "cifar", "imagenet", "none"))


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation; MPL and Noisy Student use `randaugment` + `random_erasing` only
    (the strong view, the student's input noise)."""

    randaugment: object = None  # (num_ops, magnitude) or None: the reference RandAugment (keras_cnn.data.RandAugment)
    random_erasing: float = 0.0
    color_jitter: float = 0.0  # GluonCV's brightness/contrast/saturation jitter strength (Bag of Tricks: 0.4)
    pca_lighting: float = 0.0  # AlexNet-style PCA lighting noise std (Bag of Tricks: 0.1)
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def check(self, cfg):
        pass  # keras_cnn.data checks the augmentation arguments when it builds the layers


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long and in what steps: epochs, batches, the learning-rate schedule."""

    epochs: int = 1
    batch_size: int = 256  # global batch, over all replicas (MPL: the labeled batch)
    steps_per_epoch: object = None  # None: train examples // batch_size
    eval_steps: object = None  # None: the whole eval split
    validation_freq: int = 1  # evaluate every N epochs during fit (0: only at the end)
    name: str = "cosine"  # flat key `schedule`: "constant", "cosine", "exponential", "step", "poly"
    # Flat key `schedule_args`: e.g. {"decay_rate": 0.97, "decay_epochs": 2.4} or {"boundaries_epochs": [30, 60]}.
    args: dict = dataclasses.field(default_factory=dict)
    warmup_epochs: float = 0

    def check(self, cfg):
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        _check_optional_int("steps_per_epoch", self.steps_per_epoch)
        _check_optional_int("eval_steps", self.eval_steps)
        check_positive_int("validation_freq", self.validation_freq, minimum=0)


@dataclasses.dataclass(frozen=True)
class Optim:
    """The optimizer (keras_cnn.training.build_optimizer); MPL's two networks both use it."""

    name: str = "sgd"  # flat key `optimizer`
    learning_rate: float = 0.1
    base_batch_size: object = 256  # linear scaling: lr = learning_rate * batch_size / base_batch_size (None: off)
    momentum: float = 0.9
    nesterov: bool = False
    rho: float = 0.9  # RMSProp decay
    epsilon: object = None  # optimizer epsilon (None: the optimizer's default)
    weight_decay: float = 1e-4
    # "l2" (coupled: g + wd*w, what the papers and their code do), "decoupled" (Keras' AdamW-style
    # w -= lr*wd*w) or "auto" (decoupled for adamw/lamb, l2 otherwise); see training.optimizers.
    weight_decay_mode: str = "auto"
    no_bias_decay: bool = True
    clipnorm: object = None
    ema: object = None  # EMA momentum for the weights (e.g. 0.9999); evaluation then uses the EMA weights

    def check(self, cfg):
        pass  # build_optimizer checks its arguments


@dataclasses.dataclass(frozen=True)
class Loss:
    label_smoothing: float = 0.0

    def check(self, cfg):
        pass


@dataclasses.dataclass(frozen=True)
class Run:
    """Execution: precision, XLA, seeds, determinism, backups."""

    precision: str = "auto"  # "auto" (bf16 on TPU, fp16 on GPU, fp32 on CPU), "float32", "mixed_float16", ...
    jit_compile: object = "auto"  # "auto" (keras_cnn.distribute.XLA_POLICY), True, False
    seed: int = 0
    deterministic: bool = False  # op determinism + per-epoch seeded data: a resumed run is bit-identical
    backup_freq: object = "epoch"  # BackupAndRestore: "epoch" or every N batches
    # Steps run op by op (`compile(run_eagerly=True)`, XLA off): for debugging, and for smoke runs
    # of a few steps, where tracing a full-size train step costs more than running it.
    run_eagerly: bool = False
    # Also write `saved_model/` (`model.export`; `model.keras` is always written). Exporting a
    # full-size model takes ~10-30 s on CPU; `keras-cnn export` can write it later.
    saved_model: bool = True

    def check(self, cfg):
        if self.jit_compile not in ("auto", True, False):
            raise ValueError(f"`jit_compile` must be 'auto', True or False, received jit_compile={self.jit_compile!r}")
        check_bool("run_eagerly", self.run_eagerly)
        check_bool("saved_model", self.saved_model)


@dataclasses.dataclass(frozen=True)
class Distill:
    """Knowledge distillation (supervised): a trained teacher, registry name + its weights file."""

    teacher: object = None
    teacher_args: dict = dataclasses.field(default_factory=dict)
    teacher_weights: object = None  # a .keras or .weights.h5 file
    temperature: float = 20.0  # flat key `distill_temperature`
    alpha: float = 0.5  # flat key `distill_alpha`

    def check(self, cfg):
        if self.teacher is not None and self.teacher_weights is None:
            raise ValueError(
                f"distillation from teacher={self.teacher!r} needs its trained weights: "
                "set teacher_weights to a .keras or .weights.h5 file (--set teacher_weights=PATH)"
            )


@dataclasses.dataclass(frozen=True)
class Transfer:
    """Fine-tuning (keras_cnn.training.transfer): a new head on a pretrained backbone of `model`."""

    backbone: object = None  # None (no transfer), a weights tag of `model` ("imagenet"), or a trained .keras model
    freeze_epochs: int = 0  # first train the new head alone this many epochs (backbone frozen, BN inference)
    trainable_stages: object = "all"  # then unfreeze the last N stages ("all": the whole backbone)
    unfreeze_learning_rate_factor: float = 0.1  # learning rate of the unfrozen phase = learning_rate * factor
    train_bn: bool = False  # False: BN layers stay frozen (inference mode) in unfrozen stages too

    def check(self, cfg):
        if self.backbone is None:
            for key, default in (("freeze_epochs", 0), ("trainable_stages", "all")):
                if getattr(self, key) != default:
                    raise ValueError(f"`{key}` applies when fine-tuning a pretrained `backbone` (None here), "
                                     f"received {key}={getattr(self, key)!r}")
            return
        if cfg.weights is not None:
            raise ValueError(f"Set either `weights` or `backbone` (the weights of a fine-tuned backbone), received "
                             f"weights={cfg.weights!r} and backbone={self.backbone!r}")
        freeze, epochs = self.freeze_epochs, cfg.schedule.epochs
        if isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze < epochs:
            raise ValueError(f"`freeze_epochs` must be an int in [0, epochs={epochs}), received "
                             f"freeze_epochs={freeze!r}")
        stages = self.trainable_stages
        if stages != "all" and (isinstance(stages, bool) or not isinstance(stages, int) or stages < 0):
            raise ValueError(f"`trainable_stages` must be 'all' or an int >= 0, received trainable_stages={stages!r}")
        factor = self.unfreeze_learning_rate_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < float("inf"):
            raise ValueError(f"`unfreeze_learning_rate_factor` must be a positive number, received "
                             f"unfreeze_learning_rate_factor={factor!r}")


@dataclasses.dataclass(frozen=True)
class MPL:
    """Meta Pseudo Labels (keras_cnn/ssl/runner.py). `model` / `model_args` are the student,
    `optim.learning_rate` and the schedule the student's, `schedule.batch_size` the labeled batch."""

    ssl_split: object = None  # keras_cnn.data.SSL_SPLITS key, "digits_<N>" or "fashion_mnist_<N>" (required)
    labels_per_class: object = None  # override the split's labels per class (int, or a fraction); None: the split's
    mu: int = 7  # unlabeled batch = mu * batch_size (the released code's `uda_data`)
    teacher: object = None  # the teacher network; None: the student's `model` (and its `model_args`)
    teacher_args: dict = dataclasses.field(default_factory=dict)
    teacher_learning_rate: float = 0.1  # per `base_batch_size` labeled images, like learning_rate
    teacher_warmup_epochs: float = 0
    student_wait_epochs: float = 0  # the student's learning rate is 0 this long (its schedule starts after)
    global_clipnorm: object = None  # clip each network's gradients to this global norm (`grad_bound`)
    uda_weight: float = 8.0  # the teacher's UDA consistency loss weight (0: none)
    uda_temperature: float = 0.7
    uda_threshold: object = 0.6  # None: no confidence mask
    # What the student fits: "sample" (one-hot draw from the teacher, the paper's REINFORCE
    # derivation), "argmax" (one-hot argmax, MPL-pytorch) or "soft" (the teacher's probabilities,
    # the release, whose MPL term then has zero gradient).
    pseudo_labels: str = "sample"
    uda_ramp_epochs: float = 0  # the UDA weight ramps from 0 over this many epochs (the release's uda_steps)
    feedback_baseline_momentum: object = 0.99  # moving-average baseline of the feedback (None: none)
    finetune_steps: int = 0  # then the student is finetuned on labeled data alone (0: no finetuning)
    finetune_learning_rate: float = 3e-5
    finetune_batch_size: object = None  # None: batch_size

    def check(self, cfg):
        pass  # keras_cnn.ssl.runner's train_mpl.check (it needs the SSL splits)


@dataclasses.dataclass(frozen=True)
class NoisyStudent:
    """Noisy Student (keras_cnn/ssl/runner.py): `model` / `model_args` are the students."""

    ssl_split: object = None  # None: every training image of `dataset` is labeled; else a split's labels
    labels_per_class: object = None  # override the split's labels per class; None: the split's
    # The unlabeled images: "train_images" (the training split of `dataset`, labels dropped),
    # "tfds:NAME[:SPLIT]" (any TFDS dataset; default split "train") or a directory of images.
    unlabeled: str = "train_images"
    rounds: int = 2  # student rounds after the teacher (round 0)
    student_models: object = None  # students of rounds 1..rounds (equal or larger); None: `model` every round
    teacher: object = None  # the round-0 teacher; None: `model`
    teacher_args: dict = dataclasses.field(default_factory=dict)
    teacher_weights: object = None  # a trained teacher (.keras / .weights.h5), which skips round 0
    pseudo_label_mode: str = "soft"  # "soft" (the paper) or "hard"
    pseudo_label_threshold: object = None  # drop pseudo-labels less confident than this (None: keep all)
    balance_classes: bool = False  # duplicate / drop pseudo-labeled images to equal class counts
    per_class: object = None  # images per class when balancing (None: the largest class)
    max_in_memory_gb: float = 16.0  # refuse to hold more decoded images than this in memory
    # Input size of each student round 1..rounds (None: image_size); the paper trains each
    # EfficientNet at its own resolution (B1: 240).
    student_image_sizes: object = None

    def check(self, cfg):
        pass  # keras_cnn.ssl.runner's train_noisy_student.check


SECTIONS = {
    "data": Data,
    "augment": Augment,
    "schedule": Schedule,
    "optim": Optim,
    "loss": Loss,
    "run": Run,
    "distill": Distill,
    "transfer": Transfer,
    "mpl": MPL,
    "noisy_student": NoisyStudent,
}
_COMMON = ("data", "augment", "schedule", "optim", "loss", "run")
_METHOD_SECTIONS = {
    "supervised": (*_COMMON, "distill", "transfer"),
    "mpl": (*_COMMON, "mpl"),
    "noisy_student": (*_COMMON, "noisy_student"),
}
# Fields of the common sections a semi-supervised method does not use (setting them is an error).
_EXCLUDED = {
    "supervised": {},
    "mpl": {"augment": ("color_jitter", "pca_lighting", "mixup_alpha", "cutmix_alpha")},
    "noisy_student": {"augment": ("color_jitter", "pca_lighting", "mixup_alpha", "cutmix_alpha")},
}
# The flat names that differ from the field's name.
_FLAT_NAMES = {
    ("schedule", "name"): "schedule",
    ("schedule", "args"): "schedule_args",
    ("optim", "name"): "optimizer",
    ("distill", "temperature"): "distill_temperature",
    ("distill", "alpha"): "distill_alpha",
}
_TOP_LEVEL = {
    "method": "supervised",
    "model": "resnet18",
    "model_args": {},  # extra builder keywords, e.g. {"zero_gamma": True, "drop_path_rate": 0.2}
    "weights": None,  # initial weights for the model: None, "imagenet" or a file
}


def _check_method(method):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}, received method={method!r}")


def _section_fields(method, section):
    excluded = _EXCLUDED[method].get(section, ())
    return [f.name for f in dataclasses.fields(SECTIONS[section]) if f.name not in excluded]


def flat_keys(method="supervised"):
    """The flat keys of a method and where each lives.

    Args:
        method: One of `METHODS`.

    Returns:
        A dict `{flat key: "section.field"}` (top-level keys map to themselves).
    """
    _check_method(method)
    keys = {key: key for key in _TOP_LEVEL}
    for section in _METHOD_SECTIONS[method]:
        for field in _section_fields(method, section):
            keys[_FLAT_NAMES.get((section, field), field)] = f"{section}.{field}"
    return keys


def _copy(value):
    return dict(value) if isinstance(value, dict) else value


@dataclasses.dataclass(frozen=True)
class Config(collections.abc.Mapping):
    """A resolved config: the top-level keys and one frozen section per part (module docstring).

    Typed access is by attribute (`cfg.optim.learning_rate`, `cfg.mpl.teacher`); as a mapping, a
    `Config` reads its method's flat keys (`cfg["learning_rate"]`, `set(cfg)`, `{**cfg, ...}`).
    Build one with `resolve_config`, change one with `apply_overrides` or `resolve_config({**cfg, ...})`.
    """

    method: str = "supervised"
    model: str = "resnet18"
    model_args: dict = dataclasses.field(default_factory=dict)
    weights: object = None
    data: Data = Data()
    augment: Augment = Augment()
    schedule: Schedule = Schedule()
    optim: Optim = Optim()
    loss: Loss = Loss()
    run: Run = Run()
    distill: object = None  # Distill (supervised)
    transfer: object = None  # Transfer (supervised)
    mpl: object = None  # MPL (method "mpl")
    noisy_student: object = None  # NoisyStudent (method "noisy_student")

    @property
    def sections(self):
        """The names of this method's sections."""
        return _METHOD_SECTIONS[self.method]

    def __getitem__(self, key):
        path = flat_keys(self.method).get(key)
        if path is None:
            raise KeyError(key)
        section, _, field = path.partition(".")
        return getattr(getattr(self, section), field) if field else getattr(self, section)

    def __iter__(self):
        return iter(flat_keys(self.method))

    def __len__(self):
        return len(flat_keys(self.method))

    def to_dict(self):
        """The nested form (what `config.json` and `results.json` record), with copied dict values."""
        nested = {key: _copy(getattr(self, key)) for key in _TOP_LEVEL}
        for section in self.sections:
            values = getattr(self, section)
            nested[section] = {field: _copy(getattr(values, field)) for field in _section_fields(self.method, section)}
        return nested

    def check(self):
        """Runs every field's type and choice checks, checks `model_args` against the model's
        builder, then every section's checks (`ValueError` naming the key and the value)."""
        for key, path in flat_keys(self.method).items():
            _check_field(self, path, key)
        check_model_args(self.model, self.model_args)
        for section in self.sections:
            getattr(self, section).check(self)


def _optimizers():
    # keras_cnn.training.optimizers imports Keras; this module stays importable without it.
    from keras_cnn.training.optimizers import OPTIMIZERS, WEIGHT_DECAY_MODES

    return OPTIMIZERS, WEIGHT_DECAY_MODES


def _schedules():
    from keras_cnn.training.schedules import SCHEDULES

    return SCHEDULES


# The choices of string fields, checked when a config is checked or overridden (callables: the
# owning module's list, imported when needed).
_CHOICES = {
    "optim.name": lambda: _optimizers()[0],
    "optim.weight_decay_mode": lambda: _optimizers()[1],
    "schedule.name": _schedules,
    "data.preprocessing": lambda: ("auto", "cifar", "imagenet", "none"),
    "mpl.pseudo_labels": lambda: ("sample", "argmax", "soft"),
    "noisy_student.pseudo_label_mode": lambda: ("soft", "hard"),
}
# What a field annotated with a type must hold (fields annotated `object` take several kinds of
# value and are checked by their section or their consumer).
_TYPE_CHECKS = {
    float: ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    int: ("an integer", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)),
    bool: ("True or False", lambda v: isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
    dict: ("a dict", lambda v: isinstance(v, dict)),
}
_TOP_LEVEL_TYPES = {"model": str, "model_args": dict}


def _field_type(path):
    section, _, field = path.partition(".")
    if not field:
        return _TOP_LEVEL_TYPES.get(section)
    return {f.name: f.type for f in dataclasses.fields(SECTIONS[section])}[field]


def _check_field(cfg, path, key, *, source="", text=None):
    """Raises `ValueError` naming `key` (as the user wrote it) unless `cfg`'s value at `path` has
    its field's type and, for a field with choices, is one of them."""
    section, _, field = path.partition(".")
    value = getattr(getattr(cfg, section), field) if field else getattr(cfg, section)
    received = f"{key}={text if text is not None else repr(value)}"
    expected = _TYPE_CHECKS.get(_field_type(path))
    if expected is not None and not expected[1](value):
        raise ValueError(f"{source}`{key}` must be {expected[0]}, received {received}")
    if path in _CHOICES:
        choices = list(_CHOICES[path]())
        if value not in choices:
            raise ValueError(f"{source}`{key}` must be one of {choices}, received {received}"
                             f"{'; ' + _suggest(str(value), choices).strip() if _suggest(str(value), choices) else ''}")


# Builder arguments the training jobs set themselves (from the dataset and `weights`).
RESERVED_MODEL_ARGS = ("classes", "input_shape", "classifier_activation", "weights", "include_top")


def check_model_args(model, model_args, *, argument="model_args"):
    """Checks builder keywords against the signature of registry model `model`'s builder.

    Args:
        model: A registry name (`keras_cnn.list_models()`).
        model_args: The extra builder keywords (a dict).
        argument: What the message starts with: the key the user set (`"--set model_args.zero_gamma"`).

    Raises:
        ValueError: An unknown model, a keyword the builder does not take (the message lists
            close matches and the valid ones) or one the training job sets itself.
    """
    from keras_cnn.registry import get_model_info

    if not isinstance(model, str):
        raise ValueError(f"{argument}: `model` must be a registry name (a string), received model={model!r}")
    try:
        info = get_model_info(model)
    except ValueError as error:
        raise ValueError(f"{argument}: {error}") from None
    reserved = sorted(k for k in model_args if k in RESERVED_MODEL_ARGS)
    if reserved:
        raise ValueError(f"{argument}: {reserved} are set by the training job (from the dataset and `weights`), "
                         f"received model_args={model_args!r}")
    valid = sorted(k for k in inspect.signature(info.builder).parameters if k not in RESERVED_MODEL_ARGS)
    for key in model_args:
        if key not in valid:
            raise ValueError(f"{argument}: model {model!r} ({info.builder_name}) takes no argument {key!r}; "
                             f"{_suggest(str(key), valid)}valid arguments: {valid}")


def _nested_defaults(method):
    nested = {key: _copy(value) for key, value in _TOP_LEVEL.items()}
    nested["method"] = method
    for section in _METHOD_SECTIONS[method]:
        defaults = SECTIONS[section]()
        nested[section] = {field: _copy(getattr(defaults, field)) for field in _section_fields(method, section)}
    return nested


def _build(nested):
    method = nested["method"]
    sections = {name: SECTIONS[name](**nested[name]) for name in _METHOD_SECTIONS[method]}
    return Config(**{key: nested[key] for key in _TOP_LEVEL}, **sections)


def defaults_for(method):
    """The full default config of a method.

    Args:
        method: One of `METHODS`.

    Returns:
        A `Config` (`"method": method`, every other key at its default).

    Raises:
        ValueError: Unknown method (the message names `method` and lists the valid ones).
    """
    _check_method(method)
    return _build(_nested_defaults(method))


def _suggest(key, candidates):
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.7)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def _unknown(source, keys, method, *, plural):
    flat = flat_keys(method)
    where = "" if method == "supervised" else f" for method {method!r}"
    candidates = [*flat, *flat.values()]
    hint = "".join(_suggest(str(k), candidates) for k in keys)
    what = f"unknown config keys {keys}" if plural else f"unknown config key {keys[0]!r}"
    return ValueError(f"{source}{what}{where}; {hint}valid keys: {sorted(flat)} (or SECTION.FIELD, sections: "
                      f"{list(_METHOD_SECTIONS[method])})")


def _path(nested, method, key):
    """Where `key` lives in a nested dict: `[top]`, `[section, field]`, plus a dict entry; None: unknown."""
    flat = flat_keys(method)
    if key in flat:
        return flat[key].split(".")
    head, _, rest = key.partition(".")
    if not rest:
        return None
    if head in _METHOD_SECTIONS[method]:
        field, _, entry = rest.partition(".")
        if field not in nested[head]:
            return None
        if not entry:
            return [head, field]
        return [head, field, entry] if isinstance(nested[head][field], dict) else None
    if head in flat:
        path = flat[head].split(".")
        parent = nested
        for part in path:
            parent = parent[part]
        return [*path, rest] if isinstance(parent, dict) else None
    return None


def _set(nested, method, key, value, *, source, text=None):
    """Sets `key` (flat, `section.field`, or a dict-valued key's `.entry`) in a nested dict; False if unknown."""
    path = _path(nested, method, key)
    if path is None:
        return False
    target = nested
    for part in path[:-1]:
        target = target[part]
    is_entry = len(path) == 3 or (len(path) == 2 and path[0] in _TOP_LEVEL)
    if not is_entry and isinstance(target[path[-1]], dict) and not isinstance(value, dict):
        raise ValueError(f"{source}{key} needs a dict literal, received {text if text is not None else value!r}")
    target[path[-1]] = value if is_entry else _copy(value)
    return True


def _dotted_error(source, key, method):
    flat = flat_keys(method)
    head = key.partition(".")[0]
    if head in flat and head not in _METHOD_SECTIONS[method]:
        dict_keys = sorted(k for k in flat if isinstance(defaults_for(method)[k], dict))
        return ValueError(f"{source}{key}: only sections and dict-valued keys take a dotted sub-key "
                          f"(sections {list(_METHOD_SECTIONS[method])}, dict-valued keys {dict_keys}), "
                          f"received {key!r}")
    return None


def resolve_config(config, *, source="config "):
    """A `Config`: the defaults of the config's method updated with `config`.

    Args:
        config: A `Config`, or a mapping in the nested form (`{"optim": {"learning_rate": 0.2}}`),
            the flat form (`{"learning_rate": 0.2}`) or both; without `"method"` it is supervised.
            Dict values are copied, not shared.
        source: How error messages name the config.

    Returns:
        A new `Config`.

    Raises:
        ValueError: An unknown method, or a key the method does not know (the message lists the
            valid keys and close matches).
    """
    if isinstance(config, Config):
        config = config.to_dict()
    if not isinstance(config, collections.abc.Mapping):
        raise ValueError(f"a config must be a mapping, received {type(config).__name__}: {config!r}")
    method = config.get("method", "supervised")
    _check_method(method)
    nested = _nested_defaults(method)
    unknown = []
    for key, value in config.items():
        if key == "method":
            continue
        if key in _METHOD_SECTIONS[method] and isinstance(value, collections.abc.Mapping):
            for field, entry in value.items():
                if field in nested[key]:
                    nested[key][field] = _copy(entry)
                else:
                    unknown.append(f"{key}.{field}")
        elif not isinstance(key, str) or not _set(nested, method, key, value, source=source):
            unknown.append(key)
    if unknown:
        raise _unknown(f"{source}sets ", unknown, method, plural=True)
    return _build(nested)


def merge(base, changes):
    """`base` (a nested recipe dict) with `changes` merged in, section by section (for derived recipes).

    Args:
        base: A recipe's nested dict (not modified).
        changes: A nested dict; a section's dict updates the base's section.

    Returns:
        A new nested dict.
    """
    merged = {key: _copy(value) for key, value in base.items()}
    for key, value in changes.items():
        if key in SECTIONS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = _copy(value)
    return merged


def _recipes_package():
    return importlib.import_module("keras_cnn.recipes")


def list_recipes():
    """The recipe names `keras-cnn train` accepts.

    Returns:
        A sorted list of module names in `keras_cnn.recipes` (the `recipes/` folder).
    """
    package = _recipes_package()
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def load_recipe(name):
    """A recipe's config, merged over its method's defaults.

    Args:
        name: A name from `list_recipes()`.

    Returns:
        A `Config`.

    Raises:
        ValueError: Unknown recipe (the message lists the valid ones) or a recipe setting unknown keys.
    """
    names = list_recipes()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"Unknown recipe {name!r}; valid recipes: {names}")
    module = importlib.import_module(f"keras_cnn.recipes.{name}")
    return resolve_config(module.config(), source=f"recipe {name!r} ")


def _parse_value(text):
    # Python literals (numbers, True/None, tuples, lists, dicts, quoted strings); anything else is
    # a bare string such as a model name, so `--set model=resnet50d` needs no quotes.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config, overrides):
    """Applies `key=value` strings (the command line's `--set`) to a config.

    Values are Python literals where they parse as one (`0.1`, `True`, `None`, `(2, 9)`), else
    strings. A key is a flat key (`learning_rate`), a section's field at any depth
    (`optim.learning_rate`, `mpl.uda_weight`, `schedule.args.decay_rate`) or an entry of a
    dict-valued key (`model_args.zero_gamma`). `method=...` is applied first (the keys the new
    method does not know are dropped), so the other overrides are checked against the new
    method's keys.

    Args:
        config: A config (not modified).
        overrides: An iterable of `"key=value"` strings.

    Returns:
        A new `Config`.

    Raises:
        ValueError: A malformed override, an unknown key (the message lists the valid keys and
            close matches), a value of the wrong type or not among the key's choices, or a
            `model_args` entry the model's builder does not take (each message starts with the
            key as typed: `--set optimizer` ...).
    """
    config = resolve_config(config)
    parsed = []
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"--set expects key=value, received {item!r}")
        key, text = item.split("=", 1)
        parsed.append((key.strip(), text.strip()))
    for key, text in parsed:
        if key == "method":
            method = _parse_value(text)
            _check_method(method)
            valid = flat_keys(method)
            config = resolve_config({**{k: v for k, v in config.items() if k in valid}, "method": method})
    method = config.method
    nested = config.to_dict()
    for key, text in parsed:
        if key == "method":
            continue
        if not _set(nested, method, key, _parse_value(text), source="--set ", text=text):
            error = _dotted_error("--set ", key, method) if "." in key else None
            raise error or _unknown("--set: ", [key], method, plural=False)
    config = resolve_config(nested)
    # Check what was set now, naming the key as typed; the rest is the recipe's (checked with
    # `Config.check` when the run starts).
    for key, text in parsed:
        path = _path(nested, method, key) if key != "method" else ["method"]
        if path[0] in ("model", "model_args"):
            check_model_args(config.model, config.model_args, argument=f"--set {key}")
        elif path[0] != "method" and len(path) == 2 and path[0] in _METHOD_SECTIONS[method]:
            _check_field(config, ".".join(path), key, source="--set ", text=text)
    return config


# The flat views of the earlier flat configs, derived from the sections (kept for callers that
# read them): the supervised keys without `transfer`, each method's additions and exclusions.
DEFAULTS = {k: v for k, v in defaults_for("supervised").items() if not flat_keys()[k].startswith("transfer.")}
METHOD_DEFAULTS = {method: {k: v for k, v in defaults_for(method).items() if k not in DEFAULTS} for method in METHODS}
METHOD_EXCLUDED = {method: tuple(k for k in DEFAULTS if k not in flat_keys(method)) for method in METHODS}
