"""Robustness to common corruptions (issue 7; Noisy Student's ImageNet-C claim, at digits scale).

Evaluates models on corrupted copies of an evaluation set: every corruption of
`keras_cnn.data.corruptions.CORRUPTIONS` at severities 1-5 (ImageNet-C's protocol, Hendrycks &
Dietterich 2019), and reports

- clean accuracy, accuracy per corruption x severity, and the mean corruption accuracy (mCA:
  the mean over corruptions and severities);
- ImageNet-C's corruption error normalised by a baseline model: CE_c = sum_s E_{s,c} / sum_s
  E^base_{s,c}, mCE = mean_c CE_c (the baseline has 100 %), and the relative mCE, which
  normalises the *degradation* sum_s (E_{s,c} - E_clean) by the baseline's (corruptions the
  baseline is not hurt by, denominator <= 0, are left out of that mean and listed).

Two modes:

- default: on the embedded digits, trains the methods of `tools/ssl_benchmark.py --dataset digits` (supervised on
  `--labels` labels vs Noisy Student with the labeled + all 1,437 training images as unlabeled
  data; `--methods` takes any of its methods) with *its* backbone, data and current defaults,
  per seed, and evaluates each trained network on the 360 test images at 16 px. The baseline
  of mCE is `supervised`. The networks are those `ssl_benchmark.backbone` built during each run
  (the last one: the supervised network, Noisy Student's last student, MPL's student);
- `--model a.keras [--model b.keras ...]`: evaluates saved models on the digits test split at
  the model's input size (baseline: the first model).

    python tools/robustness.py --json benchmarks/robustness.json --markdown benchmarks/robustness.md
    python tools/robustness.py --model runs/a/model.keras --model runs/b/model.keras
    python tools/robustness.py --quick        # smoke settings (tests)
"""

import argparse
import importlib.util
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

from keras_cnn.data import load_digits  # noqa: E402
from keras_cnn.data.corruptions import CORRUPTIONS, NUM_SEVERITIES, SEVERITIES, corrupt  # noqa: E402
from keras_cnn.utils.argtypes import positive_int  # noqa: E402

DEFAULT_METHODS = ("supervised", "noisy_student")
BASELINE = "supervised"
# --quick: ssl_benchmark's own --quick training settings on fewer unlabeled and test images.
QUICK = {"seeds": 1, "unlabeled_examples": 32, "eval_examples": 40}
SEVERITY_RANGE = tuple(range(1, NUM_SEVERITIES + 1))


