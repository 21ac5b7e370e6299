"""Few-label image classification: supervised-only vs pseudo-labels vs UDA vs Noisy Student vs
Meta Pseudo Labels, on real images (Fashion-MNIST) or the embedded digits, at a fixed budget.

Data (`--dataset`):

- `fashion_mnist` (default): Zalando's 60,000 training / 10,000 test 28x28 images
  (`keras_cnn.data.load_fashion_mnist`: Debian's `dataset-fashion-mnist` or `--data-dir`). For each
  `--labels-per-class` setting (40 and 100 by default: 400 and 1,000 labels) and seed, the labels
  are drawn class-balanced by `keras_cnn.data.labeled_indices(seed)`; all 60,000 training images
  are the unlabeled set (the UDA / MPL convention); test accuracy on the 10,000 test images.
- `digits`: the embedded UCI digits at 16 px (1,437 train / 360 test), the setting of the first
  few-label table (`benchmarks/ssl_digits.*`).

Every network of every method is the same backbone (`backbone`: ResNet-18 with the CIFAR stem
at the profile's width, logits out) with the same optimizer and the same number of optimizer
steps (`--steps`), labeled batch `--batch` and unlabeled batch `--mu` x that. Weak augmentation:
random translation by up to 1/8 of the side (zero fill) and, for Fashion-MNIST, horizontal flips
(the digits are not mirror-symmetric). Strong augmentation: keras_cnn's reference RandAugment
(2, `--ra-magnitude`), then the weak one. The methods:

- **supervised**: labeled batches only, weak augmentation, cross-entropy;
- **pseudo_labels**: Lee 2013's joint loss (`PseudoLabelModel`): hard labels of the model's own
  weak-view predictions kept above `--pl-threshold`, weight ramping 0 -> 1 between 20 % and
  60 % of the steps;
- **uda**: `keras_cnn.ssl.UDA` with the paper's CIFAR settings (weight 1, temperature 0.4,
  confidence threshold 0.8 on the unsharpened weak view, no TSA): consistency between the
  weak and the strong view of each unlabeled image;
- **noisy_student**: `keras_cnn.ssl.noisy_student` with the supervised network of the same seed
  as the teacher (it is trained exactly like one) and 2 student rounds of equal size, soft
  pseudo-labels on all unlabeled images (clean, inference-mode teacher), students noised by the
  profile's input noise plus dropout and stochastic depth. Each student gets `--steps` steps of
  mixed batches of `--batch` x (1 + `--mu`) images, the compute of one UDA step's labeled and
  one unlabeled view;
- **mpl**: `MetaPseudoLabels` with the library's defaults (UDA weight 1, temperature 0.4, the
  release's sharpened `>= 0.8` mask, its default pseudo-labels) and a student that waits the
  first 10 % of the steps, then `finetune_student` on the labeled images for `--finetune-steps`
  steps at a tenth of the learning rate. Reported: the student after finetuning (`mpl`), before
  it (`mpl_no_finetune`), and the teacher.

The budget per network is equal; the compute is not: MPL trains 2 networks at once (each step
about 1.1 x a teacher plus a student step, `tools/mpl_benchmark.py`), Noisy Student 2 more in
sequence after the teacher. Wall times per method are reported. Profiles (`PROFILES`): the
digits one reproduces the first table's settings (Adam 1e-3, 300 steps, float32); the
Fashion-MNIST one uses SGD + Nesterov 0.9 with cosine decay, L2 weight decay 5e-4 (no bias
decay) as the UDA/MPL CIFAR setups, and `mixed_bfloat16`.

    python tools/ssl_benchmark.py --json benchmarks/ssl_fashion_mnist.json \\
        --markdown benchmarks/ssl_fashion_mnist.md --plot benchmarks/ssl_fashion_mnist.png
    python tools/ssl_benchmark.py --dataset digits --labels-per-class 10 --json benchmarks/ssl_digits.json
    python tools/ssl_benchmark.py --quick          # a smoke run (tests)
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn.data import labeled_indices, load_digits, load_fashion_mnist  # noqa: E402
from keras_cnn.data.augment import RANDAUGMENT_MAX_MAGNITUDE, augment_layers  # noqa: E402
from keras_cnn.ssl.mpl import MetaPseudoLabels, finetune_student  # noqa: E402
from keras_cnn.ssl.noisy_student import noisy_student, steps_per_epoch  # noqa: E402
from keras_cnn.ssl.pseudo_labels import PseudoLabelModel  # noqa: E402
from keras_cnn.ssl.uda import UDA  # noqa: E402
from keras_cnn.training import build_optimizer, warmup_cosine  # noqa: E402
from keras_cnn.utils.argtypes import int_tuple, name_value, non_negative_float, positive_int  # noqa: E402

METHODS = ("supervised", "pseudo_labels", "uda", "noisy_student", "mpl")
ROWS = ("supervised", "pseudo_labels", "uda", "noisy_student", "mpl_no_finetune", "mpl")
TITLES = {"supervised": "Supervised (labeled only)", "pseudo_labels": "Pseudo-Labels (Lee 2013, joint)",
          "uda": "UDA", "noisy_student": "Noisy Student (2 rounds)",
          "mpl_no_finetune": "MPL student, before finetuning", "mpl": "MPL + finetune",
          "mpl_teacher": "MPL teacher"}
CLASSES = 10

# Per-dataset settings; every CLI option left unset takes its profile's value.
PROFILES = {
    "digits": {
        "image_size": 16, "labels_per_class": (10,), "flip": False, "steps": 300, "finetune_steps": 100,
        "batch": 32, "mu": 2, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "precision": "float32",
        "stem_width": 8, "planes": (8, 16, 32, 64), "ra_magnitude": 9.0,
        # RandAugment (2, 9) destroys 16 px digits (a 97 % model scores 40 % on such copies with
        # Keras' old ranges): the students are noised by translation + model noise only.
        "ns_randaugment": False, "ns_dropout": 0.3, "ns_drop_path": 0.1, "ns_batch_mu": False,
    },
    "fashion_mnist": {
        # 1,000 steps of 32 labeled + 96 unlabeled images per network: what 3 seeds x 2 settings
        # x 5 methods afford on 2 cores (about 90 minutes). UDA's gain grows with the images seen
        # (40/class, seed 0: -0.5 points after 1,000 steps, +4.0 after 4,000; see the README).
        "image_size": 28, "labels_per_class": (40, 100), "flip": True, "steps": 1000, "finetune_steps": 200,
        "batch": 32, "mu": 3, "optimizer": "sgd", "lr": 0.03, "weight_decay": 5e-4,
        "precision": "mixed_bfloat16", "stem_width": 8, "planes": (8, 16, 32, 64), "ra_magnitude": 5.0,
        "ns_randaugment": True, "ns_dropout": 0.3, "ns_drop_path": 0.1, "ns_batch_mu": True,
    },
}
QUICK = {"seeds": 1, "labels_per_class": (2,), "steps": 2, "finetune_steps": 1, "batch": 8, "mu": 1,
         "unlabeled": 48, "test": 64}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(PROFILES), default="fashion_mnist")
    parser.add_argument("--data-dir", help="directory of the four Fashion-MNIST files (default: Debian's)")
    parser.add_argument("--seeds", type=positive_int, help="number of seeds (0 .. seeds-1; default 3)")
    parser.add_argument("--labels-per-class", type=int_tuple(), help="labels per class, one run per value")
    parser.add_argument("--labels", type=positive_int, help="labels in total (a multiple of 10; one setting)")
    parser.add_argument("--steps", type=positive_int, help="optimizer steps per network")
    parser.add_argument("--finetune-steps", type=positive_int, help="MPL finetuning steps")
    parser.add_argument("--batch", type=positive_int, help="labeled batch size")
    parser.add_argument("--mu", type=positive_int, help="unlabeled batch = mu x labeled batch")
    parser.add_argument("--lr", type=non_negative_float, help="learning rate (Adam, or SGD's peak)")
    parser.add_argument("--pl-threshold", type=non_negative_float, default=0.9, help="pseudo-label confidence threshold")
    parser.add_argument("--ra-magnitude", type=non_negative_float, help="RandAugment magnitude (0-10) of the strong view")
    parser.add_argument("--unlabeled", type=positive_int, default=None,
                        help="use only the first N training images as the unlabeled set (smoke runs; default all)")
    parser.add_argument("--test", type=positive_int, default=None, help="evaluate on the first N test images only")
    parser.add_argument("--ns-mode", choices=("soft", "hard"), default="soft", help="Noisy Student pseudo-labels")
    parser.add_argument("--ns-ra-magnitude", type=non_negative_float, default=None,
                        help="RandAugment (2, M) in the students' noise at this M (digits: off by default)")
    parser.add_argument("--ns-randaugment", choices=("on", "off"), default=None,
                        help="RandAugment at --ra-magnitude in the students' noise (profile: on for Fashion-MNIST)")
    parser.add_argument("--stem-width", type=positive_int)
    parser.add_argument("--planes", type=int_tuple(4))
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--mpl-option", action="append", default=[], type=name_value, metavar="NAME=VALUE",
                        help="override a MetaPseudoLabels argument (default: none, the library's defaults)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke settings: " + json.dumps(QUICK))
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the markdown table here")
    parser.add_argument("--plot", help="write accuracy vs labels per class (PNG, needs matplotlib) here")
    parser.add_argument("--from-json", help="train nothing: render --markdown / --plot from this run's JSON "
                                            "(also one stopped early: it is written after every seed)")
    args = parser.parse_args(argv)
    if args.labels is not None:
        if args.labels % CLASSES:
            parser.error(f"--labels must be a multiple of {CLASSES}, received {args.labels}")
        args.labels_per_class = (args.labels // CLASSES,)
    # Explicit options first, then --quick's, then the dataset profile's.
    for defaults in ([QUICK] if args.quick else []) + [PROFILES[args.dataset], {"seeds": 3}]:
        for key, value in defaults.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    if args.lr <= 0:
        parser.error(f"--lr must be > 0, received {args.lr}")
    if args.pl_threshold > 1:
        parser.error(f"--pl-threshold must be in [0, 1], received {args.pl_threshold}")
    for option, value in (("--ra-magnitude", args.ra_magnitude), ("--ns-ra-magnitude", args.ns_ra_magnitude)):
        if value is not None and value > RANDAUGMENT_MAX_MAGNITUDE:
            parser.error(f"{option} must be in [0, {RANDAUGMENT_MAX_MAGNITUDE}], received {value}")
    if not args.labels_per_class or min(args.labels_per_class) < 1:
        parser.error(f"--labels-per-class must be integers >= 1, received {args.labels_per_class}")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or any(m not in METHODS for m in methods):
        parser.error(f"--methods must be a subset of {','.join(METHODS)}, received {args.methods!r}")
    args.methods = methods
    args.mpl_options = dict(args.mpl_option)
    return args


# --- networks, optimizers, streams --------------------------------------------------------------


def backbone(args, name, **noise):
    """The narrow ResNet-18 every method uses (CIFAR stem, no max pool; logits out)."""
    size = args.image_size
    return keras_cnn.ResNet18(classes=CLASSES, input_shape=(size, size, 3), stem="cifar", stem_pool=None,
                              stem_width=args.stem_width, planes=args.planes, classifier_activation=None,
                              name=name, **noise)


def optimizer(args, model, steps=None, learning_rate=None):
    """The profile's optimizer for `model`: Adam, or SGD+Nesterov with cosine decay and L2 decay."""
    learning_rate = args.lr if learning_rate is None else learning_rate
    if args.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    schedule = warmup_cosine(learning_rate, total_steps=steps or args.steps)
    return build_optimizer("sgd", schedule, momentum=0.9, nesterov=True, weight_decay=args.weight_decay,
                           weight_decay_mode="l2", model=model)


