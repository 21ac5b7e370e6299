"""What every training job shares: the run directory, resume, callbacks, optimizer, evaluation, artifacts.

The jobs (`keras_cnn.training.runner` for supervised runs, `keras_cnn.ssl.runner` for Meta Pseudo
Labels and Noisy Student; `keras_cnn.jobs` dispatches a config's `method` to one of them) build on
these pieces only, so a run directory looks and resumes the same whatever the method:

    backup/                  BackupAndRestore: weights + optimizer + epoch; deleted when fit ends
    checkpoints/last.weights.h5   weights after the last epoch with a finite loss
    history.csv, logs/       per-epoch metrics (CSV, appended across resumes) and TensorBoard
    config.json              the resolved config (nested sections, `keras_cnn.training.config`)
    model.keras, saved_model/     the trained model (logits out) and its SavedModel export
    curves.png               loss and accuracy per epoch (training, validation), with matplotlib
    results.json             the final evaluation; its presence marks the run finished

**Resume: one mechanism.** A job calls `run_job`, which returns the finished results of a run
directory holding `results.json` (running the same command again prints them) and otherwise runs
the job; inside, a job resumes at two granularities, both through `RunPaths`:

* epochs of one `fit`: `fit_callbacks` (its `backup.resume_epoch()` says where `fit` continues);
* finished stages of a multi-stage job: `RunPaths.stage(name)` (`Stage.done`, `Stage.save`,
  `Stage.load`): the MPL student before finetuning (`mpl_student.weights.h5`), the frozen phase
  of a fine-tuning run (`frozen_phase/`), the rounds of Noisy Student (`rounds/`).

**What a run directory may hold is one run.** `run_job`, before it creates anything:

* checks the config (and the job's own checks), so a bad value leaves nothing behind; a job that
  still fails with a `ValueError`/`TypeError` before any progress (no backup, checkpoint, stage
  or results) removes what it created in a directory that was empty or absent;
* with `restart=True` (`--restart`) moves the previous run aside whole (`discard_run`: one rename
  of the directory to a sibling `<dir>.previous-<time>`, atomic on local disks, then deleted), so
  an interrupted restart can never leave the old `model.keras` or `results.json` beside a new
  backup. It refuses a directory holding files no run writes (`RUN_ENTRIES`) rather than delete them;
* otherwise compares the config with the saved `config.json` and refuses a finished or partial
  run whose config differs (`check_same_config`: the differing keys, old -> new), except the keys
  of `RESUME_MAY_DIFFER`, which do not change what is trained.

Ctrl-C (`KeyboardInterrupt`) during a job becomes `TrainingInterrupted`, whose message says at
which epoch and that the same command resumes; backups and checkpoints are written with SIGINT
held back (`keras_cnn.training.callbacks.defer_interrupts`), so an interrupt never cuts one off.
The results count what this call trained: `epochs_run` epochs (of `epochs`) in `train_seconds`.
At the end `write_artifacts` also draws `curves.png` from `history.csv` (loss and accuracy,
training and validation) when matplotlib is installed (`pip install keras_cnn[plot]`).
"""

import contextlib
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
from keras_cnn.distribute.strategy import get_strategy, resolve_strategy_kind
from keras_cnn.registry import create_model
from keras_cnn.training.callbacks import (
    EpochProgress,
    EpochTimer,
    GuardedBackupAndRestore,
    LastGoodCheckpoint,
    NonFiniteGuard,
    TrainingDiverged,
    defer_interrupts,
)
from keras_cnn.training.config import resolve_config
from keras_cnn.training.optimizers import build_optimizer
from keras_cnn.training.schedules import scale_learning_rate
from keras_cnn.validation import check_choice

