"""Multi-worker-safe saving: final artifacts and `BackupAndRestore` (TensorFlow only).

Under `MultiWorkerMirroredStrategy` every worker holds the same variables, and reading some of
them (variables synchronised on read, mirrored values being assembled) runs collectives that all
workers must join. So *every* worker must call `save` / `save_weights` at the same point, but only
one may write the real path: several processes writing one file corrupt it, and on storage that
is not shared the non-chief copies are useless. The TensorFlow pattern
(https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras#model_saving_and_loading)
is that the chief writes the real path and the other workers write to a temporary path that is
deleted right after. The chief is `strategy.extended.should_checkpoint`: the `chief` task if the
cluster has one, else worker 0; without a multi-worker strategy the single process is the chief.
"""

import contextlib
import json
import numbers
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_cnn.validation import check_bool

__all__ = [
    "BACKUP_SAVE_FREQ",
    "MultiWorkerBackupAndRestore",
    "backup_and_restore",
    "chief_only_path",
    "is_chief",
    "write_final_artifacts",
]

BACKUP_SAVE_FREQ = "epoch"


def _strategy(strategy):
    return strategy if strategy is not None else tf.distribute.get_strategy()


def is_chief(strategy=None):
    """Whether this process writes the real checkpoints and final artifacts.

    Args:
        strategy: A `tf.distribute.Strategy`; the current one by default.

    Returns:
        `True` on the chief of a multi-worker cluster and in any single-process setting.
    """
    return bool(_strategy(strategy).extended.should_checkpoint)


def _task_name(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None) or "worker"
    task_id = getattr(resolver, "task_id", None)
    return f"{task_type}{'' if task_id is None else task_id}"


def _check_path(path, argument):
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path or os.path.basename(path) in ("", ".", ".."):
        raise ValueError(f"`{argument}` must be a non-empty file path. Received: {argument}={path!r}")
    return path


@contextlib.contextmanager
def chief_only_path(path, strategy=None):
    """Context manager giving the path this worker should save `path` to.

    On the chief it yields `path` itself (creating its parent directory). On another worker it
    yields a path with the same file name in a fresh local temporary directory and deletes that
    directory when the block exits, so the worker can take part in the save (and its
    collectives) without touching the real path:

        with chief_only_path("out/model.keras") as target:
            model.save(target)  # every worker

    Args:
        path: The real file path (local or any filesystem Keras can save to).
        strategy: A `tf.distribute.Strategy`; the current one by default.

    Yields:
        The path to write on this worker.
    """
    path = _check_path(path, "path")
    strategy = _strategy(strategy)
    if is_chief(strategy):
        parent = os.path.dirname(path)
        if parent:
            tf.io.gfile.makedirs(parent)
        yield path
        return
    temp_dir = tempfile.mkdtemp(prefix=f"keras_cnn_{_task_name(strategy)}_")
    try:
        yield os.path.join(temp_dir, os.path.basename(path))
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def write_final_artifacts(model, filepath, *, weights_filepath=None, strategy=None):
    """Saves the trained model on every worker; only the chief's files land at the real paths.

    Call it on every worker at the same point (after `fit`): the save runs collectives.

    Args:
        model: The trained Keras model.
        filepath: Where the chief writes the full model; must end in `.keras`.
        weights_filepath: Optional path for the weights alone; must end in `.weights.h5`.
        strategy: The model's `tf.distribute.Strategy`; `model.distribute_strategy` by default.

    Returns:
        The tuple of real paths this worker wrote: `(filepath[, weights_filepath])` on the chief,
        `()` on other workers.
    """
    filepath = _check_path(filepath, "filepath")
    if not filepath.endswith(".keras"):
        raise ValueError(f"`filepath` must end in `.keras`. Received: filepath={filepath!r}")
    targets = [("save", filepath)]
    if weights_filepath is not None:
        weights_filepath = _check_path(weights_filepath, "weights_filepath")
        if not weights_filepath.endswith(".weights.h5"):
            raise ValueError(
                f"`weights_filepath` must end in `.weights.h5`. Received: weights_filepath={weights_filepath!r}"
            )
        targets.append(("save_weights", weights_filepath))
    strategy = strategy if strategy is not None else model.distribute_strategy
    written = []
    for method, path in targets:
        with chief_only_path(path, strategy) as target:
            getattr(model, method)(target)
        if target == path:
            written.append(path)
    return tuple(written)


class MultiWorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that only the chief writes to `backup_dir`.

    Keras 3's callback has no multi-worker handling: every worker would write (and at the end
    delete) the same files. Here non-chief workers save into a temporary directory that is deleted
    at once (they still save, since saving runs collectives), and only the chief deletes
    `backup_dir` at the end. Every worker restores from `backup_dir` at the start of `fit`, so it
    must be on storage all workers can read (a shared filesystem or a bucket), as for
    TensorFlow's own multi-worker checkpoints.
    """

    def __init__(self, backup_dir, *, strategy=None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self._strategy = strategy

    def resume_epoch(self):
        """The epoch `fit` will resume at from this backup (0 without one).

        Read before `fit` so the input pipeline can start at that epoch's data (see
        `keras_cnn.training.runner`). Falls back to the previous backup, as Keras' own restore does
        when the latest one was cut off mid-write.
        """
        for path in (self._training_metadata_path, self._prev_training_metadata_path):
            if tf.io.gfile.exists(path):
                try:
                    with tf.io.gfile.GFile(path, "r") as f:
                        return int(json.loads(f.read())["epoch"])
                except (ValueError, KeyError, TypeError):
                    continue
        return 0

    def _chief(self):
        strategy = self._strategy if self._strategy is not None else self.model.distribute_strategy
        return is_chief(strategy)

    def _save_model(self):
        # Keras's hook for every backup (epoch end or every `save_freq` batches).
        if self._chief():
            super()._save_model()
            return
        strategy = self._strategy if self._strategy is not None else self.model.distribute_strategy
        with chief_only_path(self._weights_path, strategy) as target:
            self.model.save_weights(target, overwrite=True)

    def on_train_end(self, logs=None):
        if self._chief():
            super().on_train_end(logs)


def backup_and_restore(directory, *, save_freq=BACKUP_SAVE_FREQ, delete_checkpoint=True, strategy=None):
    """A `BackupAndRestore` callback for preemptible (multi-worker) training.

    At the start of `fit` every worker restores the weights, the optimizer state and the epoch
    counter from `directory` if a backup exists there, and `fit` continues from the epoch after
    the last backed-up one. Under `MultiWorkerMirroredStrategy` a lost worker makes the others
    fail or hang in their next collective, so the whole job is restarted (by the cluster manager or
    by hand) with the same `TF_CONFIG`; each worker then resumes from the backup.

    Args:
        directory: The backup directory, reserved for this training run; on storage every worker
            can read.
        save_freq: `"epoch"` (default): back up at the end of every epoch, so a restart repeats
            only the interrupted epoch. An integer `n`: also back up every `n` batches, which
            loses less work but restarts the interrupted epoch from its first batch with weights
            that have already seen part of it (Keras records only the epoch).
        delete_checkpoint: `True` (default): the chief deletes `directory` when `fit` finishes
            normally, so a finished run is not "resumed" by the next one; an interrupted run
            leaves it for the restart. `False` keeps it (e.g. to inspect it); a later `fit` with the
            same callback then starts at the recorded epoch and runs no epoch if it was the last.
        strategy: The training `tf.distribute.Strategy`; the model's by default.

    Returns:
        A configured `MultiWorkerBackupAndRestore` (a `keras.callbacks.BackupAndRestore`).
    """
    directory = _check_path(directory, "directory")
    if save_freq != "epoch" and (
        isinstance(save_freq, bool) or not isinstance(save_freq, numbers.Integral) or save_freq <= 0
    ):
        raise ValueError(f"`save_freq` must be 'epoch' or a positive integer. Received: save_freq={save_freq!r}")
    check_bool("delete_checkpoint", delete_checkpoint)
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    # double_checkpoint: keep the previous backup while writing the next, so a kill during the
    # write (preemption, SIGKILL) falls back to it instead of losing the run.
    return MultiWorkerBackupAndRestore(
        directory,
        save_freq=save_freq,
        delete_checkpoint=delete_checkpoint,
        double_checkpoint=True,
        strategy=strategy,
    )
