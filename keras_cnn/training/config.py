"""Training configs: the flat dict every recipe returns, and `--set key=value` overrides.

A recipe (`recipes/<name>.py`, installed as `keras_cnn.recipes.<name>`) is a module with a
`config()` function returning a plain dict of the keys in `DEFAULTS` it changes; a derived recipe
calls its base's `config()` and updates the dict. No YAML, no config classes: a config is data you
can print, diff and override from the command line.

A config's `"method"` selects the training job: `"supervised"` (the default, `DEFAULTS`),
`"mpl"` (Meta Pseudo Labels) or `"noisy_student"`. Each method has its own valid keys,
`defaults_for(method)`: the semi-supervised methods add theirs (`METHOD_DEFAULTS`) and drop the
supervised-only ones (`METHOD_EXCLUDED`), so a key the method would ignore is an error, not a
silent no-op.
"""

import ast
import importlib
import pkgutil

__all__ = [
    "DEFAULTS",
    "METHODS",
    "METHOD_DEFAULTS",
    "METHOD_EXCLUDED",
    "apply_overrides",
    "defaults_for",
    "list_recipes",
    "load_recipe",
    "resolve_config",
]

DEFAULTS = {
    # How to train: "supervised", "mpl" or "noisy_student" (METHOD_DEFAULTS: their extra keys).
    "method": "supervised",
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
    "randaugment": None,  # (num_ops, magnitude) or None: the reference RandAugment (keras_cnn.data.RandAugment)
    "random_erasing": 0.0,
    "color_jitter": 0.0,  # GluonCV's brightness/contrast/saturation jitter strength (Bag of Tricks: 0.4)
    "pca_lighting": 0.0,  # AlexNet-style PCA lighting noise std (Bag of Tricks: 0.1)
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
    # "l2" (coupled: g + wd*w, what the papers and their code do), "decoupled" (Keras' AdamW-style
    # w -= lr*wd*w) or "auto" (decoupled for adamw/lamb, l2 otherwise); see training.optimizers.
    "weight_decay_mode": "auto",
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

METHODS = ("supervised", "mpl", "noisy_student")

# Keys the semi-supervised methods add to `DEFAULTS` (keras_cnn/ssl/runner.py consumes them).
# With them, `model`/`model_args` are the student, `learning_rate`, `schedule`, `warmup_epochs`
# the student's schedule, `batch_size` the labeled batch and `randaugment` (+ `random_erasing`)
# the strong view (MPL) or the student's input noise (Noisy Student).
METHOD_DEFAULTS = {
    "supervised": {
        # Fine-tuning (keras_cnn.training.transfer): a new head on a pretrained backbone of `model`.
        "backbone": None,  # None (no transfer), a weights tag of `model` ("imagenet"), or a trained .keras model
        "freeze_epochs": 0,  # first train the new head alone this many epochs (backbone frozen, BN inference)
        "trainable_stages": "all",  # then unfreeze the last N stages ("all": the whole backbone)
        "unfreeze_learning_rate_factor": 0.1,  # learning rate of the unfrozen phase = learning_rate * factor
        "train_bn": False,  # False: BN layers stay frozen (inference mode) in unfrozen stages too
    },
    "mpl": {
        "ssl_split": None,  # keras_cnn.data.SSL_SPLITS key, "digits_<N>" or "fashion_mnist_<N>" (required)
        "labels_per_class": None,  # override the split's labels per class (int, or a fraction); None: the split's
        "mu": 7,  # unlabeled batch = mu * batch_size (the released code's `uda_data`)
        # `teacher` / `teacher_args` (DEFAULTS) name the teacher; None: the student's model and args.
        "teacher_learning_rate": 0.1,  # per `base_batch_size` labeled images, like learning_rate
        "teacher_warmup_epochs": 0,
        "student_wait_epochs": 0,  # the student's learning rate is 0 this long (its schedule starts after)
        "global_clipnorm": None,  # clip each network's gradients to this global norm (`grad_bound`)
        "uda_weight": 8.0,  # the teacher's UDA consistency loss weight (0: none)
        "uda_temperature": 0.7,
        "uda_threshold": 0.6,  # None: no confidence mask
        # What the student fits: "sample" (one-hot draw from the teacher, the paper's REINFORCE
        # derivation), "argmax" (one-hot argmax, MPL-pytorch) or "soft" (the teacher's probabilities,
        # the release, whose MPL term then has zero gradient).
        "pseudo_labels": "sample",
        "uda_ramp_epochs": 0,  # the UDA weight ramps from 0 over this many epochs (the release's uda_steps)
        "feedback_baseline_momentum": 0.99,  # moving-average baseline of the feedback (None: none)
        "finetune_steps": 0,  # then the student is finetuned on labeled data alone (0: no finetuning)
        "finetune_learning_rate": 3e-5,
        "finetune_batch_size": None,  # None: batch_size
    },
    "noisy_student": {
        "ssl_split": None,  # None: every training image of `dataset` is labeled; else a split's labels
        "labels_per_class": None,  # override the split's labels per class; None: the split's
        # The unlabeled images: "train_images" (the training split of `dataset`, labels dropped),
        # "tfds:NAME[:SPLIT]" (any TFDS dataset; default split "train") or a directory of images.
        "unlabeled": "train_images",
        "rounds": 2,  # student rounds after the teacher (round 0)
        # Students of rounds 1..rounds (equal or larger); None: `model` every round.
        "student_models": None,
        # `teacher` / `teacher_args`: the round-0 teacher (None: `model`); `teacher_weights`: a trained
        # teacher (.keras / .weights.h5), which skips round 0.
        "pseudo_label_mode": "soft",  # "soft" (the paper) or "hard"
        "pseudo_label_threshold": None,  # drop pseudo-labels less confident than this (None: keep all)
        "balance_classes": False,  # duplicate / drop pseudo-labeled images to equal class counts
        "per_class": None,  # images per class when balancing (None: the largest class)
        "max_in_memory_gb": 16.0,  # refuse to hold more decoded images than this in memory
        # Input size of each student round 1..rounds (None: image_size); the paper trains each
        # EfficientNet at its own resolution (B1: 240).
        "student_image_sizes": None,
    },
}

# Supervised keys the semi-supervised methods do not use (setting them is an error).
METHOD_EXCLUDED = {
    "supervised": (),
    "mpl": ("mixup_alpha", "cutmix_alpha", "teacher_weights", "distill_temperature", "distill_alpha",
            "color_jitter", "pca_lighting"),
    "noisy_student": ("mixup_alpha", "cutmix_alpha", "distill_temperature", "distill_alpha", "color_jitter",
                      "pca_lighting"),
}


def _check_method(method):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}, received method={method!r}")


