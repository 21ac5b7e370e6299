"""What every training job shares: the run directory, resume, callbacks, optimizer, evaluation, artifacts.

The jobs (`keras_cnn.training.runner` for supervised runs, `keras_cnn.ssl.runner` for Meta Pseudo
Labels and Noisy Student; `keras_cnn.jobs` dispatches a config's `method` to one of them) build on
these pieces only, so a run directory looks and resumes the same whatever the method:

    backup/                  BackupAndRestore: weights + optimizer + epoch; deleted when fit ends
    checkpoints/last.weights.h5   weights after the last epoch with a finite loss
    history.csv, logs/       per-epoch metrics (CSV, appended across resumes) and TensorBoard
    config.json              the resolved config (nested sections, `keras_cnn.training.config`)
    model.keras, saved_model/     the trained model (logits out) and its SavedModel export
    results.json             the final evaluation; its presence marks the run finished

**Resume: one mechanism.** A job calls `run_job`, which returns the finished results of a run
directory holding `results.json` (running the same command again prints them) and otherwise runs
the job; inside, a job resumes at two granularities, both through `RunPaths`:

* epochs of one `fit`: `fit_callbacks` (its `backup.resume_epoch()` says where `fit` continues);
* finished stages of a multi-stage job: `RunPaths.stage(name)` (`Stage.done`, `Stage.save`,
  `Stage.load`): the MPL student before finetuning (`mpl_student.weights.h5`), the frozen phase
  of a fine-tuning run (`frozen_phase/`), the rounds of Noisy Student (`rounds/`).

`restart=True` (`--restart`) deletes the backup, `results.json` and every stage of `STAGES`.
"""

import contextlib
import dataclasses
import json
import logging
import math
import os

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from keras_cnn import data
from keras_cnn.distribute import checkpoint as ckpt
from keras_cnn.distribute.strategy import get_strategy, resolve_strategy_kind
from keras_cnn.registry import create_model
from keras_cnn.training.callbacks import (
    EpochTimer,
    GuardedBackupAndRestore,
    LastGoodCheckpoint,
    NonFiniteGuard,
    TrainingDiverged,
)
from keras_cnn.training.config import resolve_config
from keras_cnn.training.optimizers import build_optimizer
from keras_cnn.training.schedules import scale_learning_rate
from keras_cnn.validation import check_choice

__all__ = [
    "STAGES",
    "RunPaths",
    "Stage",
    "TrainingDiverged",
    "check_common_config",
    "classification_metrics",
    "eval_pipeline",
    "finished_results",
    "fit_callbacks",
    "load_teacher",
    "optimizer_from_config",
    "raise_if_diverged",
    "resolve_strategy",
    "run_context",
    "run_job",
    "scaled_learning_rate",
    "write_artifacts",
    "write_json",
]

LOGGER = logging.getLogger("keras_cnn.train")

# The finished-stage markers of multi-stage jobs, relative to the run directory. A new stage is
# one entry here plus `RunPaths.stage(name)` in its job: `restart` then clears it with the rest.
STAGES = ("mpl_student.weights.h5", "rounds", "frozen_phase")


@dataclasses.dataclass(frozen=True)
class Stage:
    """A finished stage of a multi-stage job: its marker (a weights file or a directory) exists.

    Attributes:
        path: The marker's path (a `.weights.h5` file written by `save`, or a directory the job fills).
    """

    path: str

    @property
    def done(self):
        return tf.io.gfile.exists(self.path)

    def load(self, model):
        """Loads the stage's weights into `model`."""
        model.load_weights(self.path)

    def save(self, model, strategy):
        """Saves `model`'s weights as the marker, atomically (written next to it, then renamed over it).

        Only the chief writes the real file (every worker saves; see `keras_cnn.distribute.chief_only_path`).
        """
        partial = self.path[: -len(".weights.h5")] + ".partial.weights.h5"
        with ckpt.chief_only_path(partial, strategy) as target:
            model.save_weights(target)
            if target == partial:
                tf.io.gfile.rename(partial, self.path, overwrite=True)


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

    @property
    def stage_markers(self):
        """The markers of `STAGES` in this run; `restart` deletes them."""
        return tuple(os.path.join(self.root, name) for name in STAGES)

    def stage(self, name, marker=None):
        """The finished-stage marker `name` (one of `STAGES`), or the file `marker` inside that directory.

        Args:
            name: A name of `STAGES`.
            marker: For a directory stage, the file inside it whose presence marks it done.

        Returns:
            A `Stage`.
        """
        check_choice("stage", name, STAGES)
        path = os.path.join(self.root, name)
        return Stage(path if marker is None else os.path.join(path, marker))

    def finished_results(self, restart=False):
        """The results of a finished run here (`None`: train), clearing a previous run on `restart`."""
        return finished_results(self, restart)


