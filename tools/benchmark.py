"""Throughput of keras_cnn models against their keras.applications namesakes, side by side.

For every model pair, precision policy and XLA setting, both implementations are built fresh
(the policy set before building), compiled the same way (SGD with momentum, sparse categorical
cross-entropy, `jit_compile` on or off) and timed in the same process, in alternating order,
`--repeats` times; the reported figure is the median images/s, and the ratio keras_cnn /
keras.applications is the median of the per-repeat ratios (each from two adjacent
measurements, so load from other processes on a shared machine hits both sides alike).

Inference is `model.predict_on_batch`, a training step is `model.train_on_batch`: the paths
`predict`/`fit` run, with Keras' own `jit_compile` handling. The machine's fp32 GEMM ceiling is
measured in the same run (a chain of large matmuls, before and after the models; the best is
kept), and every throughput is also given as model FLOP/s over that ceiling (MFU). Model FLOPs
are `keras_cnn.utils.count_macs(model) x 2` per image for inference and `x 3` that for a
training step (forward + backward), counted on each model's own graph.

    python tools/benchmark.py                                  # 224 px, batch 32, everything
    python tools/benchmark.py --size 128 --batch 16 --steps 2 --repeats 3 --markdown
    python tools/benchmark.py --models resnet50 --precision float32 --xla off

Pairs: keras.applications' `ResNet50` is ResNet v1 (stride on the first 1x1 conv), so it is
compared with `keras_cnn.ResNet50V1` (`resnet50_v1`), not keras_cnn's v1.5 `ResNet50`.
keras_cnn models normalise their [0, 255] input inside the model (one elementwise op);
keras.applications ResNet50/DenseNet121 expect `preprocess_input` outside it and EfficientNet
normalises inside, so each model is timed exactly as a user would call it.

Writes `<out>.json` (machine, settings, GEMM ceiling, every repeat), `<out>.csv` (one row per
model/precision/XLA/mode) and `<out>.md` (the Markdown table of `--markdown`).
"""

import argparse
import csv
import dataclasses
import datetime
import gc
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn.utils import count_macs  # noqa: E402
from keras_cnn.utils.argtypes import parse_positive_int  # noqa: E402

IMPLS = ("keras_cnn", "keras.applications")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MODES = ("inference", "train")
XLA_CHOICES = {"off": False, "on": True}
CLASSES = 1000
# A training step costs the forward pass plus a backward pass of about twice its FLOPs
# (gradients with respect to activations and to weights): the usual 3x convention.
TRAIN_FLOPS_FACTOR = 3


@dataclasses.dataclass(frozen=True)
class Pair:
    """A keras_cnn registry name and the keras.applications constructor it is compared with."""

    keras_cnn: str
    applications: str
    note: str = ""


PAIRS = {
    "resnet50": Pair(
        "resnet50_v1", "ResNet50",
        "keras.applications.ResNet50 is ResNet v1 (stride on the first 1x1): compared with "
        "keras_cnn.ResNet50V1 (resnet50_v1), not keras_cnn's v1.5 ResNet50",
    ),
    "densenet121": Pair("densenet121", "DenseNet121"),
    "efficientnetb0": Pair("efficientnet_b0", "EfficientNetB0"),
    # Not in the default run (the three are); small enough for a quick check.
    "mobilenet": Pair("mobilenet", "MobileNet"),
}
DEFAULT_MODELS = ("resnet50", "densenet121", "efficientnetb0")


