"""Helpers for custom `train_step`s that must be right under every strategy (TensorFlow-specific).

Inside `strategy.run` each replica sees its slice of the global batch and Keras' TensorFlow
optimizer **sums** the replicas' gradients (`apply_gradients` all-reduces in replica
context). So a replica's loss must be its share of the global mean,
`sum(per_example_loss) / global_batch_size` (what `tf.nn.compute_average_loss` and Keras'
own compiled losses, via `scale_loss_for_distribution`, give). Reported numbers must be
the unscaled mean. A typical step:

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            per_example = keras.losses.sparse_categorical_crossentropy(y, self(x, training=True))
            loss = replica_loss(per_example)
        grads = scaled_gradients(tape, loss, self.trainable_variables, self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(unscale_loss(loss))   # the global-batch mean
        return {"loss": self.loss_tracker.result()}

With gradient clipping (`clipnorm`, `global_clipnorm`, `clipvalue` on the optimizer), pass
the gradients through `clip_across_replicas(grads, self.optimizer)` before
`apply_gradients` (a compatibility layer, see `CROSS_REPLICA_CLIPPING`).
"""

import keras
import tensorflow as tf

# Compatibility layer (small, removable). Keras 3.15's optimizer clips in
# `BaseOptimizer._backend_apply_gradients` *before* `_backend_update_step` all-reduces the
# gradients, so under >= 2 replicas each replica's share (1/N of the global-batch gradient)
# is clipped on its own: `global_clipnorm`/`clipnorm` then bound the wrong quantity, and the
# update depends on the number of replicas. tf.keras refused clipping under strategies for
# exactly this reason ("clipping before the gradients are aggregated is usually wrong"):
# CLIPPING_UPSTREAM_ISSUE. `clip_across_replicas` clips the all-reduced gradient and hands
# each replica 1/N of it; the optimizer's own clipping of that share is then a no-op.
# `tests/ssl/test_ssl_distribute.py::test_keras_still_clips_per_replica` checks that plain Keras
# still differs from one device; when it no longer does, delete this flag,
# `clip_across_replicas` and its call sites (keras_cnn.ssl: mpl, uda, pseudo_labels).
CLIPPING_UPSTREAM_ISSUE = "https://github.com/tensorflow/tensorflow/issues/33929"
CROSS_REPLICA_CLIPPING = True


