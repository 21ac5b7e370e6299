"""The training job behind `keras-cnn train` (TensorFlow only: tf.data, tf.distribute).

    from keras_cnn.training import config, runner
    cfg = config.apply_overrides(config.load_recipe("digits_quickstart"), ["epochs=5"])
    results = runner.train(cfg, output_dir="runs/digits")

One run writes into `output_dir`:

    backup/                  BackupAndRestore: weights + optimizer + epoch; deleted when fit ends
    checkpoints/last.weights.h5   weights after the last epoch with a finite loss
    history.csv, logs/       per-epoch metrics (CSV, appended across resumes) and TensorBoard
    model.keras              the trained model (logits out), loadable with safe_mode=True
    saved_model/             `model.export`: a TensorFlow SavedModel for serving
    results.json             the final evaluation; its presence marks the run finished

A killed run continues from its last backed-up epoch when the same command is run again. With
`deterministic=True` the resumed run is bit-identical to an uninterrupted one: op determinism is
on and epoch `e`'s shuffling and per-image augmentation (crops, flips) draw from seeds of
`(seed, e)` only, so the data of the resumed epoch are the ones the killed run would have seen.
The batch-level Keras layers (RandAugment, RandomErasing, MixUp, CutMix) keep their own random
state, which restarts from `seed` on a resume: with them a resumed run is equivalent in
distribution, not bit-identical.
"""

import dataclasses
import json
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from keras_cnn import data
from keras_cnn.distribute import checkpoint as ckpt
from keras_cnn.distribute.precision import set_precision
from keras_cnn.distribute.strategy import get_strategy, resolve_strategy_kind
from keras_cnn.distribute.xla import choose_jit_compile, use_replica_xla
from keras_cnn.registry import create_model
from keras_cnn.training.callbacks import (
    GuardedBackupAndRestore,
    LastGoodCheckpoint,
    NonFiniteGuard,
    TrainingDiverged,
)
from keras_cnn.training.config import resolve_config
from keras_cnn.training.distillation import make_distiller
from keras_cnn.training.losses import classification_loss
from keras_cnn.training.optimizers import build_optimizer
from keras_cnn.training.schedules import build_schedule, scale_learning_rate
from keras_cnn.validation import check_choice, check_positive_int

__all__ = ["RunPaths", "TrainingDiverged", "train"]

