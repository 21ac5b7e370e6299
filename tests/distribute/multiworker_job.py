"""One worker of the 2-process `MultiWorkerMirroredStrategy` job started by `test_multiworker.py`.

Run as `TF_CONFIG=... python tests/distribute/multiworker_job.py --workdir DIR [...]`, one process per task.
Each worker trains a tiny keras_cnn ResNet on generated data with plain `model.fit`, evaluates,
saves through `write_final_artifacts` (only the chief's file reaches `DIR/model.keras`) and writes
what it saw to `DIR/<task>_<attempt>.json` for the test to compare. Training is deterministic
(fixed seeds, no shuffling, op determinism), so an interrupted-and-resumed job can be compared
with an uninterrupted one.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"

GLOBAL_BATCH_SIZE = 16
TRAIN_EXAMPLES = 96  # 6 steps per epoch
EVAL_EXAMPLES = 32
IMAGE_SIZE = 32
CLASSES = 10


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--attempt", type=int, default=0, help="restart counter, names the output")
    parser.add_argument("--no-fix", action="store_true", help="skip enable_multi_worker_fit()")
    parser.add_argument("--backup", action="store_true", help="use backup_and_restore(DIR/backup)")
    parser.add_argument(
        "--pause-at-epoch", type=int, default=None,
        help="after the first batch of this epoch, write DIR/<task>.paused and sleep (to be killed)",
    )
    parser.add_argument("--pause-task", default="worker1", help="the task that pauses")
    return parser.parse_args(argv)


def make_data(examples, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 255.0, (examples, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    y = rng.integers(0, CLASSES, examples).astype("int32")
    return x, y


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    # The strategy first: it reads TF_CONFIG and starts this task's server before any other op.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = f"{strategy.cluster_resolver.task_type}{strategy.cluster_resolver.task_id}"

    import keras

    import keras_cnn
    from keras_cnn.distribute.checkpoint import backup_and_restore, write_final_artifacts
    from keras_cnn.distribute.data import distribute_dataset
    from keras_cnn.distribute.multi_worker import enable_multi_worker_fit

    patched = [] if args.no_fix else enable_multi_worker_fit()
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()

    with strategy.scope():
        model = keras_cnn.ResNet(
            (1, 1), "basic", planes=(8, 16), strides=(1, 2), stem_width=8,
            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), classes=CLASSES, name="tiny_resnet",
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    train = distribute_dataset(
        tf.data.Dataset.from_tensor_slices(make_data(TRAIN_EXAMPLES, 1)),
        strategy, global_batch_size=GLOBAL_BATCH_SIZE, policy="data",
    )
    test = distribute_dataset(
        tf.data.Dataset.from_tensor_slices(make_data(EVAL_EXAMPLES, 2)),
        strategy, global_batch_size=GLOBAL_BATCH_SIZE, policy="data",
    )

    epochs_begun = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_begun.append(epoch)

        def on_train_batch_end(self, batch, logs=None):
            pause = args.pause_at_epoch is not None and task == args.pause_task
            if pause and epochs_begun[-1] == args.pause_at_epoch and batch == 0:
                # Mid-epoch: the previous epoch is backed up, this one is half done in memory.
                with open(os.path.join(args.workdir, f"{task}.paused"), "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(3600)

    callbacks = []
    if args.backup:
        callbacks.append(backup_and_restore(os.path.join(args.workdir, "backup")))
    callbacks.append(Record())  # after the backup, so a pause comes after the epoch's backup

    history = model.fit(train, epochs=args.epochs, callbacks=callbacks, verbose=2)
    evaluation = model.evaluate(test, return_dict=True, verbose=0)
    predictions = model.predict(test, verbose=0)
    written = write_final_artifacts(model, os.path.join(args.workdir, "model.keras"))
    result = {
        "task": task,
        "attempt": args.attempt,
        "patched": patched,
        "epochs_begun": epochs_begun,
        "loss": [float(v) for v in history.history["loss"]],
        "accuracy": [float(v) for v in history.history["accuracy"]],
        "evaluation": {k: float(v) for k, v in evaluation.items()},
        "predictions_shape": list(predictions.shape),
        "iterations": int(model.optimizer.iterations.numpy()),
        # BN moving statistics are per replica in Keras 3 (ON_WRITE, aggregation NONE), so only
        # the trainable weights are the same on every worker.
        "trainable_sum": float(sum(float(tf.reduce_sum(tf.abs(w))) for w in model.trainable_weights)),
        "written": list(written),
    }
    with open(os.path.join(args.workdir, f"{task}_{args.attempt}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{task} done: {json.dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