def _weak_layers(args, seed):
    # 1/8 of the side (2 px at 16, 3.5 px at 28); the backgrounds are black, so zero fill adds nothing.
    layers = [keras.layers.RandomTranslation(0.125, 0.125, fill_mode="constant", seed=seed)]
    if args.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 100))
    return layers


def _apply(layers, images):
    for layer in layers:
        images = layer(images, training=True)
    return images


def _repeat_batches(x, batch, seed, y=None):
    data = (x, y) if y is not None else x
    return tf.data.Dataset.from_tensor_slices(data).shuffle(len(x), seed=seed).repeat().batch(batch, drop_remainder=True)


def labeled_stream(x_l, y_l, args, seed):
    weak = _weak_layers(args, seed)
    return _repeat_batches(x_l, args.batch, seed, y_l).map(lambda x, y: (_apply(weak, x), y)).prefetch(2)


def unlabeled_stream(x_u, args, seed, *, strong):
    weak = _weak_layers(args, seed + 1)
    dataset = _repeat_batches(x_u, args.batch * args.mu, seed + 2)
    if not strong:
        return dataset.map(lambda x: _apply(weak, x)).prefetch(2)
    layers = augment_layers(randaugment=(2, args.ra_magnitude), seed=seed + 3)

    def views(x):
        return _apply(weak, x), _apply(weak, _apply(layers, x))

    return dataset.map(views, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def accuracy(model, x, y, batch=512):
    correct = 0
    for start in range(0, len(x), batch):
        logits = np.asarray(model.predict_on_batch(x[start:start + batch]), "float32")
        correct += int(np.sum(logits.argmax(-1) == y[start:start + batch]))
    return correct / len(x)


# --- the methods ------------------------------------------------------------------------------


def run_supervised(data, args, seed, shared=None):
    x_l, y_l, _, x_test, y_test = data
    model = backbone(args, "supervised")
    model.compile(optimizer(args, model), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(labeled_stream(x_l, y_l, args, seed), steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    if shared is not None:
        shared["supervised_model"] = model
    return {"supervised": accuracy(model, x_test, y_test)}


def run_pseudo_labels(data, args, seed, shared=None):
    x_l, y_l, x_u, x_test, y_test = data
    model = backbone(args, "pseudo_labels")
    wrapper = PseudoLabelModel(model, t1=int(0.2 * args.steps), t2=int(0.6 * args.steps), alpha_f=1.0,
                               mode="hard", threshold=args.pl_threshold)
    wrapper.compile(optimizer(args, model))
    stream = tf.data.Dataset.zip((labeled_stream(x_l, y_l, args, seed), unlabeled_stream(x_u, args, seed, strong=False)))
    history = wrapper.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"pseudo_labels": accuracy(model, x_test, y_test),
            "pseudo_rate_last": float(history.history["pseudo_rate"][-1])}


def run_uda(data, args, seed, shared=None):
    x_l, y_l, x_u, x_test, y_test = data
    model = backbone(args, "uda")
    uda = UDA(model, unsup_weight=1.0, temperature=0.4, threshold=0.8)
    uda.compile(optimizer=optimizer(args, model))
    stream = tf.data.Dataset.zip((labeled_stream(x_l, y_l, args, seed), unlabeled_stream(x_u, args, seed, strong=True)))
    history = uda.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"uda": accuracy(model, x_test, y_test), "uda_mask_rate_last": float(history.history["mask_rate"][-1])}


def ns_noise(args, seed):
    """`(teacher_noise, student_noise)` of `noisy_student` (see the module docstring)."""
    teacher = {"augment": _weak_layers(args, seed + 4)}  # the supervised recipe
    magnitude = args.ns_ra_magnitude
    if magnitude is None and args.ns_randaugment in (True, "on"):
        magnitude = args.ra_magnitude
    # Input noise: the other methods' strong view (RandAugment, then the weak augmentation).
    strong = [] if magnitude is None else augment_layers(randaugment=(2, magnitude), seed=seed + 6)
    student = {"augment": strong + _weak_layers(args, seed + 5), "dropout": args.ns_dropout,
               "drop_path_rate": args.ns_drop_path}
    return teacher, student


def run_noisy_student(data, args, seed, shared=None):
    x_l, y_l, x_u, x_test, y_test = data
    batch = args.batch * (1 + args.mu) if args.ns_batch_mu else args.batch
    teacher = (shared or {}).get("supervised_model")

    def build(k, **noise):
        return backbone(args, f"ns_round_{k}", **noise)

    def compile_student(model, steps_per_epoch):
        # The epochs below give each network about --steps steps; its schedule spans exactly them.
        total = max(1, round(args.steps / steps_per_epoch)) * steps_per_epoch
        model.compile(optimizer=optimizer(args, model, steps=total),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True))

    teacher_noise, student_noise = ns_noise(args, seed)
    # No filtering or balancing: each round trains on all its images, so the epochs are known here.
    sizes = [len(x_l)] + [len(x_l) + len(x_u)] * 2
    epochs = [max(1, round(args.steps / steps_per_epoch(n, batch))) for n in sizes]
    with tempfile.TemporaryDirectory() as directory:
        rounds = noisy_student(build, teacher, (x_l, y_l), x_u, rounds=2, output_dir=directory, epochs=epochs,
                               batch_size=batch, mode=args.ns_mode, noise=student_noise, teacher_noise=teacher_noise,
                               compile_student=compile_student, validation_data=(x_test, y_test), seed=seed, verbose=0)
    accuracies = [r["accuracy"] for r in rounds]
    if teacher is not None:
        accuracies = [accuracy(teacher, x_test, y_test)] + accuracies
    return {"noisy_student": rounds[-1]["accuracy"], "noisy_student_rounds": accuracies,
            "noisy_student_steps": [r["epochs"] * r["steps_per_epoch"] for r in rounds],
            "noisy_student_teacher": "the supervised network" if teacher is not None else "trained here"}