def defaults_for(method):
    """The full default config of a method: `DEFAULTS`, its extra keys, minus the ones it ignores.

    Args:
        method: One of `METHODS`.

    Returns:
        A new dict (with `"method": method`).

    Raises:
        ValueError: Unknown method (the message names `method` and lists the valid ones).
    """
    _check_method(method)
    merged = {key: value for key, value in DEFAULTS.items() if key not in METHOD_EXCLUDED[method]}
    merged.update(METHOD_DEFAULTS[method])
    merged["method"] = method
    return {key: (dict(value) if isinstance(value, dict) else value) for key, value in merged.items()}


def _dict_keys(defaults):
    return {key for key, value in defaults.items() if isinstance(value, dict)}


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
    method = config.get("method", "supervised")
    valid = defaults_for(method)
    unknown = sorted(set(config) - set(valid))
    if unknown:
        where = "" if method == "supervised" else f" for method {method!r}"
        raise ValueError(f"{source} sets unknown config keys {unknown}{where}; valid keys: {sorted(valid)}")


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
    """The method's defaults (`defaults_for(config["method"])`) updated with `config`.

    Dict values are copied, not shared.

    Args:
        config: A partial config dict; without `"method"` it is supervised.

    Returns:
        A new full config dict.

    Raises:
        ValueError: An unknown method or a key the method does not know.
    """
    _check_keys(config, "config")
    merged = defaults_for(config.get("method", "supervised"))
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
    strings. `model_args.zero_gamma=True` sets one entry of a dict-valued key. `method=...` is
    applied first (the keys the new method does not know are dropped), so the other overrides
    are checked against the new method's keys.

    Args:
        config: A full config dict (not modified).
        overrides: An iterable of `"key=value"` strings.

    Returns:
        A new config dict.

    Raises:
        ValueError: A malformed override or an unknown key (the message lists the valid keys).
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
            valid = defaults_for(method)
            config = resolve_config({**{k: v for k, v in config.items() if k in valid}, "method": method})
    valid = defaults_for(config["method"])
    dict_keys = _dict_keys(valid)
    for key, text in parsed:
        if key == "method":
            continue
        value = _parse_value(text)
        if "." in key:
            parent, child = key.split(".", 1)
            if parent not in dict_keys:
                raise ValueError(
                    f"--set {key}: only dict-valued keys take a dotted sub-key ({sorted(dict_keys)}), "
                    f"received {key!r}"
                )
            config[parent][child] = value
            continue
        if key not in valid:
            where = "" if config["method"] == "supervised" else f" for method {config['method']!r}"
            raise ValueError(f"--set: unknown config key {key!r}{where}; valid keys: {sorted(valid)}")
        if key in dict_keys and not isinstance(value, dict):
            raise ValueError(f"--set {key} needs a dict literal, received {text!r}")
        config[key] = value
    return config