LOGGER = logging.getLogger("keras_cnn.train")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Where one run writes; see the module docstring."""

    root: str

    @property
    def backup(self):
        return os.path.join(self.root, "backup")

    @property
    def last_checkpoint(self):
        return os.path.join(self.root, "checkpoints", "last.weights.h5")

    @property
    def history(self):
        return os.path.join(self.root, "history.csv")

    @property
    def logs(self):
        return os.path.join(self.root, "logs")

    @property
    def model(self):
        return os.path.join(self.root, "model.keras")

    @property
    def saved_model(self):
        return os.path.join(self.root, "saved_model")

    @property
    def results(self):
        return os.path.join(self.root, "results.json")

    @property
    def config(self):
        return os.path.join(self.root, "config.json")


def _check_config(cfg):
    check_positive_int("epochs", cfg["epochs"])
    check_positive_int("batch_size", cfg["batch_size"])
    for key in ("steps_per_epoch", "eval_steps", "image_size"):
        if cfg[key] is not None:
            check_positive_int(key, cfg[key])
    if isinstance(cfg["validation_freq"], bool) or not isinstance(cfg["validation_freq"], int) \
            or cfg["validation_freq"] < 0:
        raise ValueError(f"`validation_freq` must be an int >= 0, received validation_freq={cfg['validation_freq']!r}")
    check_choice("preprocessing", cfg["preprocessing"], ("auto", "cifar", "imagenet", "none"))
    if cfg["jit_compile"] not in ("auto", True, False):
        raise ValueError(f"`jit_compile` must be 'auto', True or False, received jit_compile={cfg['jit_compile']!r}")
    if cfg["teacher"] is not None and cfg["teacher_weights"] is None:
        raise ValueError(
            f"distillation from teacher={cfg['teacher']!r} needs its trained weights: "
            "set teacher_weights to a .keras or .weights.h5 file (--set teacher_weights=PATH)"
        )


def _sources(cfg, info, image_size, data_dir):
    """The raw train/eval sources and the number of training examples."""
    if info.name == "digits":
        (x_train, y_train), (x_test, y_test) = data.load_digits(image_size=image_size)
        return (x_train, y_train), (x_test, y_test), len(y_train)
    train = data.load(info.name, cfg["train_split"], data_dir=data_dir, download=cfg["download"])
    evaluation = data.load(info.name, cfg["eval_split"], data_dir=data_dir, download=cfg["download"])
    count = int(train.cardinality())
    if count < 0:  # unknown cardinality: the table's split size
        count = info.train_examples
    return train, evaluation, count


def _pipelines(cfg, info, image_size, train_source, eval_source, *, steps_per_epoch, initial_epoch):
    preprocessing = info.preprocessing if cfg["preprocessing"] == "auto" else cfg["preprocessing"]
    mixing = cfg["mixup_alpha"] > 0 or cfg["cutmix_alpha"] > 0
    one_hot = mixing or cfg["label_smoothing"] > 0 or cfg["teacher"] is not None
    def augment(seed):
        if cfg["randaugment"] is None and not cfg["random_erasing"] > 0:
            return None
        return data.augment_layers(randaugment=cfg["randaugment"], random_erasing=cfg["random_erasing"], seed=seed)

    common = dict(
        batch_size=cfg["batch_size"],
        image_size=image_size,
        num_classes=info.num_classes,
        preprocessing=preprocessing,
        one_hot=one_hot,
    )
    train_args = dict(common, training=True, mixup_alpha=cfg["mixup_alpha"],
                      cutmix_alpha=cfg["cutmix_alpha"], drop_remainder=True)
    callbacks = []
    if cfg["deterministic"]:
        # Shuffle order and per-example randomness keyed by (seed, epoch), the epoch read from a
        # variable that a callback sets: a run resumed at epoch k sees exactly the batches an
        # uninterrupted run sees from epoch k on.
        epoch, epoch_callback = data.epoch_variable(initial=initial_epoch)
        callbacks.append(epoch_callback)
        train = data.make_pipeline(train_source, seed=cfg["seed"], augment=augment(cfg["seed"]), deterministic=True,
                                   epoch=epoch, repeat=True, **train_args)
    else:
        train = data.make_pipeline(train_source, seed=cfg["seed"], augment=augment(cfg["seed"]), repeat=True,
                                   **train_args)
    evaluation = data.make_pipeline(eval_source, training=False, deterministic=cfg["deterministic"],
                                    drop_remainder=False, **common)
    if cfg["eval_steps"] is not None:
        evaluation = evaluation.take(cfg["eval_steps"])
    return train, evaluation, one_hot, callbacks


def _input_shape(image_size):
    return (image_size, image_size, 3)


def _load_teacher(cfg, classes, image_size):
    path = os.fspath(cfg["teacher_weights"])
    if not tf.io.gfile.exists(path):
        raise ValueError(f"`teacher_weights` file not found: {path!r}")
    if path.endswith(".keras"):
        teacher = keras.saving.load_model(path, safe_mode=True)
    elif path.endswith(".weights.h5"):
        teacher = create_model(cfg["teacher"], classes=classes, input_shape=_input_shape(image_size),
                               classifier_activation=None, **cfg["teacher_args"])
        teacher.load_weights(path)
    else:
        raise ValueError(f"`teacher_weights` must be a .keras or .weights.h5 file, received {path!r}")
    return teacher


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _write_json(path, payload, strategy):
    with ckpt.chief_only_path(path, strategy) as target:
        with tf.io.gfile.GFile(target, "w") as f:
            f.write(json.dumps(payload, indent=2, default=_json_default) + "\n")


def train(config, *, output_dir, strategy="auto", data_dir=None, verbose="auto", restart=False):
    """Trains a config with `model.fit` and writes the run's artifacts (module docstring).

    Args:
        config: A config dict (`keras_cnn.training.config`); missing keys take `DEFAULTS`.
        output_dir: The run's directory (local path or any filesystem TensorFlow writes, e.g. gs://).
        strategy: A `tf.distribute.Strategy`, or a kind for `keras_cnn.distribute.get_strategy`
            (`"auto"`, `"tpu"`, `"multi_worker"`, `"mirrored"`, `"one_device"`).
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity (`"auto"`: a progress bar).
        restart: Train from scratch even if `output_dir` holds a finished or interrupted run.

    Returns:
        The results dict (also written to `results.json`): test loss/accuracy and run facts.

    Raises:
        ValueError: A bad config value, unknown dataset or model, or missing data.
        TrainingDiverged: The loss became NaN/inf; the last good checkpoint and backup are kept.
    """
    cfg = resolve_config(config)
    _check_config(cfg)
    paths = RunPaths(os.fspath(output_dir))
    if tf.io.gfile.exists(paths.results) and not restart:
        with tf.io.gfile.GFile(paths.results) as f:
            results = json.load(f)
        LOGGER.info("%s is a finished run; pass restart=True (--restart) to train again", paths.root)
        return dict(results, already_finished=True)
    if restart and tf.io.gfile.exists(paths.root):
        for stale in (paths.backup, paths.results):
            if tf.io.gfile.exists(stale):
                tf.io.gfile.rmtree(stale) if tf.io.gfile.isdir(stale) else tf.io.gfile.remove(stale)

    info = data.get_dataset_info(cfg["dataset"])
    image_size = cfg["image_size"] or info.image_size
    previous_policy = keras.mixed_precision.global_policy().name
    keras.utils.set_random_seed(cfg["seed"])
    determinism_was_on = tf_config.is_op_determinism_enabled()
    if cfg["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    try:
        if strategy == "auto" and resolve_strategy_kind("auto").kind == "one_device":
            # One device: TensorFlow's default strategy. OneDeviceStrategy routes every batch
            # through a multi-device iterator: the quickstart's steps took 2.1x as long with it
            # (5.7 s vs 2.7 s per epoch on 2 CPU cores). `strategy="one_device"` still gives it.
            strategy = tf.distribute.get_strategy()
        elif isinstance(strategy, str):
            strategy = get_strategy(strategy)
        precision = set_precision(strategy, cfg["precision"])
        train_source, eval_source, train_examples = _sources(cfg, info, image_size, data_dir)
        steps_per_epoch = cfg["steps_per_epoch"] or train_examples // cfg["batch_size"]
        if steps_per_epoch < 1:
            raise ValueError(
                f"`batch_size`={cfg['batch_size']} is larger than the {train_examples} training examples of "
                f"{info.name!r}"
            )

        guard = NonFiniteGuard()
        backup = GuardedBackupAndRestore(paths.backup, guard=guard, save_freq=cfg["backup_freq"],
                                         double_checkpoint=True, strategy=strategy)
        initial_epoch = min(backup.resume_epoch(), cfg["epochs"] - 1)
        if initial_epoch:
            LOGGER.info("resuming %s at epoch %d", paths.root, initial_epoch + 1)
        train_ds, eval_ds, one_hot, data_callbacks = _pipelines(cfg, info, image_size, train_source, eval_source,
                                                steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch)

        with strategy.scope():
            model = create_model(cfg["model"], classes=info.num_classes, input_shape=_input_shape(image_size),
                                 classifier_activation=None, weights=cfg["weights"], **cfg["model_args"])
            learning_rate = cfg["learning_rate"]
            if cfg["base_batch_size"] is not None:
                learning_rate = scale_learning_rate(learning_rate, cfg["batch_size"], cfg["base_batch_size"])
            schedule = build_schedule(cfg["schedule"], learning_rate, steps_per_epoch=steps_per_epoch,
                                      epochs=cfg["epochs"], warmup_epochs=cfg["warmup_epochs"],
                                      **cfg["schedule_args"])
            optimizer = build_optimizer(
                cfg["optimizer"], schedule, weight_decay=cfg["weight_decay"], no_bias_decay=cfg["no_bias_decay"],
                model=model, momentum=cfg["momentum"], nesterov=cfg["nesterov"], rho=cfg["rho"],
                epsilon=cfg["epsilon"], ema=cfg["ema"], clipnorm=cfg["clipnorm"],
            )
            loss = classification_loss(label_smoothing=cfg["label_smoothing"], from_logits=True, sparse=not one_hot)
            metrics = ["accuracy"]
            if info.num_classes >= 100:
                top5 = keras.metrics.TopKCategoricalAccuracy if one_hot else keras.metrics.SparseTopKCategoricalAccuracy
                metrics.append(top5(k=5, name="top5_accuracy"))
            trainee = model
            if cfg["teacher"] is not None:
                teacher = _load_teacher(cfg, info.num_classes, image_size)
                trainee = make_distiller(teacher, model, temperature=cfg["distill_temperature"],
                                         alpha=cfg["distill_alpha"])
            override = None if cfg["jit_compile"] == "auto" else cfg["jit_compile"]
            jit = choose_jit_compile(model, strategy=strategy, override=override)
            trainee.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit)
        if jit and strategy.num_replicas_in_sync > 1:
            use_replica_xla(trainee)
        _write_json(paths.config, cfg, strategy)

        callbacks = [
            guard,
            backup,
            LastGoodCheckpoint(paths.last_checkpoint, guard=guard),
            keras.callbacks.CSVLogger(paths.history, append=True),
            keras.callbacks.TensorBoard(paths.logs),
            *data_callbacks,
        ]
        if cfg["ema"] is not None:
            # Validation during fit on the EMA weights; fit itself ends with them in the model.
            callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        validation = {}
        if cfg["validation_freq"]:
            validation = dict(validation_data=eval_ds, validation_freq=cfg["validation_freq"])
        start = time.time()
        trainee.fit(train_ds, epochs=cfg["epochs"], steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                    callbacks=callbacks, verbose=verbose, shuffle=False,  # the pipeline shuffles
                    **validation)
        train_seconds = time.time() - start
        if guard.diverged:
            epoch, batch = guard.diverged_at
            where = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
            kept = paths.last_checkpoint if tf.io.gfile.exists(paths.last_checkpoint) else "none (no epoch finished)"
            raise TrainingDiverged(
                f"training stopped: the loss became NaN/inf at {where}. Last good checkpoint: {kept}; the backup in "
                f"{paths.backup} is kept, so the same command (e.g. with a lower --set learning_rate=...) resumes "
                f"from the last good epoch."
            )

        scores = trainee.evaluate(eval_ds, return_dict=True, verbose=0)
        results = {
            "recipe_model": cfg["model"],
            "dataset": info.name,
            "test_accuracy": float(scores["accuracy"]),
            "test_loss": float(scores["loss"]),
            **{f"test_{k}": float(v) for k, v in scores.items() if k not in ("accuracy", "loss")},
            "epochs": cfg["epochs"],
            "resumed_at_epoch": initial_epoch,
            "steps_per_epoch": steps_per_epoch,
            "train_examples": train_examples,
            "image_size": image_size,
            "batch_size": cfg["batch_size"],
            "precision": precision,
            "jit_compile": bool(jit),
            "replicas": strategy.num_replicas_in_sync,
            "train_seconds": round(train_seconds, 1),
        }
        if not all(math.isfinite(v) for v in (results["test_loss"], results["test_accuracy"])):
            raise TrainingDiverged(f"the final evaluation is not finite: {scores}")
        ckpt.write_final_artifacts(model, paths.model, strategy=strategy)
        with ckpt.chief_only_path(paths.saved_model, strategy) as target:
            model.export(target, verbose=False)
        _write_json(paths.results, results, strategy)
        return results
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if cfg["deterministic"] and not determinism_was_on:
            # TensorFlow exports only the switch on; the same module's off switch restores the
            # caller's setting so one deterministic run does not slow down the rest of the process.
            tf_config.disable_op_determinism()