def run_mpl(data, args, seed, shared=None):
    x_l, y_l, x_u, x_test, y_test = data
    teacher, student = backbone(args, "teacher"), backbone(args, "student")
    options = {"student_wait_steps": int(0.1 * args.steps), **args.mpl_options}
    mpl = MetaPseudoLabels(teacher, student, seed=seed, **options)
    mpl.compile(teacher_optimizer=optimizer(args, teacher), student_optimizer=optimizer(args, student))
    stream = tf.data.Dataset.zip((labeled_stream(x_l, y_l, args, seed), unlabeled_stream(x_u, args, seed, strong=True)))
    history = mpl.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    mpl.finalize_student()
    before = accuracy(student, x_test, y_test)
    teacher_accuracy = accuracy(teacher, x_test, y_test)
    finetune_student(student, labeled_stream(x_l, y_l, args, seed + 10), epochs=1,
                     optimizer=optimizer(args, student, steps=args.finetune_steps, learning_rate=args.lr / 10),
                     steps_per_epoch=args.finetune_steps, shuffle=False)
    return {"mpl": accuracy(student, x_test, y_test), "mpl_no_finetune": before, "mpl_teacher": teacher_accuracy,
            "mpl_mask_rate_last": float(history.history["mask_rate"][-1]),
            "mpl_feedback_mean": float(np.mean(history.history["feedback"]))}