def _load_ssl_benchmark():
    """`tools/ssl_benchmark.py` as a private module (the tools are scripts, not a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssl_benchmark.py")
    spec = importlib.util.spec_from_file_location("keras_cnn_tool_robustness_ssl_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    # Registered so that autograph, which looks functions' modules up there, converts its
    # `tf.data` map functions instead of warning and running them unconverted.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[],
                        help="a .keras model to evaluate (repeatable; the first is the mCE baseline); "
                             "without it the tool trains --methods on the digits")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated tools/ssl_benchmark.py --dataset digits methods to train and compare; must include "
                             f"{BASELINE!r} (the mCE baseline)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="training seeds 0 .. seeds-1")
    parser.add_argument("--labels", type=positive_int, help="labels in total (default: ssl_benchmark's digits default)")
    parser.add_argument("--steps", type=positive_int, help="optimizer steps per network (default: ssl_benchmark's digits profile)")
    parser.add_argument("--unlabeled-examples", type=positive_int,
                        help="use only the first N training images as unlabeled data (default: all 1,437)")
    parser.add_argument("--eval-examples", type=positive_int, help="evaluate on the first N test images (default: all)")
    parser.add_argument("--corruptions", default=",".join(CORRUPTIONS),
                        help="comma-separated subset of " + ",".join(CORRUPTIONS))
    parser.add_argument("--corruption-seed", type=int, default=0, help="seed of the random corruptions")
    parser.add_argument("--quick", action="store_true",
                        help="smoke settings: ssl_benchmark --quick training and " + json.dumps(QUICK))
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the markdown tables here")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    corruptions = tuple(c.strip() for c in args.corruptions.split(",") if c.strip())
    if not corruptions or any(c not in CORRUPTIONS for c in corruptions):
        parser.error(f"--corruptions must be a subset of {','.join(CORRUPTIONS)}, received {args.corruptions!r}")
    args.corruptions = corruptions
    if args.corruption_seed < 0:
        parser.error(f"--corruption-seed must be >= 0, received {args.corruption_seed}")
    args.methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not args.model and BASELINE not in args.methods:
        parser.error(f"--methods must include {BASELINE!r} (the mCE baseline), received {','.join(args.methods)!r}")
    return args


# --- evaluation ----------------------------------------------------------------------------------


def corrupted_sets(x, corruptions, seed):
    """`{(name, severity): images}` for every corruption and severity (float32 NumPy)."""
    return {(name, severity): corrupt(x, name, severity, seed).numpy()
            for name in corruptions for severity in SEVERITY_RANGE}


def accuracy(model, x, y, batch=256):
    correct = 0
    for start in range(0, len(x), batch):
        logits = np.asarray(model.predict_on_batch(x[start:start + batch]))
        correct += int(np.sum(logits.argmax(-1) == y[start:start + batch]))
    return correct / len(x)


def evaluate(model, x, y, sets):
    """Clean accuracy, `{corruption: [accuracy at severity 1..5]}` and the mCA of one model."""
    table = {}
    for (name, severity), images in sets.items():
        table.setdefault(name, [None] * NUM_SEVERITIES)[severity - 1] = accuracy(model, images, y)
    return {"clean": accuracy(model, x, y), "corruptions": table,
            "mca": statistics.fmean(a for row in table.values() for a in row)}


def corruption_errors(result, baseline):
    """ImageNet-C's CE and relative CE per corruption (in %) against `baseline`'s result, and
    their means: `mce`, `relative_mce` (over the corruptions that hurt the baseline, or None),
    `relative_left_out` (those that did not)."""
    ce, relative, left_out = {}, {}, []
    base_clean_error, clean_error = 1 - baseline["clean"], 1 - result["clean"]
    for name, accuracies in result["corruptions"].items():
        errors = [1 - a for a in accuracies]
        base_errors = [1 - a for a in baseline["corruptions"][name]]
        ce[name] = 100 * sum(errors) / sum(base_errors) if sum(base_errors) > 0 else None
        degradation = sum(e - base_clean_error for e in base_errors)
        if degradation > 0:
            relative[name] = 100 * sum(e - clean_error for e in errors) / degradation
        else:
            left_out.append(name)
    defined = [v for v in ce.values() if v is not None]
    return {"ce": ce, "mce": statistics.fmean(defined) if defined else None,
            "relative_ce": relative, "relative_mce": statistics.fmean(relative.values()) if relative else None,
            "relative_left_out": left_out}


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "per_seed": values}


# --- the two modes -------------------------------------------------------------------------------


def train_method(ssl, method, data, ssl_args, seed):
    """Runs `ssl_benchmark.RUNNERS[method]` and returns `(trained network, its reported figures)`.

    The network is the last one `ssl_benchmark.backbone` built during the run (the runners return
    figures, not models); `ssl` is this tool's private copy of the module, so the wrapper
    affects nobody else.
    """
    built, original = [], ssl.backbone

    def capturing_backbone(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    ssl.backbone = capturing_backbone
    try:
        keras.utils.set_random_seed(seed)
        reported = ssl.RUNNERS[method](data, ssl_args, seed)
    finally:
        ssl.backbone = original
    if not built:
        raise RuntimeError(f"tools/ssl_benchmark.py --dataset digits's {method!r} runner built no network through `backbone`")
    return built[-1], reported


def _ssl_args(ssl, args):
    forward = ["--dataset", "digits"] + (["--quick"] if args.quick else [])
    forward += ["--labels", str(args.labels)] if args.labels else []
    forward += ["--steps", str(args.steps)] if args.steps else []
    # The runners' own reported accuracy is then on the same images as this tool's clean accuracy.
    forward += ["--test", str(args.eval_examples)] if args.eval_examples else []
    forward += ["--unlabeled", str(args.unlabeled_examples)] if args.unlabeled_examples else []
    ssl_args = ssl.parse_args(forward)
    unknown = [m for m in args.methods if m not in ssl.METHODS]
    if unknown:
        raise SystemExit(f"--methods must be a subset of {','.join(ssl.METHODS)}, received {','.join(args.methods)!r}")
    return ssl_args


def run_digits(args):
    ssl = _load_ssl_benchmark()
    ssl_args = _ssl_args(ssl, args)
    per_seed = {method: [] for method in args.methods}
    reported, seconds = {method: [] for method in args.methods}, {method: 0.0 for method in args.methods}
    for seed in range(args.seeds):
        x_l, y_l, x_u, x_test, y_test = ssl.load(ssl_args, seed)
        x_u, x_test, y_test = x_u[:args.unlabeled_examples], x_test[:args.eval_examples], y_test[:args.eval_examples]
        sets = corrupted_sets(x_test, args.corruptions, args.corruption_seed)
        for method in args.methods:
            start = time.perf_counter()
            model, figures = train_method(ssl, method, (x_l, y_l, x_u, x_test, y_test), ssl_args, seed)
            seconds[method] += time.perf_counter() - start
            result = evaluate(model, x_test, y_test, sets)
            per_seed[method].append(result)
            reported[method].append(figures.get(method))
            print(f"seed {seed} {method}: clean {result['clean']:.3f} (ssl_benchmark reported "
                  f"{figures.get(method, float('nan')):.3f}), mCA {result['mca']:.3f}", flush=True)
            keras.backend.clear_session()
    keys = ("labels_per_class", "unlabeled", "steps", "batch", "mu", "lr", "ra_magnitude", "ns_mode",
            "ns_ra_magnitude", "stem_width", "planes")  # whichever of these ssl_benchmark has
    config = {key: getattr(ssl_args, key) for key in keys if hasattr(ssl_args, key)}
    return {
        "mode": "digits",
        "task": f"UCI digits at {ssl_args.image_size} px, {10 * ssl_args.labels_per_class[0]} labels, unlabeled = "
                f"{len(x_u)} training images, evaluation = {len(x_test)} test images",
        "training": "tools/ssl_benchmark.py --dataset digits runners at its current defaults unless overridden: " + json.dumps(
            {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}),
        "reported_clean_accuracy": reported,
        "seconds": seconds,
        **summarise(per_seed, args.methods[args.methods.index(BASELINE)], args),
    }


def run_models(args):
    names, per_seed = [], {}
    for path in args.model:
        model = keras.models.load_model(path, compile=False)
        size = model.input_shape[1] or 32
        _, (x_test, y_test) = load_digits(size)
        x_test, y_test = x_test[:args.eval_examples].astype("float32"), y_test[:args.eval_examples]
        name = os.path.splitext(os.path.basename(path))[0]
        name = name if name not in per_seed else f"{name}_{len(names)}"
        names.append(name)
        per_seed[name] = [evaluate(model, x_test, y_test, corrupted_sets(x_test, args.corruptions,
                                                                         args.corruption_seed))]
        print(f"{name}: clean {per_seed[name][0]['clean']:.3f}, mCA {per_seed[name][0]['mca']:.3f}", flush=True)
    return {"mode": "models", "task": f"UCI digits test split, {len(x_test)} images, at each model's input size",
            "models": dict(zip(names, args.model)), **summarise(per_seed, names[0], args)}


def summarise(per_seed, baseline, args):
    """Per-method means over seeds of every figure, CE against `baseline` of the same seed."""
    seeds = len(per_seed[baseline])
    methods = {}
    for method, results in per_seed.items():
        errors = [corruption_errors(result, per_seed[baseline][i]) for i, result in enumerate(results)]
        methods[method] = {
            "clean_accuracy": _stats([r["clean"] for r in results]),
            "mca": _stats([r["mca"] for r in results]),
            "mce": _stats([e["mce"] for e in errors]),
            "relative_mce": _stats([e["relative_mce"] for e in errors]),
            "relative_left_out": sorted({name for e in errors for name in e["relative_left_out"]}),
            "corruptions": {
                name: {"accuracy": [statistics.fmean(r["corruptions"][name][s] for r in results)
                                    for s in range(NUM_SEVERITIES)],
                       "mean_accuracy": _stats([statistics.fmean(r["corruptions"][name]) for r in results]),
                       "ce": _stats([e["ce"][name] for e in errors])}
                for name in args.corruptions},
            "per_seed": results,
        }
    return {
        "baseline": baseline,
        "seeds": seeds,
        "corruption_seed": args.corruption_seed,
        "severities": {name: {"values": SEVERITIES[name].values, "meaning": SEVERITIES[name].meaning,
                              "source": SEVERITIES[name].source} for name in args.corruptions},
        "results": methods,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
    }


# --- output --------------------------------------------------------------------------------------


def _pm(stats, scale=100.0, unit=" %"):
    if stats is None:
        return "n/a"
    return f"{scale * stats['mean']:.1f} ± {scale * stats['std']:.1f}{unit}"


def markdown(result):
    methods = list(result["results"])
    first = result["results"][methods[0]]
    lines = [f"Robustness to common corruptions: {result['task']}.", ""]
    if "training" in result:
        lines += [f"Training: {result['training']}.", ""]
    lines += [f"Mean ± std over {result['seeds']} seed(s). mCA: mean accuracy over {len(first['corruptions'])} "
              f"corruptions x {NUM_SEVERITIES} severities. mCE / relative mCE: ImageNet-C's, normalised by "
              f"`{result['baseline']}` of the same seed (100 % by definition).", "",
              "| Model | Clean accuracy | mCA | mCE | Relative mCE |", "|---|---|---|---|---|"]
    for method in methods:
        row = result["results"][method]
        lines.append(f"| {method} | {_pm(row['clean_accuracy'])} | {_pm(row['mca'])} | {_pm(row['mce'], 1)} | "
                     f"{_pm(row['relative_mce'], 1)} |")
    left_out = sorted({n for m in methods for n in result["results"][m]["relative_left_out"]})
    if left_out:
        lines += ["", f"Left out of the relative mCE (the baseline was not hurt by them in some seed): "
                      f"{', '.join(left_out)}."]
    lines += ["", "Accuracy per corruption (mean over severities and seeds, %):", "",
              "| Corruption | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for name in first["corruptions"]:
        cells = [_pm(result["results"][m]["corruptions"][name]["mean_accuracy"], unit="") for m in methods]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for method in methods:
        lines += ["", f"`{method}`: accuracy (%) per corruption and severity (mean over seeds):", "",
                  "| Corruption | " + " | ".join(f"s{s}" for s in SEVERITY_RANGE) + " | CE (%) |",
                  "|---|" + "---|" * (NUM_SEVERITIES + 1)]
        for name, row in result["results"][method]["corruptions"].items():
            lines.append(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in row["accuracy"]) +
                         f" | {_pm(row['ce'], 1, '')} |")
    lines += ["", "Severity parameters (`keras_cnn.data.corruptions.SEVERITIES`):", "",
              "| Corruption | Severities 1-5 | Meaning | Source |", "|---|---|---|---|"]
    for name, row in result["severities"].items():
        values = ", ".join(str(tuple(round(x, 3) for x in v)) if isinstance(v, (tuple, list)) else f"{v:.3g}"
                           for v in row["values"])
        lines.append(f"| {name} | {values} | {row['meaning']} | {row['source']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_models(args) if args.model else run_digits(args)
    result["quick"] = bool(args.quick)
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
