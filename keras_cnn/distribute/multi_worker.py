"""Plain `model.fit` / `evaluate` under `tf.distribute.MultiWorkerMirroredStrategy` (TensorFlow only).

Compatibility layer for keras-team/keras#20585 ("Does Keras 3 work with
`tf.distribute.MultiWorkerMirroredStrategy`?", open; also tensorflow/tensorflow#72388). Keras 3's
TensorFlow trainer (`keras/src/backend/tensorflow/trainer.py`, Keras 3.0 - 3.15 at least) has two
bugs that only show when the strategy really spans several workers
(`strategy.extended._in_multi_worker_mode()`):

1. `TensorFlowTrainer._maybe_symbolic_build` builds the model's metrics and optimizer from the
   first distributed batch and, to get one plain batch out of it, calls
   `strategy.reduce("MEAN", batch, axis=None)` on the whole nested `(x, y)` structure.
   `CollectiveAllReduceStrategy` reduces one `PerReplica` at a time, so this raises
   `ValueError: Attempt to convert a value (PerReplica...) ... to a Tensor`. The reduction is
   also pointless (only shapes and dtypes matter for a symbolic build) and would run a collective
   outside the training loop. Fix: take the first *local* replica's component, which needs no
   cross-worker communication; this is what the single-worker path effectively sees.
2. `reduce_per_replica(..., reduction="mean")` reduces multi-worker step outputs (the scalar
   metric results of `train_step` / `test_step`) with `strategy.reduce("MEAN", v, axis=0)`.
   `axis=0` means "also average over the first axis of each value", which does not exist for a
   0-d metric result (`ValueError` from `shape[0]`) and would be wrong for any other rank. The
   single-worker branch averages across replicas only (`reduce_mean(local_results, axis=0)`
   stacks replicas on a new axis); the multi-worker equivalent is `axis=None`.

`enable_multi_worker_fit()` patches exactly those two functions, is idempotent, changes nothing
outside multi-worker mode (the patched code calls the originals there), and is a no-op when the
installed Keras no longer contains the faulty code or the backend is not TensorFlow. Remove this
module once keras-team/keras#20585 is fixed in the minimum supported Keras
(`tests/distribute/test_multiworker.py::test_unpatched_keras_still_fails_multi_worker_fit` starts failing then).
"""

import functools
import inspect
import logging

import keras

__all__ = ["enable_multi_worker_fit", "multi_worker_fit_enabled"]

UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/20585"

logger = logging.getLogger(__name__)

# The faulty statements, as they appear in the installed Keras source. The patch is applied only
# to functions that still contain them, so a Keras release that rewrites them turns it off.
# Compared with all whitespace removed, so reformatting alone does not turn the patch off.
_SYMBOLIC_BUILD_BUG = 'data_batch = self.distribute_strategy.reduce("MEAN", maybe_distributed_data_batch'
_REDUCE_MEAN_BUG = 'strategy.reduce("MEAN", v, axis=0)'
_PATCHED_MARK = "_keras_cnn_keras_20585_patch"


def _source(function):
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        # No source (zipped or compiled install): assume the known faulty version; the patched
        # functions only differ from the originals in multi-worker mode.
        return None


def _has_bug(function, statement):
    source = _source(function)
    return source is None or "".join(statement.split()) in "".join(source.split())


def _patched_symbolic_build(original):
    # Imported lazily: these are Keras internals and exist only with the TensorFlow backend.
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    def first_local_component(value, strategy):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    @functools.wraps(original)
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or not tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return original(self, iterator=iterator, data_batch=data_batch)
        # Same control flow as the original, without the cross-worker reduction of the batch.
        for _, _, it in iterator:
            data_batch = keras.tree.map_structure(lambda v: first_local_component(v, strategy), next(it))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    setattr(_maybe_symbolic_build, _PATCHED_MARK, True)
    return _maybe_symbolic_build


def _patched_reduce_per_replica(original):
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    @functools.wraps(original)
    def reduce_per_replica(values, strategy, reduction):
        mean = reduction == "mean" or (
            reduction == "auto" and not isinstance(strategy, tf.distribute.TPUStrategy)
        )
        if not (mean and tf_trainer._collective_all_reduce_multi_worker(strategy)):
            return original(values, strategy, reduction)
        # Average across replicas (all workers) only, as the single-worker branch does.
        return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    setattr(reduce_per_replica, _PATCHED_MARK, True)
    return reduce_per_replica


def _is_patched(function):
    return getattr(function, _PATCHED_MARK, False)


def multi_worker_fit_enabled():
    """Whether `enable_multi_worker_fit()` has patched the installed Keras.

    Returns:
        `True` if at least one of the two functions of keras-team/keras#20585 is patched.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    from keras.src.backend.tensorflow import trainer as tf_trainer

    return _is_patched(tf_trainer.TensorFlowTrainer._maybe_symbolic_build) or _is_patched(
        tf_trainer.reduce_per_replica
    )


def enable_multi_worker_fit():
    """Makes `model.fit` / `evaluate` work under `MultiWorkerMirroredStrategy` (keras-team/keras#20585).

    Call it once, before `fit` (typically right after creating the strategy); models built before
    or after are both covered, since the patch is on Keras's TensorFlow trainer. Calling it again
    does nothing. Under any other strategy, or without one, Keras runs its own code unchanged.

    Returns:
        The list of patched Keras functions (`"TensorFlowTrainer._maybe_symbolic_build"`,
        `"reduce_per_replica"`) newly patched by this call; empty when the backend is not
        TensorFlow, when the installed Keras no longer has the faulty code, or when they are
        already patched.
    """
    if keras.backend.backend() != "tensorflow":
        return []
    from keras.src.backend.tensorflow import trainer as tf_trainer

    patched = []
    trainer_class = tf_trainer.TensorFlowTrainer
    build = trainer_class._maybe_symbolic_build
    if not _is_patched(build) and _has_bug(build, _SYMBOLIC_BUILD_BUG):
        trainer_class._maybe_symbolic_build = _patched_symbolic_build(build)
        patched.append("TensorFlowTrainer._maybe_symbolic_build")
    # `_make_function` looks `reduce_per_replica` up in the module globals at call time, so
    # replacing the module attribute reaches every train/test function traced afterwards.
    reduce = tf_trainer.reduce_per_replica
    if not _is_patched(reduce) and _has_bug(reduce, _REDUCE_MEAN_BUG):
        tf_trainer.reduce_per_replica = _patched_reduce_per_replica(reduce)
        patched.append("reduce_per_replica")
    if patched:
        logger.info("Patched Keras %s for multi-worker fit (%s).", ", ".join(patched), UPSTREAM_ISSUE)
    return patched
