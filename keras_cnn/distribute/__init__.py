"""Distribution, mixed precision and XLA for keras_cnn models (TensorFlow-specific).

    from keras_cnn import distribute

    strategy = distribute.get_strategy()              # before any other TensorFlow op
    distribute.set_precision(strategy)                # bf16 on TPU, fp16 on GPU, fp32 on CPU
    with strategy.scope():
        model = keras_cnn.ResNet50(classes=10)
        jit = distribute.choose_jit_compile(model, strategy=strategy)
        model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=jit)
    distribute.use_replica_xla(model)                 # XLA under >= 2 replicas (keras#19005)

Multi-worker `fit` (`enable_multi_worker_fit`), `tf.data` sharding (`shard_options`,
`distribute_dataset`) and multi-worker checkpointing (`chief_only_path`,
`write_final_artifacts`, `backup_and_restore`) come from `multi_worker`, `data` and
`checkpoint`. Custom `train_step`s use `replica_loss`, `unscale_loss`, `all_reduce`,
`scaled_gradients` and `clip_across_replicas` (gradient clipping after the cross-replica sum).
"""

from keras_cnn.distribute.checkpoint import backup_and_restore, chief_only_path, write_final_artifacts
from keras_cnn.distribute.data import distribute_dataset, shard_options
from keras_cnn.distribute.multi_worker import enable_multi_worker_fit
from keras_cnn.distribute.precision import choose_precision, set_precision
from keras_cnn.distribute.strategy import device_kind, get_strategy, resolve_strategy_kind
from keras_cnn.distribute.train_step import (
    all_reduce,
    clip_across_replicas,
    replica_loss,
    scaled_gradients,
    unscale_loss,
)
from keras_cnn.distribute.xla import choose_jit_compile, has_depthwise, use_replica_xla

__all__ = [
    "all_reduce",
    "backup_and_restore",
    "chief_only_path",
    "choose_jit_compile",
    "clip_across_replicas",
    "choose_precision",
    "device_kind",
    "distribute_dataset",
    "enable_multi_worker_fit",
    "get_strategy",
    "has_depthwise",
    "replica_loss",
    "resolve_strategy_kind",
    "scaled_gradients",
    "set_precision",
    "shard_options",
    "unscale_loss",
    "use_replica_xla",
    "write_final_artifacts",
]