def parse_list(text, allowed, argument):
    """Splits a comma-separated flag value and checks every item against `allowed`."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in allowed]
    if not items or bad:
        raise ValueError(
            f"`{argument}` must be a comma-separated subset of {sorted(allowed)}, received "
            f"{argument}={text!r}"
        )
    return list(dict.fromkeys(items))


def parse_args(argv=None):
    """Parses and validates the command line (bad values raise `ValueError`)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"subset of {list(PAIRS)}")
    parser.add_argument("--size", default="224", help="square input size in pixels")
    parser.add_argument("--batch", default="32", help="batch size")
    parser.add_argument("--steps", default="5", help="timed batches per measurement")
    parser.add_argument("--warmup", default="2", help="untimed batches (trace + compile) first")
    parser.add_argument("--repeats", default="5", help="alternating repeats; the median is kept")
    parser.add_argument("--precision", default=",".join(PRECISIONS), help=f"subset of {PRECISIONS}")
    parser.add_argument("--xla", default="off,on", help="subset of off,on (`jit_compile`)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"subset of {MODES}")
    parser.add_argument("--gemm-size", default="2048", help="side of the square fp32 GEMM")
    parser.add_argument("--out", default="benchmarks/latest", help="writes <out>.json/.csv/.md")
    parser.add_argument("--markdown", action="store_true", help="also print the Markdown table")
    parser.add_argument(
        "--profile", action="store_true",
        help="instead of the benchmark, time every layer of both implementations (why a ratio is low)")
    args = parser.parse_args(argv)
    args.models = parse_list(args.models, PAIRS, "--models")
    args.precision = parse_list(args.precision, PRECISIONS, "--precision")
    args.xla = parse_list(args.xla, XLA_CHOICES, "--xla")
    args.modes = parse_list(args.modes, MODES, "--modes")
    for name in ("size", "batch", "steps", "warmup", "repeats", "gemm_size"):
        setattr(args, name, parse_positive_int(getattr(args, name), "--" + name.replace("_", "-")))
    if args.size < 32:
        raise ValueError(f"`--size` must be at least 32 (the models' minimum), received --size={args.size}")
    return args


def cpu_model():
    """The CPU model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description():
    """What the numbers were measured on: they mean nothing without it."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "accelerators": [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def gemm_ceiling(n, chain=4, repeats=2):
    """Best fp32 matmul throughput (FLOP/s) of this machine, as TensorFlow runs it.

    A chain of `chain` dependent `n x n` matmuls in one `tf.function` (dependent, so grappler
    cannot fold identical products into one); the matrix is scaled by 1/sqrt(n) so values stay
    O(1). The best of `repeats` is the ceiling.

    Returns:
        FLOP/s (float).
    """
    a = tf.random.normal((n, n), stddev=1.0 / math.sqrt(n), seed=1)
    b = tf.random.normal((n, n), seed=2)

    @tf.function
    def run(a, b):
        for _ in range(chain):
            b = tf.matmul(a, b)
        return b[0, 0]

    run(a, b).numpy()  # trace and warm up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run(a, b).numpy()
        best = max(best, 2.0 * n**3 * chain / (time.perf_counter() - start))
    return best


def build(impl, pair, size, precision):
    """A fresh, uncompiled model of `impl` under the `precision` policy."""
    keras.mixed_precision.set_global_policy(precision)
    shape = (size, size, 3)
    if impl == "keras_cnn":
        return keras_cnn.create_model(pair.keras_cnn, input_shape=shape, classes=CLASSES)
    return getattr(keras.applications, pair.applications)(
        weights=None, input_shape=shape, classes=CLASSES
    )


def compile_model(model, jit_compile):
    """Compiles both implementations identically; returns the `jit_compile` Keras resolved.

    Keras silently falls back to no XLA when a layer does not support it; the effective value
    is recorded so a row labelled XLA really is one.
    """
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        jit_compile=jit_compile,
    )
    return bool(model.jit_compile)


def auto_jit_compile(model):
    """What `jit_compile="auto"` (Keras' default) resolves to for `model` on this machine."""
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile="auto")
    return bool(model.jit_compile)


def run_steps(model, mode, x, y, steps):
    """Runs `steps` batches of `mode`; returns the elapsed wall-clock and process CPU seconds.

    Both Keras calls return NumPy values, so every step has finished when they return. The
    CPU seconds (all threads of this process) are the second view of a shared machine: time
    the process spent descheduled inflates wall-clock time but not CPU time.
    """
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if mode == "train":
            loss = model.train_on_batch(x, y)
            if not np.isfinite(loss).all():
                raise FloatingPointError(f"non-finite training loss {loss!r} for {model.name}")
        else:
            model.predict_on_batch(x)
    return time.perf_counter() - start, time.process_time() - start_cpu


