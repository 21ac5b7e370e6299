"""Few-label digits: supervised-only vs pseudo-labels vs Noisy Student vs Meta Pseudo Labels
(issue 6, "Reproductions"), on the embedded UCI digits at 16 px with a narrow ResNet-18.

Data: `keras_cnn.data.load_digits(16)` (1,437 train / 360 test, the split of
`ssl_datasets("digits_<N>")`, served at 16 px instead of 32), `--labels` labels in total drawn
class-balanced per seed by `keras_cnn.data.labeled_indices` (as `ssl_datasets("digits_<N>")`
does), and all 1,437 training images as the unlabeled set (the UDA / MPL convention). Test
accuracy on the 360 test images.

Backbone (every network of every method): `keras_cnn.ResNet18(stem="cifar", stem_pool=None,
stem_width=--stem-width, planes=--planes, classifier_activation=None)` at 16 px.
Optimizer: Adam at `--lr` everywhere. Weak augmentation: random translation by up to 2 px
(`keras.layers.RandomTranslation`, zero fill, no flips: digits are not mirror-symmetric).
Strong augmentation: RandAugment (2, `--ra-magnitude`, 9 by default)
(`keras_cnn.data.augment_layers`) then the weak one.

Budget: every network is trained for `--steps` optimizer steps (labeled batch `--batch`,
unlabeled batch `--mu` x that):

- **supervised**: one network, `--steps` steps on weakly augmented labeled batches;
- **pseudo_labels**: one network, `--steps` steps of `PseudoLabelModel` (Lee 2013's joint loss,
  hard labels kept above `--pl-threshold`, alpha ramping 0 -> 1 between 20 % and 60 % of the
  steps) on a labeled and a weakly augmented unlabeled batch;
- **noisy_student**: `keras_cnn.ssl.noisy_student` with round 0 (teacher on labeled data) and 2
  student rounds (equal-size students), soft pseudo-labels (`--ns-mode`). The teacher is trained
  with the supervised recipe (translation only: `teacher_noise`), as the paper's teachers are
  the normally trained EfficientNet baselines; the students are noised with the translation
  (input noise) + dropout 0.3 + stochastic depth 0.1 (model noise; the paper's 0.5 / 0.2 are
  for B7-L2 students trained for hundreds of epochs, here a student gets 6 epochs). No
  RandAugment by default (`--ns-ra-magnitude` adds it): Keras' `RandAugment` maps the
  magnitude to ranges far beyond the paper's (`factor` M/10 rotates by up to M/10 x 360 deg,
  translates and shears by up to M/10 of the image with reflect fill; its solarization and
  posterization are strongest at low M, as in the reference code, tensorflow/tpu#614), which
  on 16 px digits destroys the label. Measured: a model at 97 % on the clean test images
  scores 40 % on RandAugment (2, 9) copies of them (79 % even at M = 0). One student round
  from the supervised teacher (88.9 / 89.4 %, seeds 0 / 1) reaches 76.1 / 80.6 % with
  RandAugment (2, 9) added to its noise, 91.9 / 91.9 % with translation + dropout +
  stochastic depth, 91.1 / 88.1 % with translation alone (the model noise helps), and
  81.1 / 90.0 % with +-15 deg rotation and 15 % zoom added. Each round trains for
  round(--steps / steps per epoch) epochs of full batches (300, 294 and 294 steps at the
  defaults; exact counts in `extras.noisy_student_steps`), i.e. 3 networks one after the
  other. Per-round test accuracies are in the JSON (`extras.noisy_student_rounds`);
- **mpl**: `MetaPseudoLabels` (teacher + student, hard labels, UDA weight 1, temperature 0.4,
  threshold 0.8, student waits 10 % of the steps) for `--steps` steps on labeled +
  (weak, strong) unlabeled batches, then `finetune_student` on the labeled images for
  `--finetune-steps` steps at `--lr / 10`. Reported: the student after finetuning (`mpl`) and
  before it (`mpl_no_finetune`).

So the steps per network are equal; the compute is not: Noisy Student trains 3 networks
in sequence, MPL 2 at once (each MPL step is about 2-3 supervised steps, see
`tools/mpl_benchmark.py`). The tool reports the wall time of each method.

    python tools/ssl_digits.py --json benchmarks/ssl_digits.json --markdown benchmarks/ssl_digits.md
    python tools/ssl_digits.py --quick          # a smoke run (tests)
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
from keras_cnn.data import labeled_indices, load_digits  # noqa: E402
from keras_cnn.data.augment import RANDAUGMENT_MAX_MAGNITUDE, augment_layers  # noqa: E402
from keras_cnn.ssl.mpl import MetaPseudoLabels, finetune_student  # noqa: E402
from keras_cnn.ssl.noisy_student import noisy_student, steps_per_epoch  # noqa: E402
from keras_cnn.ssl.pseudo_labels import PseudoLabelModel  # noqa: E402
from keras_cnn.utils.argtypes import int_tuple, non_negative_float, positive_int  # noqa: E402

METHODS = ("supervised", "pseudo_labels", "noisy_student", "mpl")
ROWS = ("supervised", "pseudo_labels", "noisy_student", "mpl_no_finetune", "mpl")
TITLES = {"supervised": "Supervised (labeled only)", "pseudo_labels": "Pseudo-Labels (Lee 2013, joint)",
          "noisy_student": "Noisy Student (2 rounds)", "mpl_no_finetune": "MPL student, before finetuning",
          "mpl": "MPL + finetune"}
CLASSES = 10
IMAGE_SIZE = 16
NS_MODEL_NOISE = {"dropout": 0.3, "drop_path_rate": 0.1}
QUICK = {"seeds": 1, "labels": 20, "steps": 2, "finetune_steps": 1, "batch": 8, "mu": 1, "unlabeled": 48}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (0 .. seeds-1)")
    parser.add_argument("--labels", type=positive_int, default=100, help="labels in total (a multiple of 10)")
    parser.add_argument("--steps", type=positive_int, default=300, help="optimizer steps per network")
    parser.add_argument("--finetune-steps", type=positive_int, default=100, help="MPL finetuning steps")
    parser.add_argument("--batch", type=positive_int, default=32, help="labeled batch size")
    parser.add_argument("--mu", type=positive_int, default=2, help="unlabeled batch = mu x labeled batch")
    parser.add_argument("--lr", type=non_negative_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--pl-threshold", type=non_negative_float, default=0.9, help="pseudo-label confidence threshold")
    parser.add_argument("--ra-magnitude", type=non_negative_float, default=9.0,
                        help="RandAugment magnitude (0-10) of the strong view and the Noisy Student noise")
    parser.add_argument("--unlabeled", type=positive_int, default=None,
                        help="use only the first N training images as the unlabeled set (smoke runs; default all)")
    parser.add_argument("--ns-mode", choices=("soft", "hard"), default="soft", help="Noisy Student pseudo-labels")
    parser.add_argument("--ns-ra-magnitude", type=non_negative_float, default=None,
                        help="add RandAugment (2, M) to the Noisy Student students' noise (off by default: at "
                             "16 px it destroys the digits, see the docstring)")
    parser.add_argument("--stem-width", type=positive_int, default=8)
    parser.add_argument("--planes", type=int_tuple(4), default=(8, 16, 32, 64))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--quick", action="store_true", help="tiny smoke settings: " + json.dumps(QUICK))
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the markdown table here")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.lr <= 0:
        parser.error(f"--lr must be > 0, received {args.lr}")
    if args.pl_threshold > 1:
        parser.error(f"--pl-threshold must be in [0, 1], received {args.pl_threshold}")
    for option, value in (("--ra-magnitude", args.ra_magnitude), ("--ns-ra-magnitude", args.ns_ra_magnitude)):
        if value is not None and value > RANDAUGMENT_MAX_MAGNITUDE:
            parser.error(f"{option} must be in [0, {RANDAUGMENT_MAX_MAGNITUDE}], received {value}")
    if args.labels % CLASSES:
        parser.error(f"--labels must be a multiple of {CLASSES}, received {args.labels}")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or any(m not in METHODS for m in methods):
        parser.error(f"--methods must be a subset of {','.join(METHODS)}, received {args.methods!r}")
    args.methods = methods
    return args


def backbone(args, name, **noise):
    """The narrow ResNet-18 every method uses (logits out)."""
    return keras_cnn.ResNet18(classes=CLASSES, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), stem="cifar",
                              stem_pool=None, stem_width=args.stem_width, planes=args.planes,
                              classifier_activation=None, name=name, **noise)


def _weak_layer(seed):
    # 2 px at 16 px; digits sit on a black background, so zero fill adds nothing new.
    return keras.layers.RandomTranslation(0.125, 0.125, fill_mode="constant", seed=seed)


def _repeat_batches(x, batch, seed, y=None):
    data = (x, y) if y is not None else x
    return tf.data.Dataset.from_tensor_slices(data).shuffle(len(x), seed=seed).repeat().batch(batch, drop_remainder=True)


def labeled_stream(x_l, y_l, args, seed):
    weak = _weak_layer(seed)
    return _repeat_batches(x_l, args.batch, seed, y_l).map(lambda x, y: (weak(x, training=True), y))


def unlabeled_stream(x_u, args, seed, *, strong):
    weak = _weak_layer(seed + 1)
    dataset = _repeat_batches(x_u, args.batch * args.mu, seed + 2)
    if not strong:
        return dataset.map(lambda x: weak(x, training=True))
    layers = augment_layers(randaugment=(2, args.ra_magnitude), seed=seed + 3)

    def views(x):
        strong_view = x
        for layer in layers:
            strong_view = layer(strong_view, training=True)
        return weak(x, training=True), weak(strong_view, training=True)

    return dataset.map(views)


def accuracy(model, x, y, batch=256):
    correct = 0
    for start in range(0, len(x), batch):
        correct += int(np.sum(np.asarray(model.predict_on_batch(x[start:start + batch])).argmax(-1)
                              == y[start:start + batch]))
    return correct / len(x)


def run_supervised(data, args, seed):
    x_l, y_l, _, x_test, y_test = data
    model = backbone(args, "supervised")
    model.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(labeled_stream(x_l, y_l, args, seed), steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"supervised": accuracy(model, x_test, y_test)}


def run_pseudo_labels(data, args, seed):
    x_l, y_l, x_u, x_test, y_test = data
    model = backbone(args, "pseudo_labels")
    wrapper = PseudoLabelModel(model, t1=int(0.2 * args.steps), t2=int(0.6 * args.steps), alpha_f=1.0,
                               mode="hard", threshold=args.pl_threshold)
    wrapper.compile(keras.optimizers.Adam(args.lr))
    stream = tf.data.Dataset.zip((labeled_stream(x_l, y_l, args, seed), unlabeled_stream(x_u, args, seed, strong=False)))
    history = wrapper.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"pseudo_labels": accuracy(model, x_test, y_test),
            "pseudo_rate_last": float(history.history["pseudo_rate"][-1])}


def ns_noise(args, seed):
    """`(teacher_noise, student_noise)` of `noisy_student` (see the module docstring for why)."""
    teacher = {"augment": [_weak_layer(seed + 4)]}  # the supervised recipe
    student = {"augment": [_weak_layer(seed + 5)], **NS_MODEL_NOISE}
    if args.ns_ra_magnitude is not None:
        student["randaugment"] = (2, args.ns_ra_magnitude)
    return teacher, student


def run_noisy_student(data, args, seed):
    x_l, y_l, x_u, x_test, y_test = data
    # Epochs per round from the round's data size (round 0: the labeled images, rounds 1-2: labeled +
    # pseudo-labeled), rounded to the nearest so that each network gets about --steps steps.
    sizes = (len(x_l), len(x_l) + len(x_u), len(x_l) + len(x_u))
    epochs = [max(1, round(args.steps / steps_per_epoch(n, args.batch))) for n in sizes]

    def build(k, **noise):
        return backbone(args, f"ns_round_{k}", **noise)

    def compile_student(model):
        model.compile(optimizer=keras.optimizers.Adam(args.lr),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True))

    teacher_noise, student_noise = ns_noise(args, seed)
    with tempfile.TemporaryDirectory() as directory:
        rounds = noisy_student(build, None, (x_l, y_l), x_u, rounds=2, output_dir=directory, epochs=epochs,
                               batch_size=args.batch, mode=args.ns_mode, noise=student_noise,
                               teacher_noise=teacher_noise, compile_student=compile_student,
                               validation_data=(x_test, y_test), seed=seed, verbose=0)
    return {"noisy_student": rounds[-1]["accuracy"],
            "noisy_student_rounds": [r["accuracy"] for r in rounds],
            "noisy_student_steps": [e * steps_per_epoch(n, args.batch) for e, n in zip(epochs, sizes)]}


def run_mpl(data, args, seed):
    x_l, y_l, x_u, x_test, y_test = data
    teacher, student = backbone(args, "teacher"), backbone(args, "student")
    mpl = MetaPseudoLabels(teacher, student, uda_weight=1.0, uda_temperature=0.4, uda_threshold=0.8,
                           student_wait_steps=int(0.1 * args.steps), seed=seed)
    mpl.compile(teacher_optimizer=keras.optimizers.Adam(args.lr), student_optimizer=keras.optimizers.Adam(args.lr))
    stream = tf.data.Dataset.zip((labeled_stream(x_l, y_l, args, seed), unlabeled_stream(x_u, args, seed, strong=True)))
    mpl.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    mpl.finalize_student()
    before = accuracy(student, x_test, y_test)
    teacher_accuracy = accuracy(teacher, x_test, y_test)
    finetune_student(student, labeled_stream(x_l, y_l, args, seed + 10), epochs=1,
                     optimizer=keras.optimizers.Adam(args.lr / 10), steps_per_epoch=args.finetune_steps,
                     shuffle=False)
    return {"mpl": accuracy(student, x_test, y_test), "mpl_no_finetune": before, "mpl_teacher": teacher_accuracy}


RUNNERS = {"supervised": run_supervised, "pseudo_labels": run_pseudo_labels, "noisy_student": run_noisy_student,
           "mpl": run_mpl}


def load(args, seed):
    """`(x_l, y_l, x_u, x_test, y_test)`: float32 images in [0, 255], int labels."""
    (x_train, y_train), (x_test, y_test) = load_digits(IMAGE_SIZE)
    indices = labeled_indices(y_train, args.labels // CLASSES, seed=seed)
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")
    x_u = x_train if args.unlabeled is None else x_train[:args.unlabeled]
    return x_train[indices], y_train[indices].astype("int64"), x_u, x_test, y_test.astype("int64")


def _stats(values):
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "per_seed": values}


def run(args):
    per_seed, extras, seconds = {}, {}, {m: 0.0 for m in args.methods}
    for seed in range(args.seeds):
        data = load(args, seed)
        for method in args.methods:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            out = RUNNERS[method](data, args, seed)
            seconds[method] += time.perf_counter() - start
            for key, value in out.items():
                (per_seed if key in ROWS or key == "mpl_teacher" else extras).setdefault(key, []).append(value)
            print(f"seed {seed} {method}: " + ", ".join(f"{k}={v:.3f}" for k, v in out.items()
                                                       if isinstance(v, float)), flush=True)
    return {
        "task": f"UCI digits at {IMAGE_SIZE} px, {args.labels} labels ({args.labels // CLASSES} per class), "
                + ("unlabeled = all 1,437 training images" if args.unlabeled is None
                   else f"unlabeled = the first {args.unlabeled} training images") + ", test = 360 images",
        "backbone": f"ResNet18(stem='cifar', stem_pool=None, stem_width={args.stem_width}, "
                    f"planes={tuple(args.planes)})",
        "budget": f"{args.steps} Adam({args.lr}) steps per network, labeled batch {args.batch}, unlabeled batch "
                  f"{args.batch * args.mu}; Noisy Student trains 3 networks in sequence, MPL 2 at once plus "
                  f"{args.finetune_steps} finetuning steps",
        "seeds": list(range(args.seeds)),
        "quick": bool(args.quick),
        "config": {"labels": args.labels, "unlabeled": args.unlabeled, "steps": args.steps, "finetune_steps": args.finetune_steps,
                   "batch": args.batch, "mu": args.mu, "lr": args.lr, "pl_threshold": args.pl_threshold,
                   "randaugment": [2, args.ra_magnitude],
                   "noisy_student": {"mode": args.ns_mode, "teacher_noise": "translation",
                                     "student_noise": {"translation": True, **NS_MODEL_NOISE,
                                                       "randaugment": None if args.ns_ra_magnitude is None
                                                       else [2, args.ns_ra_magnitude]}}},
        "accuracy": {key: _stats(values) for key, values in per_seed.items()},
        "extras": extras,
        "seconds": seconds,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
    }


def markdown(result):
    lines = [f"Few-label digits: {result['task']}.", "",
             f"Backbone: {result['backbone']}. Budget: {result['budget']}.", "",
             f"| Method | Test accuracy (mean ± std, {len(result['seeds'])} seeds) | Per seed | Wall time (s, all seeds) |",
             "|---|---|---|---|"]
    seconds = result["seconds"]
    for key in (*ROWS, "mpl_teacher"):
        if key not in result["accuracy"]:
            continue
        row = result["accuracy"][key]
        title = TITLES.get(key, "MPL teacher (not finetuned)")
        method = "mpl" if key.startswith("mpl") else key
        per_seed = ", ".join(f"{100 * v:.1f}" for v in row["per_seed"])
        time_cell = f"{seconds[method]:.0f}" if key == method else "(same run)"
        lines.append(f"| {title} | {100 * row['mean']:.1f} ± {100 * row['std']:.1f} % | {per_seed} | {time_cell} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = run(args)
    text = markdown(result)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as file:
            file.write(text)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