__all__ = [
    "RESUME_MAY_DIFFER",
    "RUN_ENTRIES",
    "STAGES",
    "RunPaths",
    "Stage",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_common_config",
    "check_same_config",
    "classification_metrics",
    "discard_run",
    "eval_pipeline",
    "finished_results",
    "fit_callbacks",
    "load_teacher",
    "optimizer_from_config",
    "plot_history",
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
# one entry here plus `RunPaths.stage(name)` in its job (RUN_ENTRIES includes them).
STAGES = ("mpl_student.weights.h5", "rounds", "frozen_phase")

# Every name a job writes at the top of a run directory: `discard_run` moves a directory holding
# only these aside and refuses one holding anything else. A job or command that writes a new
# top-level file into a run directory adds its name here.
RUN_ENTRIES = ("backup", "checkpoints", "history.csv", "logs", "config.json", "model.keras", "saved_model",
               "results.json", "curves.png", "finetune_history.csv", *STAGES,
               # `keras-cnn export`'s default outputs (keras_cnn.export).
               "model.tflite", "model_int8.tflite", "model.onnx", "export")

# Config keys a finished or partial run may be rerun with changed (`check_same_config`): they say
# where data may come from and how often the backup is written, not what is trained.
RESUME_MAY_DIFFER = ("data.download", "run.backup_freq")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job; the message says at which epoch and how to resume."""


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
        with defer_interrupts(), ckpt.chief_only_path(partial, strategy) as target:
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

    @property
    def curves(self):
        return os.path.join(self.root, "curves.png")

    @property
    def progress_markers(self):
        """What marks progress worth keeping: results, the backup, the last checkpoint, the stages."""
        return (self.results, self.backup, self.last_checkpoint, *self.stage_markers)

    def finished_results(self, restart=False):
        """The results of a finished run here (`None`: train), discarding a previous run on `restart`."""
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
    """The results of a finished run in `paths` (`None`: train), discarding the previous run on `restart`."""
    if restart:
        discard_run(paths)
        return None
    if tf.io.gfile.exists(paths.results):
        with tf.io.gfile.GFile(paths.results) as f:
            results = json.load(f)
        LOGGER.debug("%s is a finished run; pass restart=True (--restart) to train again", paths.root)
        return dict(results, already_finished=True)
    return None


def _entries(root):
    """The names in directory `root` (`None`: it does not exist)."""
    if not tf.io.gfile.isdir(root):
        return None
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(root))


def _is_run_entry(name):
    # Stage.save and LastGoodCheckpoint write `*.partial.weights.h5` next to their file first.
    return name in RUN_ENTRIES or ".partial." in name


def _remove(path):
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def discard_run(paths):
    """Moves the run in `paths.root` aside whole, then deletes it: `restart` starts from nothing.

    The directory is renamed to a sibling `<root>.previous-<UTC time>-<pid>` first (one atomic
    rename on a local disk; on object stores TensorFlow renames object by object) and only then
    deleted, so a restart interrupted at any point leaves either the whole old run, or no old
    file at all, in `root`. Where the directory itself cannot be renamed (a mount point, the
    working directory) its entries are deleted in place, `results.json` and the backup first.

    Args:
        paths: The run's `RunPaths`.

    Raises:
        ValueError: `root` holds files that no run writes (not in `RUN_ENTRIES`): they are not
            deleted; the message names them.
    """
    root = paths.root.rstrip("/") or paths.root
    entries = _entries(root)
    if not entries:
        return
    foreign = [name for name in entries if not _is_run_entry(name)]
    if foreign:
        raise ValueError(
            f"restart: {root!r} holds files that are not part of a run: {foreign}. Restarting deletes the run "
            f"directory, so move them elsewhere or choose another output directory (--output)")
    aside = f"{root}.previous-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    try:
        tf.io.gfile.rename(root, aside)
    except (tf.errors.OpError, OSError):
        for name in ("results.json", "backup", *(e for e in entries if e not in ("results.json", "backup"))):
            _remove(os.path.join(root, name))
        LOGGER.info("restart: deleted the previous run in %s", root)
        return
    tf.io.gfile.rmtree(aside)
    LOGGER.info("restart: moved the previous run in %s aside and deleted it", root)


def _flatten(nested, prefix=""):
    flat = {}
    for key, value in nested.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _comparable(nested):
    """A nested config as JSON would give it back (tuples as lists), flattened to dotted keys."""
    return _flatten(json.loads(json.dumps(nested, default=_json_default)))


def check_same_config(paths, cfg):
    """Refuses to reuse a run directory whose saved `config.json` differs from `cfg`.

    Resuming a partial run, or reporting a finished one, under another config would mix two
    runs in one directory. Keys of `RESUME_MAY_DIFFER` may differ. A `config.json` written by an
    older version is completed with today's defaults before the comparison.

    Args:
        paths: The run's `RunPaths`.
        cfg: The resolved `Config` of this call.

    Raises:
        ValueError: The configs differ; the message lists each differing key as `old -> new`.
    """
    if not tf.io.gfile.exists(paths.config):
        return
    with tf.io.gfile.GFile(paths.config) as f:
        saved = json.load(f)
    try:
        saved = resolve_config(saved).to_dict()
    except ValueError:
        pass  # keys this version does not know: compare as saved, they show as differences
    old, new = _comparable(saved), _comparable(cfg.to_dict())
    missing = "(absent)"
    changed = [f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}"
               for key in sorted(old.keys() | new.keys())
               if key not in RESUME_MAY_DIFFER and old.get(key, missing) != new.get(key, missing)]
    if not changed:
        return
    kind = "finished run" if tf.io.gfile.exists(paths.results) else "run"
    raise ValueError(
        f"{paths.root} holds a {kind} with a different config (its config.json): {'; '.join(changed)}. "
        f"Pass restart=True (--restart) to discard it and train again, or choose a new output "
        f"directory (--output)")


def _has_progress(paths):
    return any(tf.io.gfile.exists(path) for path in paths.progress_markers)


# The epoch the running job is in, for the message of an interrupted run (`fit_callbacks` adds it).
_PROGRESS = EpochProgress()


def _interrupted_message():
    progress = _PROGRESS
    if progress.epoch is None:
        return "interrupted before the first epoch; run the same command to start again"
    if progress.finished:
        # fit has returned and BackupAndRestore deleted its backup: nothing to resume from.
        return (f"interrupted after epoch {progress.epoch} of {progress.epochs}, while evaluating and saving; the "
                f"backup was already removed, so running the same command trains again")
    return f"interrupted at epoch {progress.epoch} of {progress.epochs}; run the same command to resume"


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
        restart: Move a previous run in `output_dir` aside and delete it (`discard_run`), then train
            from scratch.

    Returns:
        The results dict.

    Raises:
        ValueError: A bad config value; `output_dir` holds a run with another config
            (`check_same_config`), or files no run writes when restarting (`discard_run`).
        TrainingInterrupted: Ctrl-C; the message says where and that the same call resumes.
    """
    cfg = resolve_config(cfg)
    cfg.check()  # every section's checks
    check = getattr(job, "check", None)
    if check is not None:
        check(cfg)
    paths = RunPaths(os.fspath(output_dir))
    if not restart:
        check_same_config(paths, cfg)
    strategy = resolve_strategy(strategy)
    if restart:
        if ckpt.is_chief(strategy):  # under several workers the chief alone moves the previous run aside
            discard_run(paths)
    else:
        finished = finished_results(paths, restart=False)
        if finished is not None:
            return finished
    before = _entries(paths.root)
    global _PROGRESS
    _PROGRESS = EpochProgress()
    try:
        with run_context(cfg):
            return job(cfg, paths, strategy, data_dir, verbose)
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted_message()) from None
    except (ValueError, TypeError):
        # A bad argument found only while the job set up: leave the directory as it was.
        if not before and not _has_progress(paths) and ckpt.is_chief(strategy):
            for name in _entries(paths.root) or ():
                _remove(os.path.join(paths.root, name))
            if before is None and tf.io.gfile.isdir(paths.root):
                tf.io.gfile.rmtree(paths.root)
        raise


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
        _PROGRESS,  # the epoch for the message of an interrupted run
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
    `run.saved_model` is off), curves.png and results.json (last).

    Args:
        model: The trained model.
        results: The results dict; `"curves"` is added when `curves.png` was drawn.
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
    if ckpt.is_chief(strategy) and _plot(paths):
        results["curves"] = paths.curves
    write_json(paths.results, results if config is None else {**results, "config": config.to_dict()}, strategy)