def measure_config(pair, precision, xla, args, data, log):
    """Times both implementations of `pair` under one precision and XLA setting.

    Returns:
        A list of per-(impl, mode) measurement dicts with every repeat's images/s.
    """
    x, y = data
    models, info = {}, {}
    for impl in IMPLS:
        model = build(impl, pair, args.size, precision)
        macs = count_macs(model)
        auto = auto_jit_compile(model)
        effective = compile_model(model, XLA_CHOICES[xla])
        models[impl] = model
        info[impl] = {
            "macs_per_image": macs,
            "params": int(model.count_params()),
            "xla_effective": effective,
            "xla_auto": auto,
            "output_dtype": str(model.outputs[0].dtype),
        }
    # Warm-up: tracing, XLA compilation and first-touch allocations, untimed.
    compile_seconds = {}
    for impl in IMPLS:
        for mode in args.modes:
            compile_seconds[(impl, mode)] = run_steps(models[impl], mode, x, y, args.warmup)[0]
    ips = {(impl, mode): [] for impl in IMPLS for mode in args.modes}
    cpu_ips = {key: [] for key in ips}
    for repeat in range(args.repeats):
        # Alternate who goes first, so slow drifts of the machine's load cancel in the ratios.
        order = IMPLS if repeat % 2 == 0 else IMPLS[::-1]
        for mode in args.modes:
            for impl in order:
                seconds, cpu_seconds = run_steps(models[impl], mode, x, y, args.steps)
                ips[(impl, mode)].append(args.batch * args.steps / seconds)
                cpu_ips[(impl, mode)].append(args.batch * args.steps / cpu_seconds)
        log(f"    repeat {repeat + 1}/{args.repeats}: " + ", ".join(
            f"{impl} {mode} {values[-1]:.1f}/s" for (impl, mode), values in ips.items()))
    del models
    keras.backend.clear_session()
    gc.collect()
    return [
        {
            "impl": impl,
            "mode": mode,
            "images_per_s": statistics.median(ips[(impl, mode)]),
            "repeats_images_per_s": ips[(impl, mode)],
            "images_per_cpu_s": statistics.median(cpu_ips[(impl, mode)]),
            "repeats_images_per_cpu_s": cpu_ips[(impl, mode)],
            "warmup_seconds": compile_seconds[(impl, mode)],
            **info[impl],
        }
        for impl in IMPLS
        for mode in args.modes
    ]


def summarise(model_key, pair, precision, xla, measurements):
    """One comparison row per mode: both throughputs and their ratio (MFU is added later)."""
    rows = []
    by = {(m["impl"], m["mode"]): m for m in measurements}
    for mode in dict.fromkeys(m["mode"] for m in measurements):
        ours, theirs = by[("keras_cnn", mode)], by[("keras.applications", mode)]
        paired = [a / b for a, b in zip(ours["repeats_images_per_s"], theirs["repeats_images_per_s"])]
        paired_cpu = [a / b for a, b in zip(ours["repeats_images_per_cpu_s"],
                                            theirs["repeats_images_per_cpu_s"])]
        factor = 2 * (TRAIN_FLOPS_FACTOR if mode == "train" else 1)
        row = {
            "model": model_key,
            "keras_cnn": pair.keras_cnn,
            "keras_applications": pair.applications,
            "precision": precision,
            "xla": xla,
            "mode": mode,
            "keras_cnn_xla_effective": ours["xla_effective"],
            "keras_applications_xla_effective": theirs["xla_effective"],
            "keras_applications_auto_xla": theirs["xla_auto"],
            "keras_cnn_images_per_s": ours["images_per_s"],
            "keras_applications_images_per_s": theirs["images_per_s"],
            "ratio": statistics.median(paired),
            "ratio_min": min(paired),
            "ratio_max": max(paired),
            "ratio_cpu_time": statistics.median(paired_cpu),
            "keras_cnn_gflops_per_image": factor * ours["macs_per_image"] / 1e9,
            "keras_applications_gflops_per_image": factor * theirs["macs_per_image"] / 1e9,
        }
        rows.append(row)
    return rows


def default_rows(comparisons):
    """keras_cnn at its best measured XLA choice vs keras.applications at Keras' default.

    Keras' default is `jit_compile="auto"`, which is what a keras.applications user gets; the
    keras_cnn side takes whichever XLA setting measured faster here (an oracle choice on this
    machine, labelled as such), the "right XLA choice per model" of the issue's goal.
    """
    groups = {}
    for row in comparisons:
        groups.setdefault((row["model"], row["precision"], row["mode"]), []).append(row)
    out = []
    for (model, precision, mode), rows in groups.items():
        auto = rows[0]["keras_applications_auto_xla"]
        theirs = [r for r in rows if r["keras_applications_xla_effective"] == auto]
        if not theirs:
            continue  # Keras' default setting was not measured (e.g. --xla on only).
        best = max(rows, key=lambda r: r["keras_cnn_images_per_s"])
        # Same setting on both sides: the paired median; otherwise the ratio of the medians.
        ratio = best["ratio"] if best is theirs[0] else (
            best["keras_cnn_images_per_s"] / theirs[0]["keras_applications_images_per_s"])
        out.append({
            "model": model, "precision": precision, "mode": mode,
            "keras_cnn_xla": best["xla"], "keras_applications_xla": "on" if auto else "off",
            "ratio": ratio,
        })
    return out