RUNNERS = {"supervised": run_supervised, "pseudo_labels": run_pseudo_labels, "uda": run_uda,
           "noisy_student": run_noisy_student, "mpl": run_mpl}


# --- data and the run -------------------------------------------------------------------------


def _images(args):
    if args.dataset == "digits":
        return load_digits(args.image_size)
    return load_fashion_mnist(args.data_dir)


def load(args, seed, labels_per_class=None):
    """`(x_l, y_l, x_u, x_test, y_test)`: float32 images in [0, 255], int64 labels."""
    (x_train, y_train), (x_test, y_test) = _images(args)
    per_class = labels_per_class or args.labels_per_class[0]
    indices = labeled_indices(y_train, per_class, seed=seed)
    x_u = x_train if args.unlabeled is None else x_train[:args.unlabeled]
    if args.test is not None:
        x_test, y_test = x_test[:args.test], y_test[:args.test]
    return (x_train[indices].astype("float32"), y_train[indices].astype("int64"), x_u.astype("float32"),
            x_test.astype("float32"), y_test.astype("int64"))


def _stats(values):
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "median": statistics.median(values), "per_seed": values}


def run(args):
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(args.precision)
    settings = {}
    try:
        for per_class in args.labels_per_class:
            per_seed, extras, seconds = {}, {}, {m: 0.0 for m in args.methods}
            for seed in range(args.seeds):
                data = load(args, seed, per_class)
                shared = {}
                for method in args.methods:
                    keras.utils.set_random_seed(seed)
                    start = time.perf_counter()
                    out = RUNNERS[method](data, args, seed, shared)
                    seconds[method] += time.perf_counter() - start
                    for key, value in out.items():
                        (per_seed if key in ROWS or key == "mpl_teacher" else extras).setdefault(key, []).append(value)
                    print(f"{per_class}/class seed {seed} {method}: " + ", ".join(
                        f"{k}={v:.4f}" for k, v in out.items() if isinstance(v, float)), flush=True)
                keras.backend.clear_session()
                settings[str(per_class)] = {"labels_per_class": per_class, "labels": per_class * CLASSES,
                                            "seeds_done": seed + 1,
                                            "accuracy": {key: _stats(v) for key, v in per_seed.items()},
                                            "extras": extras, "seconds": dict(seconds)}
                if args.json:  # after every seed: a long run that is stopped keeps what it measured
                    with open(args.json, "w") as file:
                        json.dump(_result(args, settings), file, indent=2)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return _result(args, settings)