def num_replicas():
    """Number of replicas in sync in the current strategy (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_loss(per_example_loss, global_batch_size=None, sample_weight=None):
    """This replica's share of the global-batch mean: `sum(loss * weight) / global_batch_size`.

    Summed over replicas (as the optimizer sums gradients) it is the mean over the global
    batch, whatever the number of replicas.

    Args:
        per_example_loss: Loss per example, shape `(local_batch, ...)`.
        global_batch_size: Examples in the global batch; `None` assumes every replica holds
            as many as this one (`local_batch * num_replicas`).
        sample_weight: Optional weights broadcastable to `per_example_loss`.

    Returns:
        A scalar.
    """
    return tf.nn.compute_average_loss(
        per_example_loss, sample_weight=sample_weight, global_batch_size=global_batch_size
    )


def unscale_loss(loss):
    """The value to report for a loss from `replica_loss` (or a compiled Keras loss).

    Multiplies by the number of replicas, so a metric (`keras.metrics.Mean`, whose result
    Keras averages over replicas under `fit`) shows the global-batch mean, as on one device.

    Args:
        loss: A per-replica scaled loss.

    Returns:
        The unscaled loss.
    """
    replicas = num_replicas()
    return loss if replicas == 1 else loss * tf.cast(replicas, loss.dtype)


def all_reduce(value, op="sum"):
    """Sum or mean of `value` over replicas, the same on every replica.

    For cross-replica scalars inside a step (a global count of correct predictions, the
    teacher's reward in Meta Pseudo Labels). Outside a replica context (one device, the
    default strategy) it returns `value`.

    Args:
        value: A tensor (or nested structure of tensors).
        op: `"sum"` or `"mean"`.

    Returns:
        The reduced value.
    """
    ops = {"sum": tf.distribute.ReduceOp.SUM, "mean": tf.distribute.ReduceOp.MEAN}
    if op not in ops:
        raise ValueError(f"`op` must be one of {tuple(ops)}, received op={op!r}")
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(ops[op], value)


def scaled_gradients(tape, loss, variables, optimizer=None):
    """`tape.gradient(loss)` scaled the way `optimizer.apply_gradients` expects.

    Under `mixed_float16` Keras' `compile` wraps the optimizer in a `LossScaleOptimizer`,
    whose `apply_gradients` divides by the dynamic loss scale (and skips steps with
    non-finite gradients); the gradients must therefore be of `scale * loss`. Seeding the
    backward pass with the scale (`output_gradients`) does that without recording the
    multiplication inside the tape. For any other optimizer the scale is 1 (or its
    `loss_scale_factor`).

    Args:
        tape: The `tf.GradientTape` that recorded `loss`.
        loss: Scalar (per-replica, see `replica_loss`).
        variables: Variables to differentiate with respect to.
        optimizer: The Keras optimizer that will apply the gradients; `None`: unscaled.

    Returns:
        List of gradients.
    """
    if optimizer is None:
        return tape.gradient(loss, variables)
    scale = tf.cast(optimizer.scale_loss(tf.ones((), loss.dtype)), loss.dtype)
    return tape.gradient(loss, variables, output_gradients=scale)


def _inner_optimizer(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def clip_across_replicas(grads, optimizer):
    """Gradients whose cross-replica sum is clipped as the optimizer's clipping asks.

    Keras (3.15) clips each replica's gradients before summing them over replicas (see
    `CROSS_REPLICA_CLIPPING`); under >= 2 replicas this function instead all-reduces the
    gradients, clips the sum like the optimizer would on one device (`clipnorm` per tensor,
    else `global_clipnorm`, else `clipvalue`, Keras' order) and returns this replica's
    `1/N` share of the clipped sum, so the optimizer's own clipping of the share changes
    nothing and its all-reduce rebuilds the clipped sum. The loss scale of a
    `LossScaleOptimizer` (or `loss_scale_factor`) is divided out before clipping and put
    back after. Non-finite gradients stay non-finite (a `LossScaleOptimizer` then skips the
    step as usual). Costs one extra all-reduce of the gradients per step.

    Args:
        grads: This replica's gradients (a list; `None` entries are kept), scaled as
            `optimizer.apply_gradients` expects (`scaled_gradients`).
        optimizer: The Keras optimizer that will apply them (a `LossScaleOptimizer` too).

    Returns:
        A list of gradients for `apply_gradients`: `grads` itself on one replica, without
        clipping, with `gradient_accumulation_steps` (Keras clips the accumulated gradient;
        left as Keras does it) or with `CROSS_REPLICA_CLIPPING = False`.
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(f"`optimizer` must be a keras.optimizers.Optimizer, received optimizer={optimizer!r}")
    if not isinstance(grads, (list, tuple)):
        raise ValueError(f"`grads` must be a list of gradients, received grads={grads!r}")
    inner = _inner_optimizer(optimizer)
    clipping = inner.clipnorm or inner.global_clipnorm or inner.clipvalue
    replicas = num_replicas()
    if not CROSS_REPLICA_CLIPPING or replicas == 1 or not clipping or inner.gradient_accumulation_steps:
        return grads
    scale = tf.cast(optimizer.scale_loss(tf.ones((), "float32")), "float32")
    present = [i for i, g in enumerate(grads) if g is not None]
    summed = all_reduce([tf.cast(tf.convert_to_tensor(grads[i]), "float32") / scale for i in present])
    if inner.clipnorm:
        summed = [tf.clip_by_norm(g, inner.clipnorm) for g in summed]
    elif inner.global_clipnorm:
        summed, _ = tf.clip_by_global_norm(summed, inner.global_clipnorm)
    else:
        summed = [tf.clip_by_value(g, -inner.clipvalue, inner.clipvalue) for g in summed]
    clipped = list(grads)
    for i, g in zip(present, summed):
        clipped[i] = tf.cast(g * (scale / replicas), grads[i].dtype)
    return clipped
