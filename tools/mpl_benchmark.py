"""Cost of one Meta Pseudo Labels step against one supervised teacher step + one supervised
student step on the same batches, measured in one run (issue 6, "Performance").

An MPL step (`keras_cnn.ssl.mpl.MetaPseudoLabels.train_step`) runs the teacher forward and
backward on `x_l, x_u_weak, x_u_strong`, the student forward and backward on `x_l, x_u_strong`,
one extra student forward on `x_l` (the labeled loss after its step) and the two optimizer
updates. The reference is the sum of the two supervised steps a user would run anyway: the
teacher trained (`fit`'s step) on the same `x_l + x_u_weak + x_u_strong` images and the
student on the same `x_l + x_u_strong`. The goal is MPL / (teacher + student) <= 1.3
(`GOAL_RATIO`).

Each of the three steps is compiled (`model.make_train_function`), warmed up (tracing) and
then timed over `--steps` calls on batches already in memory; the three are measured in
alternating order `--repeats` times and the median per-step time of each is reported (a
shared machine's load hits all three alike). The models are the narrow ResNet-18 of the
tests (stem "cifar", width 8, planes 8-64) at `--size` px, or any registry name.

    python tools/mpl_benchmark.py                       # 16 px, 16 labeled + 3 x 16 unlabeled
    python tools/mpl_benchmark.py --model resnet18 --size 32 --labeled-batch 32 --mu 7 --json
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn.ssl.mpl import MetaPseudoLabels  # noqa: E402
from keras_cnn.utils.argtypes import positive_int  # noqa: E402

GOAL_RATIO = 1.3
NARROW_RESNET18 = "resnet18_narrow"
CLASSES = 10


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=NARROW_RESNET18, help="registry name or resnet18_narrow")
    parser.add_argument("--size", type=positive_int, default=16, help="image size in px")
    parser.add_argument("--labeled-batch", type=positive_int, default=16)
    parser.add_argument("--mu", type=positive_int, default=3, help="unlabeled batch = mu x labeled batch")
    parser.add_argument("--steps", type=positive_int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--warmup", type=positive_int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def build(name, size):
    if name == NARROW_RESNET18:
        return keras_cnn.ResNet18(classes=CLASSES, input_shape=(size, size, 3), stem="cifar", stem_pool=None,
                                  stem_width=8, planes=(8, 16, 32, 64), classifier_activation=None)
    return keras_cnn.create_model(name, classes=CLASSES, input_shape=(size, size, 3), classifier_activation=None)


def _supervised(name, size):
    model = build(name, size)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _timer(model, batch, warmup):
    """A callable running `steps` compiled train steps on `batch` and returning the seconds."""
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    # fit builds what a first step needs (compiled loss/metrics, optimizer) and traces the
    # train function, which is then called directly on an in-memory iterator.
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
    function, iterator = model.train_function, iter(dataset)
    _sync(function(iterator))

    def run(steps):
        start = time.perf_counter()
        for _ in range(steps):
            logs = function(iterator)
        _sync(logs)
        return time.perf_counter() - start

    return run


def _sync(logs):
    for value in tf.nest.flatten(logs):
        np.asarray(value)


def measure(args):
    rng = np.random.default_rng(0)
    n_l, n_u, size = args.labeled_batch, args.labeled_batch * args.mu, args.size

    def images(n):
        return tf.constant(rng.uniform(0, 255, (n, size, size, 3)).astype("float32"))

    def labels(n):
        return tf.constant(rng.integers(0, CLASSES, n))

    x_l, y_l, x_weak, x_strong = images(n_l), labels(n_l), images(n_u), images(n_u)
    keras.utils.set_random_seed(0)
    mpl = MetaPseudoLabels(build(args.model, size), build(args.model, size), uda_threshold=None)
    mpl.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.optimizers.SGD(0.05, momentum=0.9))
    timers = {
        "mpl": _timer(mpl, ((x_l, y_l), (x_weak, x_strong)), args.warmup),
        "teacher": _timer(_supervised(args.model, size),
                          (tf.concat([x_l, x_weak, x_strong], 0), labels(n_l + 2 * n_u)), args.warmup),
        "student": _timer(_supervised(args.model, size), (tf.concat([x_l, x_strong], 0), labels(n_l + n_u)),
                          args.warmup),
    }
    times = {name: [] for name in timers}
    for repeat in range(args.repeats):
        order = list(timers) if repeat % 2 == 0 else list(reversed(timers))
        for name in order:
            times[name].append(timers[name](args.steps) / args.steps)
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["mpl"] / (median["teacher"] + median["student"])
    return {
        "model": args.model,
        "image_size": size,
        "labeled_batch": n_l,
        "unlabeled_batch": n_u,
        "steps": args.steps,
        "repeats": args.repeats,
        "mpl_step_s": median["mpl"],
        "teacher_step_s": median["teacher"],
        "student_step_s": median["student"],
        "ratio": ratio,
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio <= GOAL_RATIO,
        "per_repeat_s": times,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                    "devices": [d.device_type for d in tf.config.list_logical_devices()],
                    "tensorflow": tf.__version__, "keras": keras.__version__},
    }


def report(result):
    """The human-readable summary of a `measure` result."""
    goal = result["goal_ratio"]
    return "\n".join([
        f"{result['model']} at {result['image_size']} px, {result['labeled_batch']} labeled + "
        f"2 x {result['unlabeled_batch']} unlabeled images per step, median of "
        f"{result['repeats']} x {result['steps']} steps",
        f"  MPL step               {result['mpl_step_s'] * 1e3:9.1f} ms",
        f"  supervised teacher     {result['teacher_step_s'] * 1e3:9.1f} ms",
        f"  supervised student     {result['student_step_s'] * 1e3:9.1f} ms",
        f"  MPL / (teacher + student) = {result['ratio']:.2f} (goal <= {goal}: "
        f"{'met' if result['goal_met'] else 'not met'})",
    ])


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = measure(args)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
