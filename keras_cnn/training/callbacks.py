"""Callbacks of the training job: stop on a non-finite loss without overwriting good checkpoints.

`keras.callbacks.TerminateOnNaN` stops `fit` after the batch whose loss is NaN/inf, but Keras still
ends the epoch: `on_epoch_end` callbacks (`BackupAndRestore`, `ModelCheckpoint`) would then save the
diverged weights over the last good ones, and `BackupAndRestore` deletes its backup when `fit`
returns. Here one `NonFiniteGuard` records the divergence and the checkpointing callbacks consult it.

Ctrl-C (SIGINT) raises `KeyboardInterrupt` wherever Python happens to be; the checkpointing
callbacks write under `defer_interrupts`, so an interrupt never leaves a half-written backup or
checkpoint: it is raised when the write is complete.
"""

import contextlib
import math
import os
import signal
import threading
import time

import keras
import tensorflow as tf

from keras_cnn.distribute.checkpoint import MultiWorkerBackupAndRestore, chief_only_path

__all__ = [
    "EpochProgress",
    "EpochTimer",
    "GuardedBackupAndRestore",
    "LastGoodCheckpoint",
    "NonFiniteGuard",
    "TrainingDiverged",
    "defer_interrupts",
]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the last good checkpoint."""


@contextlib.contextmanager
def defer_interrupts():
    """Holds back Ctrl-C (SIGINT) for the duration of the block, then raises `KeyboardInterrupt`.

    For writes that must not be cut off halfway (a backup, a checkpoint). Only on the main thread
    and only while Python's default SIGINT handler is installed (a caller's own handler is left alone).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _finite(logs):
    loss = (logs or {}).get("loss")
    if loss is None:
        return True
    try:
        return math.isfinite(float(loss))
    except (TypeError, ValueError):
        return True


class NonFiniteGuard(keras.callbacks.TerminateOnNaN):
    """`TerminateOnNaN` that remembers where the loss stopped being finite.

    Attributes:
        diverged_at: `(epoch, batch)` of the first non-finite batch loss, or `None`.
    """

    def __init__(self):
        super().__init__()
        self.diverged_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if self.diverged_at is None and not _finite(logs):
            self.diverged_at = (self._epoch, batch)
        super().on_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged_at is None and not _finite(logs):
            self.diverged_at = (epoch, None)
            self.model.stop_training = True

    @property
    def diverged(self):
        return self.diverged_at is not None


class GuardedBackupAndRestore(MultiWorkerBackupAndRestore):
    """`BackupAndRestore` (multi-worker safe) that never backs up diverged weights.

    After a non-finite loss it neither saves nor deletes the backup at the end of `fit`, so running
    the same command again (e.g. with a lower learning rate) resumes from the last good epoch.
    """

    def __init__(self, backup_dir, *, guard, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self._guard = guard

    def _save_model(self):
        if self._guard.diverged:
            return
        with defer_interrupts():
            super()._save_model()

    def on_train_end(self, logs=None):
        if self._guard.diverged:
            return
        with defer_interrupts():
            super().on_train_end(logs)


class LastGoodCheckpoint(keras.callbacks.Callback):
    """Saves the weights after every epoch whose loss is finite, atomically.

    The file is written next to its final path and renamed over it, so a kill during the write
    leaves the previous checkpoint intact. Only the chief writes (every worker saves; see
    `keras_cnn.distribute.chief_only_path`).

    Args:
        filepath: Where the weights go (must end in `.weights.h5`).
        guard: The run's `NonFiniteGuard`.
    """

    def __init__(self, filepath, *, guard):
        super().__init__()
        if not str(filepath).endswith(".weights.h5"):
            raise ValueError(f"`filepath` must end in `.weights.h5`, received filepath={filepath!r}")
        self.filepath = os.fspath(filepath)
        self._guard = guard
        self.last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if self._guard.diverged or not _finite(logs):
            return
        partial = self.filepath[: -len(".weights.h5")] + ".partial.weights.h5"
        with defer_interrupts(), chief_only_path(partial, self.model.distribute_strategy) as target:
            self.model.save_weights(target, overwrite=True)
            if target == partial:
                tf.io.gfile.rename(partial, self.filepath, overwrite=True)
        self.last_epoch = epoch + 1


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` and `train_seconds` to each epoch's logs (place it before the loggers).

    `epoch_seconds` is the wall time of the epoch's training steps, validation excluded (the
    clock stops at `on_test_begin` of fit's validation); `train_seconds` their running total
    since this `fit` started (a resumed run starts again from 0). With per-epoch validation,
    `history.csv` then gives time to accuracy directly.
    """

    def __init__(self):
        super().__init__()
        self.total = 0.0
        self._start = None
        self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._start is None or logs is None:
            return
        seconds = (self._train_end or time.perf_counter()) - self._start
        self.total += seconds
        logs["epoch_seconds"] = seconds
        logs["train_seconds"] = self.total


class EpochProgress(keras.callbacks.Callback):
    """Records the epoch `fit` is in, for the message of an interrupted run.

    Attributes:
        epoch: The 1-based epoch in progress (`None` before the first one begins).
        epochs: The epoch `fit` ends at (its `epochs` argument).
        finished: Whether that `fit` has returned.
    """

    def __init__(self):
        super().__init__()
        self.epoch = None
        self.epochs = None
        self.finished = False

    def on_train_begin(self, logs=None):
        self.finished = False

    def on_train_end(self, logs=None):
        self.finished = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self.epochs = self.params.get("epochs")
