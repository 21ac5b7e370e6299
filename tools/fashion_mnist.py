"""Fashion-MNIST supervised results: the `fashion_mnist_*` recipes trained by `keras-cnn train`'s job,
next to the public benchmark table, with the time to reach 93 % test accuracy.

Trains a recipe (default `fashion_mnist_resnet18`) for each seed with `keras_cnn.jobs.train`
(the same job as `keras-cnn train`, one run directory per seed), or summarises finished run
directories (`--run DIR`, repeatable). From each run's `history.csv` (per-epoch validation on
the 10,000 test images; `epoch_seconds` / `train_seconds` are the training steps' wall time,
validation excluded) and `results.json` it reports the final test accuracy, the training time,
and the time to the first epoch at or above `--target` (93 %) test accuracy.

`--baseline` also trains the same network the way a plain keras.applications user would (issue
16's time-to-accuracy comparison): Keras' own layers (`plain_keras_copy`: keras_cnn's fused
`BatchNormalization`, `GroupedConv2D`, `DropPath` and SiLU swapped back for Keras'), none of the recipe's
tricks (no zero-γ, warmup, cosine, label smoothing, weight decay or augmentation), float32, and
`model.fit`'s defaults: `compile(optimizer="adam")` (learning rate 1e-3), batch 32, shuffled,
for `--baseline-epochs` epochs, validated on the test set after each; its training time excludes
validation, as the recipe's `train_seconds` does. With `--run`, only the baseline is trained.

Public reference (github.com/zalandoresearch/fashion-mnist, README "Benchmark", test accuracy of
submitted models, training budgets not comparable): `REFERENCE`.

    python tools/fashion_mnist.py --json benchmarks/fashion_mnist.json --markdown benchmarks/fashion_mnist.md
    python tools/fashion_mnist.py --run runs/fashion_mnist_resnet18 --markdown /dev/stdout
    python tools/fashion_mnist.py --baseline --json benchmarks/fashion_mnist.json --markdown benchmarks/fashion_mnist.md
"""

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cnn.utils.argtypes import positive_int  # noqa: E402

# zalandoresearch/fashion-mnist README, "Benchmark" (test accuracy, %).
REFERENCE = (
    ("WRN-40-4 (8.9 M params)", 96.7),
    ("DenseNet-BC 768K params", 95.4),
    ("MobileNet", 95.0),
    ("ResNet-18", 94.9),
    ("GoogLeNet with cross-entropy loss", 93.7),
    ("VGG-16 (26 M params)", 93.5),
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="fashion_mnist_resnet18", help="the recipe to train")
    parser.add_argument("--seeds", type=positive_int, default=1, help="seeds 0 .. seeds-1 (one run each)")
    parser.add_argument("--runs-dir", default="runs/fashion_mnist", help="where the run directories go")
    parser.add_argument("--run", action="append", default=[], help="summarise this finished run (no training)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--data-dir", help="directory of the four Fashion-MNIST files (default: Debian's)")
    parser.add_argument("--target", type=float, default=0.93, help="test accuracy for the time-to-accuracy figure")
    parser.add_argument("--baseline", action="store_true",
                        help="also train the plain Keras baseline (Keras' layers, Adam, batch 32, float32, no tricks)")
    parser.add_argument("--baseline-epochs", type=positive_int, default=12, help="the baseline's epochs")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the markdown table here")
    args = parser.parse_args(argv)
    if not 0 < args.target < 1:
        parser.error(f"--target must be in (0, 1), received {args.target}")
    return args