def format_text(comparisons):
    """A fixed-width table for the terminal."""
    header = (f"{'model':<15}{'precision':<16}{'xla':<5}{'mode':<10}{'keras_cnn/s':>12}"
              f"{'k.apps/s':>11}{'ratio':>8}{'  [min, max]':<16}{'cpu-t':>6}{'MFU kc':>8}{'MFU ka':>8}")
    lines = [header, "-" * len(header)]
    for r in comparisons:
        lines.append(
            f"{r['model']:<15}{r['precision']:<16}{r['xla']:<5}{r['mode']:<10}"
            f"{r['keras_cnn_images_per_s']:>12.2f}{r['keras_applications_images_per_s']:>11.2f}"
            f"{r['ratio']:>8.3f}  [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}]  "
            f"{r['ratio_cpu_time']:>6.2f}{r['keras_cnn_mfu']:>8.1%}{r['keras_applications_mfu']:>8.1%}"
        )
    return "\n".join(lines)


def format_markdown(result):
    """The README table: machine, settings, every comparison and the defaults-vs-defaults rows."""
    m, s = result["machine"], result["settings"]
    lines = [
        f"Measured {result['timestamp']} on {m['cpu']} ({m['usable_cores']} usable cores, load "
        f"average {m['load_average_at_start'][0]:.1f} at start), TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}; {s['size']}x{s['size']} px, batch {s['batch']}, {s['steps']} timed "
        f"batches x {s['repeats']} alternating repeats (median), fp32 GEMM ceiling "
        f"{result['gemm']['ceiling_gflops']:.1f} GFLOP/s.",
        "",
        "| model | precision | XLA | mode | keras_cnn img/s | keras.applications img/s "
        "| ratio [min, max] | CPU-time ratio | MFU keras_cnn | MFU keras.applications |",
        "|---|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in result["comparisons"]:
        xla = r["xla"] + ("" if r["keras_cnn_xla_effective"] == (r["xla"] == "on") else " (fell back)")
        lines.append(
            f"| {r['model']} | {r['precision']} | {xla} | {r['mode']} "
            f"| {r['keras_cnn_images_per_s']:.2f} | {r['keras_applications_images_per_s']:.2f} "
            f"| **{r['ratio']:.2f}** [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] | {r['ratio_cpu_time']:.2f} "
            f"| {r['keras_cnn_mfu']:.1%} | {r['keras_applications_mfu']:.1%} |"
        )
    lines += [
        "",
        "ratio = keras_cnn / keras.applications, the median of the per-repeat ratios of adjacent "
        "wall-clock measurements (min and max in brackets); CPU-time ratio: the same from process "
        "CPU time, less sensitive to other load on a shared machine. MFU: model FLOP/s (2 x MACs "
        "per image, x 3 for a training step) over the fp32 GEMM ceiling.",
    ]
    if result["defaults"]:
        lines += [
            "",
            "Defaults vs defaults: keras_cnn at the XLA setting that measured faster here vs "
            "keras.applications at Keras' `jit_compile=\"auto\"`:",
            "",
            "| model | precision | mode | keras_cnn XLA | keras.applications XLA | ratio |",
            "|---|---|---|---|---|---:|",
        ]
        lines += [
            f"| {r['model']} | {r['precision']} | {r['mode']} | {r['keras_cnn_xla']} "
            f"| {r['keras_applications_xla']} | **{r['ratio']:.2f}** |"
            for r in result["defaults"]
        ]
    notes = sorted({PAIRS[r["model"]].note for r in result["comparisons"] if PAIRS[r["model"]].note})
    if notes:
        lines += [""] + [f"Note: {note}." for note in notes]
    return "\n".join(lines) + "\n"


def write_outputs(result, out):
    """Writes `<out>.json`, `<out>.csv` and `<out>.md`; returns their paths."""
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".json"), out.with_suffix(".csv"), out.with_suffix(".md")]
    paths[0].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    with paths[1].open("w", newline="", encoding="utf-8") as f:
        if result["comparisons"]:
            writer = csv.DictWriter(f, fieldnames=list(result["comparisons"][0]))
            writer.writeheader()
            writer.writerows(result["comparisons"])
    paths[2].write_text(format_markdown(result), encoding="utf-8")
    return paths


