"""TwoMoon: Supervised vs Pseudo-Labels vs Meta Pseudo Labels with 6 labeled points (issue 6,
"Reproductions"; the MPL paper's Figure 2, Pham et al. 2021, and the seeds' MPL review).

Data: `sklearn.datasets.make_moons` with 2,000 points (1,000 per class, Gaussian noise
`--noise`, 0.08 by default), seeded per run (seeds 100.. by default, never used while the
defaults were chosen); 3 points per class are labeled (drawn at random with the run's seed),
every point is in the unlabeled set (the UDA / MPL convention). The inputs are standardised with
the mean and std of all 2,000 points (no labels involved).

The three methods share one MLP architecture (`--hidden` units x `--depth` ReLU layers,
logits out) and the same number of optimizer steps (`--steps`), Adam at `--lr`:

- **Supervised**: the MLP trained on the 6 labeled points only (full batch).
- **Pseudo-Labels**: Lee 2013's joint training (`keras_cnn.ssl.pseudo_labels.PseudoLabelModel`):
  each step sees the 6 labeled points and `--unlabeled-batch` unlabeled ones, loss
  `CE_labeled + alpha(t) * CE(own argmax)`, alpha ramping 0 -> `--pl-alpha` between 10 %
  and 40 % of the steps (the paper's 100 / 600 epochs, scaled), hard labels, no threshold.
- **MPL**: `keras_cnn.ssl.mpl.MetaPseudoLabels` with a teacher and a student MLP and the
  library's default options (`--mpl-option NAME=VALUE` overrides one: no per-seed tuning). For
  2-D points the "weak" view is the clean point and the "strong" view the point plus Gaussian
  jitter of std `--jitter` (0.2, in standardised units): a stand-in for RandAugment, the only
  augmentation that makes sense for points in the plane. The strong view's spread is what lets
  the teacher's labels (and the UDA term) propagate along each moon. The teacher gets its
  supervised loss, the MPL feedback and the UDA term; the reported accuracy is the *student's*
  (the model MPL delivers), the teacher's is in the JSON too.

Accuracy is measured on all 2,000 points. The tool prints mean +- std and the per-seed
values, optionally writes the decision boundaries of the first seed (`--figure`, 3 panels,
labeled points marked; needs matplotlib, imported only then) and a JSON (`--json`).

    python tools/ssl_twomoon.py --figure benchmarks/twomoon.png --json benchmarks/twomoon.json
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

from keras_cnn.ssl.mpl import MetaPseudoLabels  # noqa: E402
from keras_cnn.ssl.pseudo_labels import PseudoLabelModel  # noqa: E402
from keras_cnn.utils.argtypes import name_value, non_negative_float, positive_int  # noqa: E402

METHODS = ("supervised", "pseudo_labels", "mpl")
LABELS = {"supervised": "Supervised", "pseudo_labels": "Pseudo-Labels", "mpl": "Meta Pseudo Labels"}
NUM_POINTS = 2000
LABELED_PER_CLASS = 3
SOLVED = 0.95  # accuracy at which a seed counts as having found both moons


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=positive_int, default=10, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=100,
                        help="seeds are first-seed .. first-seed+seeds-1 (100..: never used while developing)")
    parser.add_argument("--noise", type=non_negative_float, default=0.08, help="make_moons noise")
    parser.add_argument("--steps", type=positive_int, default=1500, help="optimizer steps per method")
    parser.add_argument("--hidden", type=positive_int, default=64, help="units per hidden layer")
    parser.add_argument("--depth", type=positive_int, default=2, help="hidden layers")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (all models)")
    parser.add_argument("--unlabeled-batch", type=positive_int, default=128)
    parser.add_argument("--pl-alpha", type=non_negative_float, default=3.0, help="final pseudo-label weight")
    parser.add_argument("--jitter", type=non_negative_float, default=0.2,
                        help="std of the MPL strong view's Gaussian jitter (standardised units)")
    parser.add_argument("--mpl-option", action="append", default=[], type=name_value, metavar="NAME=VALUE",
                        help="override a MetaPseudoLabels argument (default: none, the library's defaults), "
                             "e.g. --mpl-option uda_threshold=None")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--figure", help="write the decision-boundary PNG of the first seed here")
    parser.add_argument("--json", help="write the results as JSON here")
    args = parser.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        parser.error(f"--methods must be a subset of {','.join(METHODS)}, received {args.methods!r}")
    args.methods = methods
    args.mpl_options = dict(args.mpl_option)
    return args


def make_data(seed, noise):
    """`(x [2000, 2] float32 standardised, y [2000] int32, labeled indices [6])` of one seed."""
    from sklearn.datasets import make_moons

    x, y = make_moons(NUM_POINTS, noise=noise, random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    rng = np.random.default_rng(seed)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), LABELED_PER_CLASS, replace=False)
                              for c in (0, 1)])
    return x, y.astype("int32"), np.sort(labeled)


def mlp(hidden, depth, name):
    """The shared architecture: `depth` ReLU layers of `hidden` units, 2 logits."""
    inputs = keras.Input((2,))
    h = inputs
    for i in range(depth):
        h = keras.layers.Dense(hidden, activation="relu", name=f"dense_{i}")(h)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(h), name=name)


def _unlabeled(x, batch, seed, views=None):
    dataset = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed).repeat().batch(batch)
    return dataset if views is None else dataset.map(views)


def _labeled(x, y):
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def train_supervised(x, y, labeled, args, seed):
    keras.utils.set_random_seed(seed)
    model = mlp(args.hidden, args.depth, "supervised")
    model.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_labeled(x[labeled], y[labeled]), steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"model": model}


def train_pseudo_labels(x, y, labeled, args, seed):
    keras.utils.set_random_seed(seed)
    model = mlp(args.hidden, args.depth, "pseudo_labels")
    wrapper = PseudoLabelModel(model, t1=int(0.1 * args.steps), t2=int(0.4 * args.steps), alpha_f=args.pl_alpha,
                               mode="hard", threshold=None)
    wrapper.compile(keras.optimizers.Adam(args.lr))
    data = tf.data.Dataset.zip((_labeled(x[labeled], y[labeled]), _unlabeled(x, args.unlabeled_batch, seed)))
    history = wrapper.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"model": model, "pseudo_rate": float(history.history["pseudo_rate"][-1])}


def train_mpl(x, y, labeled, args, seed):
    keras.utils.set_random_seed(seed)
    teacher = mlp(args.hidden, args.depth, "teacher")
    student = mlp(args.hidden, args.depth, "student")
    jitter = float(args.jitter)

    def views(points):
        # Weak view: the clean point; strong view: Gaussian jitter (RandAugment's stand-in in 2-D).
        return points, points + tf.random.normal(tf.shape(points), stddev=jitter)

    # The library's defaults (UDA weight 1, temperature 0.4, the release's sharpened >= 0.8 mask,
    # sampled pseudo-labels, baseline 0.99, no wait) unless --mpl-option overrides one.
    mpl = MetaPseudoLabels(teacher, student, seed=seed, **args.mpl_options)
    mpl.compile(teacher_optimizer=keras.optimizers.Adam(args.lr), student_optimizer=keras.optimizers.Adam(args.lr))
    data = tf.data.Dataset.zip((_labeled(x[labeled], y[labeled]), _unlabeled(x, args.unlabeled_batch, seed, views)))
    history = mpl.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    return {"model": student, "teacher": teacher,
            "feedback_mean": float(history.history["feedback"][-1])}


TRAINERS = {"supervised": train_supervised, "pseudo_labels": train_pseudo_labels, "mpl": train_mpl}


def accuracy(model, x, y):
    return float(np.mean(np.asarray(model.predict_on_batch(x)).argmax(-1) == y))


def run(args):
    """Trains every method on every seed; returns the result dict (and the first seed's models)."""
    per_seed = {m: [] for m in args.methods}
    extra = {"mpl_teacher": []}
    first = None
    seconds = {m: 0.0 for m in args.methods}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        x, y, labeled = make_data(seed, args.noise)
        models = {}
        for method in args.methods:
            start = time.perf_counter()
            out = TRAINERS[method](x, y, labeled, args, seed)
            seconds[method] += time.perf_counter() - start
            per_seed[method].append(accuracy(out["model"], x, y))
            if method == "mpl":
                extra["mpl_teacher"].append(accuracy(out["teacher"], x, y))
            models[method] = out["model"]
        if first is None:
            first = (x, y, labeled, models)
    if "mpl" in args.methods:
        per_seed["mpl_teacher"] = extra["mpl_teacher"]
    summary = {m: {"mean": statistics.fmean(v), "std": statistics.pstdev(v) if len(v) > 1 else 0.0,
                   "seeds_at_least_95": seeds_at_least(v), "per_seed": v} for m, v in per_seed.items()}
    result = {
        "task": "two moons, 2,000 points (1,000 per class), 6 labeled (3 per class)",
        "accuracy_on": "all 2,000 points",
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "config": {"noise": args.noise, "steps": args.steps, "hidden": args.hidden, "depth": args.depth,
                   "optimizer": f"Adam({args.lr})", "unlabeled_batch": args.unlabeled_batch,
                   "pl_alpha": args.pl_alpha, "pl_ramp": [int(0.1 * args.steps), int(0.4 * args.steps)],
                   "mpl_views": f"weak = clean point, strong = point + N(0, {args.jitter}^2) jitter",
                   "mpl_options": args.mpl_options or "library defaults"},
        "accuracy": summary,
        "seconds": seconds,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
    }
    return result, first


def seeds_at_least(per_seed, target=SOLVED):
    """How many seeds reached `target` accuracy (the issue's criterion: MPL >= 95 % on 9 of 10)."""
    return sum(value >= target for value in per_seed)


def table(result):
    lines = [f"{result['task']}; accuracy on {result['accuracy_on']}, seeds {result['seeds']}",
             f"{'method':<24} {'mean':>7} {'std':>6} {'>=95%':>6}   per seed"]
    for name, row in result["accuracy"].items():
        label = "MPL teacher" if name == "mpl_teacher" else LABELS[name]
        values = " ".join(f"{100 * v:5.1f}" for v in row["per_seed"])
        solved = f"{seeds_at_least(row['per_seed'])}/{len(row['per_seed'])}"
        lines.append(f"{label:<24} {100 * row['mean']:6.1f}% {100 * row['std']:5.1f} {solved:>6}   {values}")
    return "\n".join(lines)


def save_figure(path, first, result, resolution=200):
    """Decision boundaries of the first seed's models, one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, labeled, models = first
    pad = 0.5
    xs = np.linspace(x[:, 0].min() - pad, x[:, 0].max() + pad, resolution)
    ys = np.linspace(x[:, 1].min() - pad, x[:, 1].max() + pad, resolution)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype("float32")
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False)
    for ax, (method, model) in zip(axes[0], models.items()):
        logits = np.asarray(model.predict_on_batch(grid))
        prob = tf.nn.softmax(logits, -1).numpy()[:, 1].reshape(resolution, resolution)
        ax.contourf(xs, ys, prob, levels=[0, 0.5, 1], colors=["#c6dbef", "#fcbba1"], alpha=0.8)
        ax.contour(xs, ys, prob, levels=[0.5], colors="k", linewidths=1)
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "#cb181d", "#2171b5"), s=2, alpha=0.35, linewidths=0)
        ax.scatter(x[labeled, 0], x[labeled, 1], c=np.where(y[labeled] == 1, "#cb181d", "#2171b5"), s=140,
                   marker="*", edgecolors="k", linewidths=1.0, label="labeled")
        acc = result["accuracy"][method]["per_seed"][0]
        ax.set_title(f"{LABELS[method]}: {100 * acc:.1f}%")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Two moons, 6 labeled points (stars), seed {result['seeds'][0]}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result, first = run(args)
    print(table(result))
    if args.figure:
        save_figure(args.figure, first, result)
        print(f"figure: {args.figure}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
