"""Training configs: the flat dict every recipe returns, and `--set key=value` overrides.

A recipe (`recipes/<name>.py`, installed as `keras_cnn.recipes.<name>`) is a module with a
`config()` function returning a plain dict of the keys in `DEFAULTS` it changes; a derived recipe
calls its base's `config()` and updates the dict. No YAML, no config classes: a config is data you
can print, diff and override from the command line.
"""

import ast
import importlib
import pkgutil

__all__ = ["DEFAULTS", "apply_overrides", "list_recipes", "load_recipe", "resolve_config"]

DEFAULTS = {
    # What to train.
    "model": "resnet18",
    "model_args": {},  # extra builder keywords, e.g. {"zero_gamma": True, "drop_path_rate": 0.2}
    "weights": None,  # initial weights for the model: None, "imagenet" or a file
    # Data (keras_cnn.data).
    "dataset": "digits",
    "image_size": None,  # None: the dataset's native training size
    "train_split": "train",
    "eval_split": "eval",
    "preprocessing": "auto",  # "auto" (the dataset's: "cifar" / "imagenet"), "cifar", "imagenet", "none"
    "crop_fraction": 0.875,  # eval: resize to size / crop_fraction, then center crop
    "randaugment": None,  # (num_ops, magnitude) or None
    "random_erasing": 0.0,
    "mixup_alpha": 0.0,
    "cutmix_alpha": 0.0,
    "download": False,  # let tfds download a missing dataset (never for ImageNet: manual download)
    # Schedule.
    "epochs": 1,
    "batch_size": 256,  # global batch, over all replicas
    "steps_per_epoch": None,  # None: train examples // batch_size
    "eval_steps": None,  # None: the whole eval split
    "validation_freq": 1,  # evaluate every N epochs during fit (0: only at the end)
    # Optimizer.
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "base_batch_size": 256,  # linear scaling: lr = learning_rate * batch_size / base_batch_size (None: off)
    "momentum": 0.9,
    "nesterov": False,
    "rho": 0.9,  # RMSProp decay
    "epsilon": None,  # optimizer epsilon (None: the optimizer's default)
    "weight_decay": 1e-4,
    "no_bias_decay": True,
    "clipnorm": None,
    "ema": None,  # EMA momentum for the weights (e.g. 0.9999); evaluation then uses the EMA weights
    "schedule": "cosine",  # "constant", "cosine", "exponential", "step", "poly"
    "schedule_args": {},  # e.g. {"decay_rate": 0.97, "decay_epochs": 2.4} or {"boundaries_epochs": [30, 60]}
    "warmup_epochs": 0,
    # Loss.
    "label_smoothing": 0.0,
    # Knowledge distillation: a trained teacher (registry name + its weights file).
    "teacher": None,
    "teacher_args": {},
    "teacher_weights": None,
    "distill_temperature": 20.0,
    "distill_alpha": 0.5,
    # Execution.
    "precision": "auto",  # "auto" (bf16 on TPU, fp16 on GPU, fp32 on CPU), "float32", "mixed_float16", ...
    "jit_compile": "auto",  # "auto" (keras_cnn.distribute.XLA_POLICY), True, False
    "seed": 0,
    "deterministic": False,  # op determinism + per-epoch seeded data: a resumed run is bit-identical
    "backup_freq": "epoch",  # BackupAndRestore: "epoch" or every N batches
}

_DICT_KEYS = {key for key, value in DEFAULTS.items() if isinstance(value, dict)}


def _recipes_package():
    return importlib.import_module("keras_cnn.recipes")


def list_recipes():
    """The recipe names `keras-cnn train` accepts.

    Returns:
        A sorted list of module names in `keras_cnn.recipes` (the `recipes/` folder).
    """
    package = _recipes_package()
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def _check_keys(config, source):
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{source} sets unknown config keys {unknown}; valid keys: {sorted(DEFAULTS)}")


def load_recipe(name):
    """A recipe's config, merged over `DEFAULTS`.

    Args:
        name: A name from `list_recipes()`.

    Returns:
        A new dict with every key of `DEFAULTS`.

    Raises:
        ValueError: Unknown recipe (the message lists the valid ones) or a recipe setting unknown keys.
    """
    names = list_recipes()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"Unknown recipe {name!r}; valid recipes: {names}")
    module = importlib.import_module(f"keras_cnn.recipes.{name}")
    config = module.config()
    _check_keys(config, f"recipe {name!r}")
    return resolve_config(config)


def resolve_config(config):
    """`DEFAULTS` updated with `config` (dict values are copied, not shared).

    Args:
        config: A partial config dict.

    Returns:
        A new full config dict.
    """
    _check_keys(config, "config")
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in DEFAULTS.items()}
    for key, value in config.items():
        merged[key] = dict(value) if isinstance(value, dict) else value
    return merged


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
    strings. `model_args.zero_gamma=True` sets one entry of a dict-valued key.

    Args:
        config: A full config dict (not modified).
        overrides: An iterable of `"key=value"` strings.

    Returns:
        A new config dict.

    Raises:
        ValueError: A malformed override or an unknown key (the message lists the valid keys).
    """
    config = resolve_config(config)
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"--set expects key=value, received {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        value = _parse_value(text.strip())
        if "." in key:
            parent, child = key.split(".", 1)
            if parent not in _DICT_KEYS:
                raise ValueError(
                    f"--set {key}: only dict-valued keys take a dotted sub-key ({sorted(_DICT_KEYS)}), "
                    f"received {key!r}"
                )
            config[parent][child] = value
            continue
        if key not in DEFAULTS:
            raise ValueError(f"--set: unknown config key {key!r}; valid keys: {sorted(DEFAULTS)}")
        if key in _DICT_KEYS and not isinstance(value, dict):
            raise ValueError(f"--set {key} needs a dict literal, received {text!r}")
        config[key] = value
    return config
