"""Bag-of-Tricks ablation on the embedded digits: a baseline, then each trick added in turn.

Like Table 6 of He et al. 2019 ("Bag of Tricks for Image Classification with Convolutional Neural
Networks"), each row adds one refinement to the row above; every row is trained with several seeds
and reported as mean ± std of the test accuracy, with the change against the row above. The
network and budget are the `digits_quickstart` recipe's; the baseline is that recipe with every
trick removed (step decay x0.1 at 50 % and 75 %, no warmup, weight decay on every parameter).

    python tools/ablate.py                                  # 3 seeds, the recipe's 15 epochs
    python tools/ablate.py --seeds 5 --epochs 30 --json benchmarks/ablation.json --markdown benchmarks/ablation.md
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from keras_cnn.training.config import apply_overrides, load_recipe, resolve_config

RECIPE = "digits_quickstart"

BASELINE = {
    "schedule": "step",
    "schedule_args": {"boundaries_epochs": None, "factor": 0.1},  # filled from the epoch count
    "warmup_epochs": 0,
    "no_bias_decay": False,
    "label_smoothing": 0.0,
    "mixup_alpha": 0.0,
    "ema": None,
}

# (row name, the change it adds on top of the previous row).
ROWS = [
    ("baseline (step decay)", {}),
    ("+ cosine decay + warmup", {"schedule": "cosine", "schedule_args": {}, "warmup_epochs": 1}),
    ("+ zero-γ", {"zero_gamma": True}),
    ("+ no bias decay", {"no_bias_decay": True}),
    ("+ label smoothing 0.1", {"label_smoothing": 0.1}),
    ("+ mixup α=0.2", {"mixup_alpha": 0.2}),
]


def row_configs(epochs=None, extra=()):
    """The cumulative configs of `ROWS`.

    Args:
        epochs: Epochs per run (`None`: the recipe's).
        extra: `key=value` overrides applied to every row (e.g. a smaller model for a smoke run).

    Returns:
        A list of `(row name, config)`.
    """
    # Flat dicts while the rows are built (`resolve_config` checks and copies each row).
    base = dict(apply_overrides(load_recipe(RECIPE), list(extra)))
    if epochs is not None:
        base["epochs"] = epochs
    config = dict(resolve_config({**base, **BASELINE}))
    epochs = config["epochs"]
    boundaries = tuple(b for b in sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)}) if b < epochs)
    if boundaries:
        config["schedule_args"] = {"boundaries_epochs": boundaries, "factor": 0.1}
    else:  # a one-epoch smoke run has no room for a step
        config["schedule"], config["schedule_args"] = "constant", {}
    config["model_args"] = {**config["model_args"], "zero_gamma": False}
    rows = []
    for name, change in ROWS:
        config = dict(resolve_config(config))
        for key, value in change.items():
            if key == "zero_gamma":
                config["model_args"]["zero_gamma"] = value
            else:
                config[key] = value
        rows.append((name, resolve_config(config)))
    return rows


def run(rows, seeds, log=print):
    """Trains every row with every seed.

    Returns:
        A list of dicts: row, accuracies (one per seed), mean, std, seconds.
    """
    from keras_cnn.jobs import train

    results = []
    for name, config in rows:
        accuracies, seconds = [], []
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.time()
                out = train({**config, "seed": seed}, output_dir=os.path.join(tmp, "run"), strategy="auto",
                            verbose=0)
                seconds.append(time.time() - start)
            accuracies.append(out["test_accuracy"])
            log(f"{name:28s} seed {seed}: {100 * out['test_accuracy']:.2f} %  ({seconds[-1]:.0f} s)")
        results.append({
            "row": name,
            "accuracies": accuracies,
            "mean": float(np.mean(accuracies)),
            "std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
            "seconds": float(np.mean(seconds)),
        })
    return results


def to_markdown(results, *, seeds, epochs):
    lines = [
        f"Test accuracy on the digits test split (360 images), mean ± std over {seeds} seed(s), {epochs} epochs; "
        "each row adds one trick to the row above.",
        "",
        "| configuration | test accuracy (%) | Δ vs row above (pp) | s / run |",
        "|---|---|---|---|",
    ]
    previous = None
    for r in results:
        delta = "" if previous is None else f"{100 * (r['mean'] - previous):+.2f}"
        lines.append(f"| {r['row']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {delta} | {r['seconds']:.0f} |")
        previous = r["mean"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the recipe's)")
    parser.add_argument("--rows", type=int, default=len(ROWS), help="only the first N rows")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every row")
    parser.add_argument("--json", default=None, help="write the results as JSON")
    parser.add_argument("--markdown", default=None, help="write the table as markdown")
    args = parser.parse_args(argv)
    if args.seeds < 1 or not 1 <= args.rows <= len(ROWS):
        parser.error(f"--seeds must be >= 1 and --rows in 1..{len(ROWS)}")
    rows = row_configs(args.epochs, args.set)[: args.rows]
    epochs = rows[0][1]["epochs"]
    results = run(rows, args.seeds, log=lambda line: print(line, file=sys.stderr, flush=True))
    table = to_markdown(results, seeds=args.seeds, epochs=epochs)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"recipe": RECIPE, "seeds": args.seeds, "epochs": epochs, "results": results}, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