def read_history(path):
    """Rows of a run's `history.csv` as dicts of floats (epoch as int)."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""} for row in rows]


def time_to_accuracy(history, target):
    """`(epoch, training seconds)` of the first epoch whose `val_accuracy` >= target, or `None`."""
    for row in history:
        if row.get("val_accuracy", -1.0) >= target:
            return row["epoch"] + 1, row.get("train_seconds")
    return None


def summarise_run(directory, target):
    with open(os.path.join(directory, "results.json")) as file:
        results = json.load(file)
    from keras_cnn.training.config import resolve_config

    with open(os.path.join(directory, "config.json")) as file:
        # Nested (sections) since the typed configs, flat before: either reads as flat keys.
        config = resolve_config(json.load(file))
    history = read_history(os.path.join(directory, "history.csv"))
    reached = time_to_accuracy(history, target)
    return {
        "run": directory,
        "recipe_model": results.get("recipe_model"),
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        "epochs": results["epochs"],
        "train_seconds": results["train_seconds"],
        "steps_seconds": history[-1].get("train_seconds") if history else None,
        "target": target,
        "target_epoch": reached[0] if reached else None,
        "target_seconds": reached[1] if reached else None,
        "val_accuracy": [row.get("val_accuracy") for row in history],
        "precision": results.get("precision"),
        "config": {k: config.get(k) for k in ("model", "model_args", "epochs", "batch_size", "learning_rate",
                                                "weight_decay", "weight_decay_mode", "label_smoothing",
                                                "random_erasing", "precision", "seed")},
    }


def train_runs(args):
    from keras_cnn.jobs import train
    from keras_cnn.training import config as config_lib

    directories = []
    for seed in range(args.seeds):
        cfg = config_lib.apply_overrides(config_lib.load_recipe(args.recipe), [*args.set, f"seed={seed}"])
        directory = os.path.join(args.runs_dir, f"{args.recipe}_seed{seed}")
        start = time.perf_counter()
        train(cfg, output_dir=directory, data_dir=args.data_dir, verbose=2)
        print(f"seed {seed}: {directory} in {time.perf_counter() - start:.0f} s", flush=True)
        directories.append(directory)
    return directories


def plain_keras_copy(model):
    """`model`'s architecture, freshly initialised, with Keras' own layers in place of keras_cnn's:
    `keras.layers.BatchNormalization` for keras_cnn's fused one, `keras.layers.Conv2D` for
    `GroupedConv2D`, `keras.layers.Dropout` with a per-sample noise shape for `DropPath` (as
    keras.applications' EfficientNet drops paths), and Keras' `"silu"` for keras_cnn's (same
    configs, same computation). Layers Keras has no counterpart of (`LocalResponseNormalization`)
    stay keras_cnn's.

    Args:
        model: A keras_cnn functional model.

    Returns:
        A new `keras.Model`.
    """
    from keras_cnn.layers.activations import silu
    from keras_cnn.layers.batch_norm import BatchNormalization
    from keras_cnn.layers.drop_path import DropPath
    from keras_cnn.layers.grouped_conv import GroupedConv2D

    swaps = {BatchNormalization: keras.layers.BatchNormalization, GroupedConv2D: keras.layers.Conv2D}

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, DropPath):
            rank = len(layer.input.shape)
            return keras.layers.Dropout(layer.rate, noise_shape=(None,) + (1,) * (rank - 1), seed=layer.seed,
                                        name=layer.name)
        if getattr(layer, "activation", None) is silu:
            config["activation"] = "silu"
        return swaps.get(type(layer), type(layer)).from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def train_baseline(args):
    """Trains the plain Keras baseline of `args.recipe`'s network (module docstring) and summarises
    it as `summarise_run` does a recipe run."""
    from keras_cnn.data import load_fashion_mnist
    from keras_cnn.registry import create_model
    from keras_cnn.training import config as config_lib
    from keras_cnn.training.callbacks import EpochTimer

    cfg = config_lib.resolve_config(config_lib.apply_overrides(config_lib.load_recipe(args.recipe), args.set))
    model_args = {k: v for k, v in cfg.model_args.items() if k != "zero_gamma"}  # a trick, not the network
    keras.config.set_dtype_policy("float32")  # the recipe run before it leaves its own policy set
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data_dir)
    size = x_train.shape[1]
    model = plain_keras_copy(create_model(cfg.model, classes=10, input_shape=(size, size, 3), **model_args))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # EpochTimer: the job's own clock, so both rows time the training steps alike.
    logs = model.fit(np.asarray(x_train, "float32"), y_train, epochs=args.baseline_epochs,
                     validation_data=(np.asarray(x_test, "float32"), y_test), callbacks=[EpochTimer()],
                     verbose=2).history
    history = [{"epoch": epoch, **{k: float(v[epoch]) for k, v in logs.items()}} for epoch in range(len(logs["loss"]))]
    reached = time_to_accuracy(history, args.target)
    final = history[-1]
    return {
        "run": "baseline",
        "recipe_model": cfg.model,
        "test_accuracy": final["val_accuracy"],
        "best_test_accuracy": max(row["val_accuracy"] for row in history),
        "test_loss": final["val_loss"],
        "epochs": args.baseline_epochs,
        "train_seconds": final["train_seconds"],
        "steps_seconds": final["train_seconds"],
        "target": args.target,
        "target_epoch": reached[0] if reached else None,
        "target_seconds": reached[1] if reached else None,
        "val_accuracy": [row["val_accuracy"] for row in history],
        "epoch_seconds": [row["epoch_seconds"] for row in history],
        "precision": "float32",
        "config": {"model": cfg.model, "model_args": model_args, "epochs": args.baseline_epochs, "batch_size": 32,
                   "optimizer": "adam", "learning_rate": 1e-3, "precision": "float32", "seed": 0,
                   "layers": "keras.layers (plain_keras_copy)"},
    }


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def run(args):
    directories = args.run or train_runs(args)
    runs = [summarise_run(d, args.target) for d in directories]
    result = {
        "recipe": args.recipe if not args.run else sorted({r["recipe_model"] for r in runs}),
        "target": args.target,
        "runs": runs,
        "test_accuracy": _stats([r["test_accuracy"] for r in runs]),
        "train_seconds": _stats([r["train_seconds"] for r in runs]),
        "target_seconds": _stats([r["target_seconds"] for r in runs]),
        "reached_target": sum(r["target_seconds"] is not None for r in runs),
        "reference": [{"model": m, "test_accuracy": a} for m, a in REFERENCE],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    if args.baseline:
        result["baseline"] = train_baseline(args)
    return result


def _reached_cell(run):
    """The time-to-target cell: minutes of training steps and the epoch, or "not reached"."""
    if run["target_seconds"] is None:
        return "not reached"
    return f"{run['target_seconds'] / 60:.1f} (epoch {run['target_epoch']})"


def markdown(result):
    runs = result["runs"]
    target = 100 * result["target"]
    lines = [f"| Model | Test accuracy (%) | Training steps (min) | Training incl. per-epoch test (min) "
             f"| Time to {target:.0f} % (steps min, epoch) |",
             "|---|---|---|---|---|"]
    for r in runs:
        reached = _reached_cell(r)
        steps = "" if r["steps_seconds"] is None else f"{r['steps_seconds'] / 60:.1f}"
        lines.append(f"| keras_cnn `{r['recipe_model']}` {r['config']['model_args'].get('planes', '')}, "
                     f"{r['epochs']} epochs, seed {r['config']['seed']} (this machine) | "
                     f"{100 * r['test_accuracy']:.2f} | {steps} | {r['train_seconds'] / 60:.1f} | {reached} |")
    baseline = result.get("baseline")
    if baseline:
        reached = _reached_cell(baseline)
        lines.append(f"| plain Keras baseline: same network, Keras' layers, Adam 1e-3, batch 32, float32, no "
                     f"tricks, {baseline['epochs']} epochs (best epoch {100 * baseline['best_test_accuracy']:.2f}) | "
                     f"{100 * baseline['test_accuracy']:.2f} | {baseline['steps_seconds'] / 60:.1f} | | {reached} |")
    for model, accuracy in REFERENCE:
        lines.append(f"| {model} (public benchmark table) | {accuracy:.1f} | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = run(args)
    text = markdown(result)
    if args.markdown != "/dev/stdout":
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
