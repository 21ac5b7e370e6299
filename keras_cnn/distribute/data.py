"""`tf.data` input pipelines for `tf.distribute` strategies (TensorFlow only).

Under `MultiWorkerMirroredStrategy` (and multi-host TPUs) `tf.distribute` shards the input so that
each worker sees a different part of every epoch. *How* it shards is the auto-shard policy, and the
default (`AUTO`) silently changes meaning with the pipeline: it tries `FILE` and falls back to
`DATA` when the source is not file based. `shard_options` makes the choice explicit:

- `"file"` (`AutoShardPolicy.FILE`): each worker reads a disjoint subset of the *files*
  (`list_files` / `TFRecordDataset([...])` at the source). Cheapest, since each worker reads only
  its files. Use for many TFRecord / image files (at least as many files as workers, ideally many
  more and of similar size, or workers get unequal numbers of batches and collectives stall).
- `"data"` (`AutoShardPolicy.DATA`): every worker runs the whole pipeline and keeps every
  `num_workers`-th element (after batching: every worker keeps its replica's slice of each
  global batch). Use for generated or in-memory data (`from_tensor_slices`, `range`, Python
  generators) and for fewer files than workers. Costs reading everything on every worker.
- `"off"` (`AutoShardPolicy.OFF`): no sharding; every worker sees the same data. Use when the
  pipeline already shards itself (`dataset.shard(num_workers, index)` or per-worker files), or for
  evaluation data that every worker must see in full.
- `"auto"` (`AutoShardPolicy.AUTO`): TensorFlow's default (FILE, else DATA), for completeness.

Single-worker strategies (`MirroredStrategy`, `OneDeviceStrategy`, the default) ignore the policy.
"""

import numbers

import tensorflow as tf

__all__ = ["SHARD_POLICIES", "shard_options", "distribute_dataset"]

SHARD_POLICIES = {
    "auto": tf.data.experimental.AutoShardPolicy.AUTO,
    "data": tf.data.experimental.AutoShardPolicy.DATA,
    "file": tf.data.experimental.AutoShardPolicy.FILE,
    "off": tf.data.experimental.AutoShardPolicy.OFF,
}


def shard_options(policy="auto"):
    """`tf.data.Options` with the auto-shard policy for multi-worker input set explicitly.

    Args:
        policy: `"auto"`, `"data"`, `"file"` or `"off"` (see the module docstring for when to use
            which), or a `tf.data.experimental.AutoShardPolicy`.

    Returns:
        A `tf.data.Options` to pass to `dataset.with_options(...)`.
    """
    if isinstance(policy, tf.data.experimental.AutoShardPolicy):
        value = policy
    elif isinstance(policy, str) and policy.lower() in SHARD_POLICIES:
        value = SHARD_POLICIES[policy.lower()]
    else:
        raise ValueError(
            f"`policy` must be one of {sorted(SHARD_POLICIES)} or a "
            f"tf.data.experimental.AutoShardPolicy. Received: policy={policy!r}"
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = value
    return options


def distribute_dataset(dataset, strategy, *, global_batch_size, policy="auto"):
    """Batches `dataset` with the global batch size and distributes it over `strategy`.

    The batches are global: `tf.distribute` splits each into `strategy.num_replicas_in_sync`
    equal per-replica batches (and, under multi-worker, shards them across workers with `policy`).
    The last partial batch is dropped on purpose: every replica must get a batch of the same
    static shape at every step, otherwise the step's collectives stall or fail on a worker that
    ran out of data, and XLA / TPU programs would be recompiled for the odd shape. With
    `global_batch_size` a multiple of the replica count nothing but that remainder is lost per
    epoch; shuffle (before this call) so that it is not always the same examples.

    Args:
        dataset: An unbatched `tf.data.Dataset` of examples, e.g. `(image, label)` pairs.
        strategy: The `tf.distribute.Strategy` that will consume the batches.
        global_batch_size: Examples per step over all replicas; a positive multiple of
            `strategy.num_replicas_in_sync`.
        policy: The auto-shard policy, as for `shard_options`.

    Returns:
        A `tf.distribute.DistributedDataset`, accepted as is by `model.fit` / `evaluate` under the
        same strategy.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"`dataset` must be a tf.data.Dataset. Received: dataset={dataset!r}")
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"`strategy` must be a tf.distribute.Strategy. Received: strategy={strategy!r}")
    replicas = strategy.num_replicas_in_sync
    if (
        isinstance(global_batch_size, bool)
        or not isinstance(global_batch_size, numbers.Integral)
        or global_batch_size <= 0
        or global_batch_size % replicas
    ):
        raise ValueError(
            f"`global_batch_size` must be a positive multiple of the {replicas} replica(s) in "
            f"sync. Received: global_batch_size={global_batch_size!r}"
        )
    options = shard_options(policy)
    batched = dataset.batch(int(global_batch_size), drop_remainder=True).with_options(options)
    return strategy.experimental_distribute_dataset(batched)