def check_common_config(cfg):
    """Checks the sections every method uses (`ValueError` naming the key and the value).

    Args:
        cfg: A config (resolved here).
    """
    cfg = resolve_config(cfg)
    for section in ("data", "schedule", "run"):
        getattr(cfg, section).check(cfg)


def eval_pipeline(cfg, info, image_size, eval_source, *, one_hot=False):
    """The evaluation `tf.data` pipeline of a config (in order, remainder kept, `eval_steps` batches)."""
    preprocessing = info.preprocessing if cfg.data.preprocessing == "auto" else cfg.data.preprocessing
    evaluation = data.make_pipeline(eval_source, training=False, deterministic=cfg.run.deterministic,
                                    drop_remainder=False, batch_size=cfg.schedule.batch_size, image_size=image_size,
                                    num_classes=info.num_classes, preprocessing=preprocessing, one_hot=one_hot,
                                    crop_fraction=cfg.data.crop_fraction)
    if cfg.schedule.eval_steps is not None:
        evaluation = evaluation.take(cfg.schedule.eval_steps)
    return evaluation


def load_teacher(name, args, weights, classes, image_size):
    """A trained teacher: `weights` (a .keras model, or a .weights.h5 file of `name` built with `args`).

    Args:
        name: The teacher's registry name (used for a .weights.h5 file).
        args: Its builder keywords.
        weights: A .keras or .weights.h5 file.
        classes: The number of classes.
        image_size: The input size.

    Returns:
        The teacher model.
    """
    path = os.fspath(weights)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"`teacher_weights` file not found: {path!r}")
    if path.endswith(".keras"):
        teacher = keras.saving.load_model(path, safe_mode=True)
    elif path.endswith(".weights.h5"):
        teacher = create_model(name, classes=classes, input_shape=(image_size, image_size, 3),
                               classifier_activation=None, **args)
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


def write_json(path, payload, strategy):
    """Writes `payload` as JSON to `path` (the chief's copy only; see `chief_only_path`); a `Config` nested."""
    if hasattr(payload, "to_dict"):
        payload = payload.to_dict()
    with ckpt.chief_only_path(path, strategy) as target:
        with tf.io.gfile.GFile(target, "w") as f:
            f.write(json.dumps(payload, indent=2, default=_json_default) + "\n")


def finished_results(paths, restart):
    """The results of a finished run in `paths` (`None`: train), clearing a stale one on `restart`."""
    if tf.io.gfile.exists(paths.results) and not restart:
        with tf.io.gfile.GFile(paths.results) as f:
            results = json.load(f)
        LOGGER.info("%s is a finished run; pass restart=True (--restart) to train again", paths.root)
        return dict(results, already_finished=True)
    if restart and tf.io.gfile.exists(paths.root):
        for stale in (paths.backup, paths.results, *paths.stage_markers):
            if tf.io.gfile.exists(stale):
                tf.io.gfile.rmtree(stale) if tf.io.gfile.isdir(stale) else tf.io.gfile.remove(stale)
    return None


def run_job(job, cfg, *, output_dir, strategy="auto", data_dir=None, verbose="auto", restart=False):
    """Runs (or resumes) `job` on a resolved config: the one entry every method goes through.

    Checks the config, returns the finished results of a finished run directory (with
    `already_finished=True`), else runs `job(cfg, paths, strategy, data_dir, verbose)` under
    `run_context` and returns its results.

    Args:
        job: A job function (`keras_cnn.jobs.TRAINERS`).
        cfg: A config (`keras_cnn.training.config`).
        output_dir: The run's directory.
        strategy: A `tf.distribute.Strategy` or a kind for `keras_cnn.distribute.get_strategy`.
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity.
        restart: Train from scratch even if `output_dir` holds a finished or interrupted run.

    Returns:
        The results dict.
    """
    cfg = resolve_config(cfg)
    cfg.check()  # every section's checks
    check = getattr(job, "check", None)
    if check is not None:
        check(cfg)
    paths = RunPaths(os.fspath(output_dir))
    finished = finished_results(paths, restart)
    if finished is not None:
        return finished
    with run_context(cfg):
        return job(cfg, paths, resolve_strategy(strategy), data_dir, verbose)


def scaled_learning_rate(cfg, learning_rate):
    """`learning_rate` scaled linearly by `batch_size / base_batch_size` (unscaled when that is None)."""
    if cfg.optim.base_batch_size is None:
        return learning_rate
    return scale_learning_rate(learning_rate, cfg.schedule.batch_size, cfg.optim.base_batch_size)