def _result(args, settings):
    test_size = len(load(args, 0, args.labels_per_class[0])[4])
    unlabeled = "all training images" if args.unlabeled is None else f"the first {args.unlabeled} training images"
    return {
        "dataset": args.dataset,
        "task": f"{args.dataset} at {args.image_size} px, labels per class {list(args.labels_per_class)}, "
                f"unlabeled = {unlabeled}, test = {test_size} images",
        "backbone": f"ResNet18(stem='cifar', stem_pool=None, stem_width={args.stem_width}, planes={tuple(args.planes)})",
        "budget": (f"{args.steps} optimizer steps per network ({args.optimizer}, lr {args.lr}"
                   + (f", cosine decay, Nesterov 0.9, L2 {args.weight_decay}" if args.optimizer == "sgd" else "")
                   + f", {args.precision}), labeled batch {args.batch}, unlabeled batch {args.batch * args.mu}; "
                   f"Noisy Student: 2 students after the supervised teacher, MPL: 2 networks at once plus "
                   f"{args.finetune_steps} finetuning steps"),
        "seeds": list(range(args.seeds)),
        "quick": bool(args.quick),
        "methods": list(args.methods),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                   if k not in ("json", "markdown", "plot", "from_json", "methods", "quick", "mpl_option")},
        "settings": settings,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
    }