def profile_layers(model, batch, repeats=3):
    """Forward + backward time of every layer of `model`, each run alone on its own input shape.

    Where a ratio is below 1.0 this says which layers cost the difference. Isolated layers miss
    the fusion and scheduling of the whole graph, so the sum is not the model's step time; the
    comparison between two implementations of the same layer is what it is for.

    Returns:
        `[(layer_name, layer_class, milliseconds), ...]`, slowest first.
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or not layer._inbound_nodes:
            continue
        node = layer._inbound_nodes[0]
        inputs = [
            tf.random.uniform((batch, *t.shape[1:]), 0, 1, dtype=t.dtype) for t in node.input_tensors
        ]
        inputs = inputs if len(inputs) > 1 else inputs[0]

        @tf.function
        def step(inputs, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = layer(inputs, training=True)
                loss = tf.add_n([tf.reduce_sum(tf.cast(o, "float32")) for o in tf.nest.flatten(outputs)])
            grads = tape.gradient(loss, [inputs, *layer.trainable_weights])
            return [g for g in tf.nest.flatten(grads) if g is not None][:1]

        step(inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            [g.numpy() for g in step(inputs)]
            times.append(time.perf_counter() - start)
        rows.append((layer.name, type(layer).__name__, 1e3 * statistics.median(times)))
    return sorted(rows, key=lambda row: -row[2])


def profile(args, top=15):
    """Prints the per-layer-class and slowest-layer times of both implementations."""
    for model_key in args.models:
        pair = PAIRS[model_key]
        for precision in args.precision:
            print(f"\n{model_key}, {precision}, {args.size} px, batch {args.batch} (forward + backward, ms)")
            for impl in IMPLS:
                rows = profile_layers(build(impl, pair, args.size, precision), args.batch)
                by_class = {}
                for _, cls, ms in rows:
                    by_class[cls] = by_class.get(cls, 0.0) + ms
                print(f"  {impl}: total {sum(by_class.values()):.1f} ms; by layer class: " + ", ".join(
                    f"{cls} {ms:.1f}" for cls, ms in sorted(by_class.items(), key=lambda kv: -kv[1])))
                print("    slowest: " + ", ".join(f"{name} ({cls}) {ms:.1f}" for name, cls, ms in rows[:top]))
                keras.backend.clear_session()
            keras.mixed_precision.set_global_policy("float32")


def run(args, log=None):
    """Runs the whole benchmark; returns the result dict (also written to `args.out`)."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    run_start = time.perf_counter()
    rng = np.random.default_rng(0)
    data = (
        tf.constant(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")),
        tf.constant(rng.integers(0, CLASSES, (args.batch,)).astype("int32")),
    )
    result = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("markdown", "profile")},
        "gemm": {"size": args.gemm_size},
        "measurements": [],
        "comparisons": [],
        "defaults": [],
    }
    log(f"machine: {result['machine']['cpu']}, {result['machine']['usable_cores']} cores, "
        f"TF {tf.__version__}, Keras {keras.__version__}")
    # The ceiling is measured before, between and after the models (load on a shared machine
    # varies); MFU uses the best of them, the nearest this run got to the machine's peak.
    gemm = [gemm_ceiling(args.gemm_size)]
    log(f"fp32 GEMM: {gemm[-1] / 1e9:.1f} GFLOP/s")
    for model_key in args.models:
        pair = PAIRS[model_key]
        for precision in args.precision:
            for xla in args.xla:
                log(f"{model_key} ({pair.keras_cnn} vs keras.applications.{pair.applications}), "
                    f"{precision}, XLA {xla}")
                measurements = measure_config(pair, precision, xla, args, data, log)
                for m in measurements:
                    result["measurements"].append(
                        {"model": model_key, "precision": precision, "xla": xla, **m})
                result["comparisons"] += summarise(model_key, pair, precision, xla, measurements)
                keras.mixed_precision.set_global_policy("float32")
                gemm.append(gemm_ceiling(args.gemm_size))
                log(f"fp32 GEMM: {gemm[-1] / 1e9:.1f} GFLOP/s")
    ceiling = max(gemm)
    result["gemm"].update({
        "measurements_gflops": [g / 1e9 for g in gemm],
        "ceiling_gflops": ceiling / 1e9,
    })
    for row in result["comparisons"]:
        for key in ("keras_cnn", "keras_applications"):
            row[f"{key}_mfu"] = row[f"{key}_images_per_s"] * row[f"{key}_gflops_per_image"] * 1e9 / ceiling
    result["defaults"] = default_rows(result["comparisons"])
    result["run_seconds"] = time.perf_counter() - run_start
    write_outputs(result, args.out)
    return result


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    try:
        args = parse_args(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.profile:
        profile(args)
        return 0
    result = run(args)
    print(format_text(result["comparisons"]))
    if args.markdown:
        print()
        print(format_markdown(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