def _plot(paths):
    try:
        return plot_history(paths.history, paths.curves)
    except Exception as error:  # a figure is a convenience: it never fails a trained run
        LOGGER.warning("could not draw %s: %s", paths.curves, error)
        return False


# The history.csv columns that are not curves.
_NOT_CURVES = ("epoch", "epoch_seconds", "train_seconds", "learning_rate")


def plot_history(history, output):
    """Draws the curves of a `history.csv` (one panel per metric: training and validation) as a PNG.

    Loss and accuracy first, then the other metrics (at most four panels). Rows of an epoch
    logged twice (a resume after a mid-epoch backup) count once, the last one.

    Args:
        history: A `history.csv` written by `keras.callbacks.CSVLogger`.
        output: The PNG's path.

    Returns:
        Whether the figure was written: `False` without matplotlib or without a logged epoch.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed; the figure only goes to a file
        import matplotlib.pyplot as plt
    except ImportError:
        LOGGER.debug("matplotlib is not installed: no %s", output)
        return False
    if not tf.io.gfile.exists(history):
        return False
    import csv

    with tf.io.gfile.GFile(history) as f:
        rows = {}
        for row in csv.DictReader(f):
            try:
                rows[int(row["epoch"])] = row
            except (KeyError, TypeError, ValueError):
                continue
    if not rows:
        return False
    epochs = sorted(rows)
    columns = [c for c in rows[epochs[-1]] if c and c not in _NOT_CURVES]
    names = [c for c in columns if not c.startswith("val_")]
    names += [c[len("val_"):] for c in columns if c.startswith("val_") and c[len("val_"):] not in names]
    names = sorted(names, key=lambda n: (n != "loss", n != "accuracy", n))[:4]

    def values(column):
        out = []
        for epoch in epochs:
            try:
                out.append(float(rows[epoch].get(column) or "nan"))
            except ValueError:
                out.append(float("nan"))
        return out

    x = [epoch + 1 for epoch in epochs]
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        if name in columns:
            axis.plot(x, values(name), marker=".", label="training")
        if f"val_{name}" in columns:
            axis.plot(x, values(f"val_{name}"), marker=".", label="validation")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    with tf.io.gfile.GFile(output, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
    plt.close(figure)
    return True


def classification_metrics(num_classes, *, one_hot):
    """`["accuracy"]`, plus top-5 accuracy (`top5_accuracy`) from 100 classes on."""
    metrics = ["accuracy"]
    if num_classes >= 100:
        top5 = keras.metrics.TopKCategoricalAccuracy if one_hot else keras.metrics.SparseTopKCategoricalAccuracy
        metrics.append(top5(k=5, name="top5_accuracy"))
    return metrics