def markdown(result):
    settings = list(result["settings"].values())
    counts = [s.get("seeds_done", len(result["seeds"])) for s in settings]
    header = " | ".join(f"{s['labels_per_class']}/class ({s['labels']} labels, {n} seed{'s' * (n != 1)})"
                        for s, n in zip(settings, counts))
    lines = [f"Few-label {result['dataset']}: {result['task']}.", "",
             f"Backbone: {result['backbone']}. Budget: {result['budget']}. Test accuracy, mean ± std "
             f"(median) over the first seeds of {result['seeds']} (count in the header); wall time of those "
             f"seeds in brackets.", "",
             f"| Method | {header} |", "|---|" + "---|" * len(settings)]
    for key in (*ROWS, "mpl_teacher"):
        cells = []
        for setting in settings:
            row = setting["accuracy"].get(key)
            if row is None:
                cells.append("")
                continue
            method = "mpl" if key.startswith("mpl") else key
            seconds = setting["seconds"].get(method)
            timing = f" [{seconds:.0f} s]" if key == method and seconds is not None else ""
            cells.append(f"{100 * row['mean']:.1f} ± {100 * row['std']:.1f} ({100 * row['median']:.1f}){timing}")
        if any(cells):
            lines.append(f"| {TITLES[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_plot(path, result):
    """Test accuracy vs labels per class, one line per method (mean, std as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    settings = sorted(result["settings"].values(), key=lambda s: s["labels_per_class"])
    xs = [s["labels_per_class"] for s in settings]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key in (*ROWS, "mpl_teacher"):
        if not all(key in s["accuracy"] for s in settings):
            continue
        means = [100 * s["accuracy"][key]["mean"] for s in settings]
        stds = [100 * s["accuracy"][key]["std"] for s in settings]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=TITLES[key],
                    linestyle="--" if key in ("mpl_no_finetune", "mpl_teacher") else "-")
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("labels per class")
    ax.set_ylabel("test accuracy (%)")
    seeds = sorted({s.get("seeds_done", len(result["seeds"])) for s in settings})
    ax.set_title(f"Few-label {result['dataset']} ({'/'.join(map(str, seeds))} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        with open(args.from_json) as file:
            result = json.load(file)
    else:
        result = run(args)
    text = markdown(result)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as file:
            file.write(text)
    if args.json and not args.from_json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)
    if args.plot:
        save_plot(args.plot, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
