"""Meta Pseudo Labels under a 2-process `MultiWorkerMirroredStrategy`, for `test_ssl_distribute.py`.

Run as `TF_CONFIG=... python tests/ssl/ssl_multiworker_job.py --out FILE`, one process per worker
(one CPU device each), or without `TF_CONFIG` and with `--single` for the one-process reference
on the same global batches. Each run trains `MetaPseudoLabels` (two small MLPs, no batch norm,
so the step does not depend on how the batch is split) for `--steps` steps with gradient
clipping on both optimizers and writes JSON to `FILE`: the final teacher and student weights,
the baseline, the logs, and the feedback `L_before - L_after` as each process computed it in
its own replica (recorded with `tf.py_function`, so it is this worker's value, not a
cross-replica reduction of the logs).

Worker `i` of `n` feeds rows `[i * b / n, (i + 1) * b / n)` of each global batch of `b`
examples (`distribute_datasets_from_function`), so the reference sees exactly the union.
`--local-feedback` replaces MPL's `all_reduce` by the identity (each replica then uses its own
labeled losses): the negative control showing that the feedback comparison can fail.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"

LABELED = 8  # global batch of labeled examples
UNLABELED = 16  # global batch of unlabeled examples (two views each)
FEATURES, HIDDEN, CLASSES = 2, 8, 3


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--single", action="store_true", help="one process, no TF_CONFIG (the reference)")
    parser.add_argument("--local-feedback", action="store_true", help="negative control: no all-reduce")
    return parser.parse_args(argv)


def make_data(steps):
    """Per step: labeled `(x, y)` and unlabeled `(weak, strong)` global batches, as numpy."""
    import numpy as np

    rng = np.random.default_rng(5)
    x_l = rng.normal(size=(steps, LABELED, FEATURES)).astype("float32")
    y_l = np.tile(np.arange(LABELED) % CLASSES, (steps, 1)).astype("int64")
    weak = rng.normal(size=(steps, UNLABELED, FEATURES)).astype("float32")
    strong = (weak + rng.normal(scale=0.3, size=weak.shape)).astype("float32")
    return x_l, y_l, weak, strong


def initial_weights(model, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.7, size=w.shape).astype("float32") for w in model.weights]


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    # The strategy first: it reads TF_CONFIG and starts this task's server before any other op.
    if args.single:
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        worker, workers = 0, 1
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        worker, workers = strategy.cluster_resolver.task_id, strategy.num_replicas_in_sync

    import keras
    import numpy as np

    from keras_cnn.distribute.multi_worker import enable_multi_worker_fit
    from keras_cnn.ssl import mpl as mpl_module

    if not args.single:
        enable_multi_worker_fit()  # keras-team/keras#20585
    if args.local_feedback:
        mpl_module.all_reduce = lambda value, op="sum": value
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()

    recorded = []

    def record(value):
        recorded.append(float(value.numpy()))
        return value

    class RecordingMPL(mpl_module.MetaPseudoLabels):
        def _update_baseline(self, feedback, active):
            feedback = tf.py_function(record, [feedback], Tout=tf.float32)
            return super()._update_baseline(tf.ensure_shape(feedback, []), active)

    def mlp(name):
        x = keras.Input((FEATURES,))
        h = keras.layers.Dense(HIDDEN, activation="tanh", name=f"{name}_hidden")(x)
        return keras.Model(x, keras.layers.Dense(CLASSES, name=f"{name}_logits")(h), name=name)

    with strategy.scope():
        teacher, student = mlp("teacher"), mlp("student")
        teacher.set_weights(initial_weights(teacher, 1))
        student.set_weights(initial_weights(student, 2))
        mpl = RecordingMPL(teacher, student, uda_weight=1.0, uda_threshold=None, label_smoothing=0.1,
                           pseudo_labels="argmax")
        mpl.compile(
            teacher_optimizer=keras.optimizers.SGD(0.3, momentum=0.9, global_clipnorm=0.5),
            student_optimizer=keras.optimizers.SGD(0.3, momentum=0.9, clipnorm=0.3, use_ema=True),
        )

    x_l, y_l, weak, strong = make_data(args.steps)
    n_l, n_u = LABELED // workers, UNLABELED // workers
    rows_l, rows_u = slice(worker * n_l, (worker + 1) * n_l), slice(worker * n_u, (worker + 1) * n_u)

    def dataset_fn(input_context=None):
        # This worker's contiguous slice of every global batch (one replica per worker).
        return tf.data.Dataset.from_tensor_slices(
            ((x_l[:, rows_l], y_l[:, rows_l]), (weak[:, rows_u], strong[:, rows_u])))

    if args.single:
        dataset = dataset_fn()
    else:
        options = tf.distribute.InputOptions(experimental_fetch_to_device=False)
        dataset = strategy.distribute_datasets_from_function(dataset_fn, options)
    history = mpl.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)

    result = {
        "worker": worker,
        "replicas": strategy.num_replicas_in_sync,
        "feedback": recorded,
        "logs": {k: [float(v) for v in values] for k, values in history.history.items()},
        "baseline": float(mpl.baseline.numpy()),
        "teacher_iterations": int(mpl.optimizer.iterations.numpy()),
        "student_iterations": int(mpl.student_optimizer.iterations.numpy()),
        "teacher": [np.asarray(w.numpy()).tolist() for w in teacher.weights],
        "student": [np.asarray(w.numpy()).tolist() for w in student.weights],
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(f"worker {worker} done: feedback={recorded}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