def optimizer_from_config(cfg, schedule, model, *, ema, global_clipnorm=None):
    """The config's optimizer (`optimizer`, `momentum`, `weight_decay`, ...) on `schedule` for `model`."""
    return build_optimizer(
        cfg.optim.name, schedule, weight_decay=cfg.optim.weight_decay, weight_decay_mode=cfg.optim.weight_decay_mode,
        no_bias_decay=cfg.optim.no_bias_decay, model=model, momentum=cfg.optim.momentum, nesterov=cfg.optim.nesterov,
        rho=cfg.optim.rho, epsilon=cfg.optim.epsilon, ema=ema, clipnorm=cfg.optim.clipnorm, global_clipnorm=global_clipnorm,
    )


@contextlib.contextmanager
def run_context(cfg):
    """Seeds, op determinism (`deterministic`) and the global dtype policy, restored on exit."""
    previous_policy = keras.mixed_precision.global_policy().name
    keras.utils.set_random_seed(cfg.run.seed)
    determinism_was_on = tf_config.is_op_determinism_enabled()
    if cfg.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if cfg.run.deterministic and not determinism_was_on:
            # TensorFlow exports only the switch on; the same module's off switch restores the
            # caller's setting so one deterministic run does not slow down the rest of the process.
            tf_config.disable_op_determinism()


def resolve_strategy(strategy):
    """A `tf.distribute.Strategy` from a strategy or a kind (`"auto"`: the default one on one device)."""
    if strategy == "auto" and resolve_strategy_kind("auto").kind == "one_device":
        # One device: TensorFlow's default strategy. OneDeviceStrategy routes every batch
        # through a multi-device iterator: the quickstart's steps took 2.1x as long with it
        # (5.7 s vs 2.7 s per epoch on 2 CPU cores). `strategy="one_device"` still gives it.
        return tf.distribute.get_strategy()
    if isinstance(strategy, str):
        return get_strategy(strategy)
    return strategy


def fit_callbacks(cfg, paths, strategy):
    """`(guard, backup, callbacks)`: NaN guard, backup/resume, last good checkpoint, CSV and TensorBoard logs."""
    guard = NonFiniteGuard()
    backup = GuardedBackupAndRestore(paths.backup, guard=guard, save_freq=cfg.run.backup_freq,
                                     double_checkpoint=True, strategy=strategy)
    callbacks = [
        guard,
        backup,
        LastGoodCheckpoint(paths.last_checkpoint, guard=guard),
        EpochTimer(),  # before the loggers: history.csv gets epoch_seconds / train_seconds
        keras.callbacks.CSVLogger(paths.history, append=True),
        keras.callbacks.TensorBoard(paths.logs),
    ]
    return guard, backup, callbacks


def raise_if_diverged(guard, paths):
    """Raises `TrainingDiverged` naming the last good checkpoint if the guard saw a NaN/inf loss."""
    if not guard.diverged:
        return
    epoch, batch = guard.diverged_at
    where = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
    kept = paths.last_checkpoint if tf.io.gfile.exists(paths.last_checkpoint) else "none (no epoch finished)"
    raise TrainingDiverged(
        f"training stopped: the loss became NaN/inf at {where}. Last good checkpoint: {kept}; the backup in "
        f"{paths.backup} is kept, so the same command (e.g. with a lower --set learning_rate=...) resumes "
        f"from the last good epoch."
    )


def write_artifacts(model, results, paths, strategy, config=None):
    """Checks the results are finite, then writes model.keras, saved_model/ (unless the config's
    `run.saved_model` is off) and results.json (last).

    Args:
        model: The trained model.
        results: The results dict.
        paths: The run's `RunPaths`.
        strategy: The `tf.distribute.Strategy`.
        config: The resolved `Config`: `results.json` records it (nested) under `"config"`.
    """
    if not all(math.isfinite(results[k]) for k in ("test_loss", "test_accuracy")):
        raise TrainingDiverged(f"the final evaluation is not finite: {results}")
    ckpt.write_final_artifacts(model, paths.model, strategy=strategy)
    if config is None or config.run.saved_model:
        with ckpt.chief_only_path(paths.saved_model, strategy) as target:
            model.export(target, verbose=False)
    write_json(paths.results, results if config is None else {**results, "config": config.to_dict()}, strategy)


def classification_metrics(num_classes, *, one_hot):
    """`["accuracy"]`, plus top-5 accuracy (`top5_accuracy`) from 100 classes on."""
    metrics = ["accuracy"]
    if num_classes >= 100:
        top5 = keras.metrics.TopKCategoricalAccuracy if one_hot else keras.metrics.SparseTopKCategoricalAccuracy
        metrics.append(top5(k=5, name="top5_accuracy"))
    return metrics
