"""Throughput of keras_cnn models against keras.applications and timm, side by side.

For every model pair, precision policy and XLA setting, every side is built fresh (the policy
set before building) and timed in the same run, interleaved, `--repeats` times: keras_cnn,
its keras.applications namesake, and (float32 only) the same network in timm (PyTorch,
channels_last) with its keras_cnn twin. The Keras sides are compiled the same way (SGD with
momentum, sparse categorical cross-entropy, `jit_compile` on or off) and run in this process;
in every repeat each side runs `--steps` batches per mode, the order rotating between repeats.
The reported figure is the median images/s, and each ratio (keras_cnn / keras.applications,
keras_cnn twin / timm) is the median of the per-repeat ratios (each from adjacent
measurements, so load from other processes on a shared machine hits both sides alike).

Inference is `model.predict_on_batch`, a training step is `model.train_on_batch`: the paths
`predict`/`fit` run, with Keras' own `jit_compile` handling. The machine's fp32 GEMM ceiling is
measured in the same run (a chain of large matmuls, before and after the models; the best is
kept), and every throughput is also given as model FLOP/s over that ceiling (MFU). Model FLOPs
are `keras_cnn.utils.count_macs(model) x 2` per image for inference and `x 3` that for a
training step (forward + backward), counted on each Keras model's own graph; timm's are its
keras_cnn twin's (the same network).

The timm side runs in a subprocess, tools/torch_worker.py, under `--torch-python` (default:
$KERAS_CNN_TORCH_PYTHON, else this interpreter), because TensorFlow's and torch's thread pools
fight in one process. It gets `torch.set_num_threads(--threads)`, one inter-op thread,
`OMP_NUM_THREADS=--threads` and `OMP_WAIT_POLICY=PASSIVE` (its idle OpenMP threads sleep while
TensorFlow runs); TensorFlow gets `--threads` intra-op threads. A training step there is
`zero_grad`, forward, `cross_entropy`, backward, `SGD(lr=1e-3, momentum=0.9).step()`;
inference runs under `torch.inference_mode()`. Without torch/timm (or with `--no-torch`) the
run goes on without the timm column and says why. For the families timm has no model of, the
column's PyTorch model is torchvision's (AlexNet, GoogLeNet with its auxiliary classifiers,
SqueezeNet 1.0; torchvision must be installed beside torch) or, for LeNet-5, the same network in
plain torch: `--models alexnet,googlenet,squeezenet` at 224 px, `--models lenet5 --size 32`.

    python tools/benchmark.py                                  # 224 px, batch 32, everything
    python tools/benchmark.py --size 128 --batch 16 --steps 2 --repeats 3 --markdown
    python tools/benchmark.py --models resnet50 --precision float32 --xla off
    KERAS_CNN_TORCH_PYTHON=/path/to/torch-venv/bin/python python tools/benchmark.py \\
        --precision float32 --xla off --models resnet50,densenet121,efficientnetb0 --size 224 --batch 16

Pairs: keras.applications' `ResNet50` is ResNet v1 (stride on the first 1x1 conv), so it is
compared with `keras_cnn.ResNet50V1` (`resnet50_v1`), not keras_cnn's v1.5 `ResNet50`; timm's
`resnet50` is v1.5, so its twin is keras_cnn's `resnet50`, timed as a side of its own.
keras_cnn models normalise their [0, 255] input inside the model (one elementwise op);
keras.applications ResNet50/DenseNet121 expect `preprocess_input` outside it and EfficientNet
normalises inside, and timm's input is normalised by one elementwise op inside the timed step,
so each model is timed as a user would call it.

Writes `<out>.json` (machine, settings, GEMM ceiling, torch/timm versions and thread settings,
every repeat), `<out>.csv` (one row per model/precision/XLA/mode) and `<out>.md` (the Markdown
table of `--markdown`).
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
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn.utils import count_macs  # noqa: E402
from keras_cnn.utils.argtypes import parse_positive_int  # noqa: E402

IMPLS = ("keras_cnn", "keras.applications")
# The keras_cnn network timm's model is (when it is not the pair's keras_cnn side), and timm.
TWIN_IMPL, TIMM_IMPL = "keras_cnn(timm twin)", "timm"
WORKER = pathlib.Path(__file__).resolve().with_name("torch_worker.py")
TORCH_PYTHON_ENV = "KERAS_CNN_TORCH_PYTHON"
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MODES = ("inference", "train")
XLA_CHOICES = {"off": False, "on": True}
CLASSES = 1000
# A training step costs the forward pass plus a backward pass of about twice its FLOPs
# (gradients with respect to activations and to weights): the usual 3x convention.
TRAIN_FLOPS_FACTOR = 3


@dataclasses.dataclass(frozen=True)
class Pair:
    """The implementations of one network that are timed side by side.

    Attributes:
        keras_cnn: keras_cnn registry name compared with keras.applications.
        applications: keras.applications constructor name, or None (no namesake there).
        timm: timm model name, or None (no timm column).
        timm_twin: keras_cnn registry name of the same network as `timm`, when it is not
            `keras_cnn` (then it is built and timed as a side of its own).
        note: A sentence for the Markdown table.
    """

    keras_cnn: str
    applications: str | None = None
    timm: str | None = None
    timm_twin: str | None = None
    note: str = ""

    @property
    def twin(self):
        """The keras_cnn registry name compared with timm (None without a timm model)."""
        return (self.timm_twin or self.keras_cnn) if self.timm else None


PAIRS = {
    "resnet50": Pair(
        "resnet50_v1", "ResNet50", timm="resnet50", timm_twin="resnet50",
        note="keras.applications.ResNet50 is ResNet v1 (stride on the first 1x1): compared with "
        "keras_cnn.ResNet50V1 (resnet50_v1), not keras_cnn's v1.5 ResNet50; timm's resnet50 is "
        "v1.5, compared with keras_cnn's resnet50, timed as a side of its own",
    ),
    "densenet121": Pair("densenet121", "DenseNet121", timm="densenet121"),
    "efficientnetb0": Pair("efficientnet_b0", "EfficientNetB0", timm="efficientnet_b0"),
    # Not in the default run (the issue's three are): one network per other family that timm
    # has, for the "every family at its default size" sweep (inception_v3: --size 299).
    "mobilenet": Pair(
        "mobilenet", "MobileNet", timm="mobilenetv1_100", timm_twin="mobilenetv1_100",
        note="timm's mobilenetv1_100 is keras_cnn's mobilenetv1_100 (timm's layout of the same "
        "MobileNet v1), timed as a side of its own",
    ),
    "resnext50": Pair("resnext50_32x4d", timm="resnext50_32x4d"),
    "seresnet50": Pair("seresnet50", timm="seresnet50"),
    "wide_resnet50": Pair("wide_resnet50_2", timm="wide_resnet50_2"),
    "vgg16": Pair("vgg16", "VGG16", timm="vgg16"),
    "inception_v3": Pair(
        "inception_v3", "InceptionV3", timm="inception_v3",
        note="keras_cnn's inception_v3 computes its auxiliary classifier in training (< 1 % of "
        "the FLOPs); timm's and keras.applications' do not",
    ),
    # Families timm has no model of: the PyTorch side is torchvision's (or, for LeNet-5, the
    # same network in plain torch); the column keeps the name "timm".
    "alexnet": Pair("alexnet", timm="torchvision:alexnet",
                    note="AlexNet's PyTorch side is torchvision's alexnet (timm has none)"),
    "googlenet": Pair(
        "googlenet", timm="torchvision:googlenet",
        note="GoogLeNet's PyTorch side is torchvision's googlenet (timm has none), with aux_logits: "
        "both sides train the two auxiliary classifiers (loss weight 0.3 each)",
    ),
    "squeezenet": Pair("squeezenet1_0", timm="torchvision:squeezenet1_0",
                       note="SqueezeNet's PyTorch side is torchvision's squeezenet1_0 (timm has none)"),
    "lenet5": Pair(
        "lenet5", timm="torch:lenet5",
        note="LeNet-5's PyTorch side is the same network in plain torch (tools/torch_worker.py; neither "
        "timm nor torchvision has one); its default size is 32 px (--size 32)",
    ),
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
    parser.add_argument("--threads", default=None,
                        help="intra-op threads of TensorFlow and of the torch worker (default: usable cores)")
    parser.add_argument("--torch-python", default=None,
                        help=f"python with torch + timm for the timm column (default: ${TORCH_PYTHON_ENV}, "
                        "else this interpreter)")
    parser.add_argument("--no-torch", action="store_true", help="no timm column")
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
    args.threads = parse_positive_int(args.threads, "--threads") if args.threads is not None else usable_cores()
    args.torch_python = args.torch_python or os.environ.get(TORCH_PYTHON_ENV) or sys.executable
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


def usable_cores():
    """The cores this process may run on (its affinity mask where there is one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_description():
    """What the numbers were measured on: they mean nothing without it."""
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
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


def configure_threads(threads, log):
    """Sets TensorFlow's intra-op thread count; returns the count TensorFlow reports.

    TensorFlow fixes its thread pools when its runtime starts: a second run in one process
    (tests) keeps the first run's pool, which is logged and recorded rather than raised.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError as error:
        log(f"TensorFlow intra-op threads left as they are ({error})")
    return tf.config.threading.get_intra_op_parallelism_threads()


class WorkerError(RuntimeError):
    """The torch worker could not start, died, or answered a command with an error."""


class TorchWorker:
    """tools/torch_worker.py in a subprocess: TensorFlow and torch never share a process.

    Started with `OMP_NUM_THREADS=threads` and `OMP_WAIT_POLICY=PASSIVE`, so its idle OpenMP
    threads sleep (rather than spin on the cores) while the TensorFlow sides run.
    """

    def __init__(self, python, threads):
        """Starts the worker and reads its greeting (`self.info`: versions and thread settings).

        Args:
            python: The interpreter to run it with (`--torch-python`).
            threads: torch's intra-op thread count.

        Raises:
            WorkerError: `python` cannot be run or cannot import torch/timm.
        """
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
        # stderr to a file, not a pipe: a chatty worker can never block on a full pipe.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        try:
            self.process = subprocess.Popen(
                [python, str(WORKER), "--threads", str(threads)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        except OSError as error:
            self.stderr.close()
            raise WorkerError(f"cannot run --torch-python={python!r} ({error})") from None
        try:
            self.info = self.receive()
            if not self.info.get("ready"):
                raise WorkerError(self.info.get("error") or f"the torch worker said {self.info!r}")
        except WorkerError:
            self.close()
            raise

    def receive(self):
        """The worker's next JSON line (raises `WorkerError` if it died or wrote something else)."""
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            self.stderr.seek(0)
            tail = self.stderr.read().strip().splitlines()[-1:]
            raise WorkerError(f"the torch worker exited with status {status}" + (f": {tail[0]}" if tail else ""))
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise WorkerError(f"the torch worker wrote {line.strip()!r}, not a JSON line") from None

    def request(self, **message):
        """Sends one command; returns the worker's answer (an `error` answer raises `WorkerError`)."""
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError as error:
            raise WorkerError(f"the torch worker is gone ({error})") from None
        reply = self.receive()
        if "error" in reply:
            raise WorkerError(reply["error"])
        return reply

    def close(self):
        """Asks the worker to quit (kills it if it does not) and releases its pipes."""
        if self.process.poll() is None:
            try:
                self.request(cmd="quit")
                self.process.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            stream.close()


def start_torch(args, log):
    """Starts the torch worker unless `--no-torch`; returns `(worker or None, JSON description)`."""
    if args.no_torch:
        worker, reason = None, "--no-torch"
    else:
        try:
            worker, reason = TorchWorker(args.torch_python, args.threads), None
        except WorkerError as error:
            worker, reason = None, str(error)
    if worker is None:
        log(f"no timm column: {reason}")
        return None, {"available": False, "reason": reason, "python": args.torch_python}
    info = {key: value for key, value in worker.info.items() if key != "ready"}
    log(f"timm side: torch {info['torch']}, timm {info['timm']}, torchvision {info.get('torchvision')}, "
        f"{info['threads']} threads, "
        f"OMP_WAIT_POLICY={info['omp_wait_policy']} ({info['python']})")
    return worker, {"available": True, "reason": None, **info}


def build(impl, pair, size, precision):
    """A fresh, uncompiled Keras model of `impl` (one of `IMPLS` or `TWIN_IMPL`) under `precision`."""
    keras.mixed_precision.set_global_policy(precision)
    shape = (size, size, 3)
    if impl == "keras.applications":
        return getattr(keras.applications, pair.applications)(
            weights=None, input_shape=shape, classes=CLASSES
        )
    name = pair.twin if impl == TWIN_IMPL else pair.keras_cnn
    return keras_cnn.create_model(name, input_shape=shape, classes=CLASSES)


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


@dataclasses.dataclass
class Side:
    """One implementation in a measurement: how to time it and what is recorded about it.

    Attributes:
        impl: Its name in the results (`IMPLS`, `TWIN_IMPL` or `TIMM_IMPL`).
        run: `run(mode, steps) -> (wall seconds, CPU seconds)`.
        info: Fields copied into its measurement (MACs, parameters, XLA, ...).
        close: Releases it (None: nothing to release).
    """

    impl: str
    run: Callable[[str, int], tuple[float, float]]
    info: dict
    close: Callable[[], object] | None = None


def keras_side(impl, pair, precision, xla, args, data):
    """A Keras side: built, counted and compiled as every Keras side is."""
    model = build(impl, pair, args.size, precision)
    info = {
        "macs_per_image": count_macs(model),
        "params": int(model.count_params()),
        "xla_auto": auto_jit_compile(model),
        "xla_effective": compile_model(model, XLA_CHOICES[xla]),
        "output_dtype": str(model.outputs[0].dtype),
    }
    return Side(impl, lambda mode, steps: run_steps(model, mode, *data, steps), info)


def timm_side(worker, pair, key, args):
    """The timm side, built in the worker; the FLOPs are its keras_cnn twin's (the same network)."""
    reply = worker.request(cmd="build", key=key, timm=pair.timm, size=args.size, batch=args.batch,
                           classes=CLASSES)

    def run(mode, steps):
        times = worker.request(cmd="run", key=key, mode=mode, steps=steps)
        return times["wall"], times["cpu"]

    info = {"timm": pair.timm, "params": reply["params"], "xla_effective": None, "output_dtype": "float32"}
    return Side(TIMM_IMPL, run, info, close=lambda: worker.request(cmd="free", key=key))


def make_sides(pair, precision, xla, args, data, log, worker):
    """Every side of `pair` this configuration measures, Keras ones first."""
    sides = []
    if worker is not None and pair.timm:
        if precision != "float32":
            log(f"    no timm side under {precision} (the timm side runs float32 only)")
        else:
            try:
                sides.append(timm_side(worker, pair, f"{pair.timm}/{precision}/{xla}", args))
            except WorkerError as error:
                log(f"    no timm side: timm could not build {pair.timm!r} ({error})")
    impls = ["keras_cnn"] + (["keras.applications"] if pair.applications else [])
    if sides and pair.twin != pair.keras_cnn:
        impls.append(TWIN_IMPL)
    sides = [keras_side(impl, pair, precision, xla, args, data) for impl in impls] + sides
    twin = next(s for s in sides if s.impl == (TWIN_IMPL if TWIN_IMPL in impls else "keras_cnn"))
    for side in sides:
        if side.impl == TIMM_IMPL:
            side.info.update(macs_per_image=twin.info["macs_per_image"], macs_from=pair.twin)
    return sides


def measure_config(pair, precision, xla, args, data, log, worker=None):
    """Times every side of `pair` under one precision and XLA setting, interleaved.

    Args:
        pair: The `Pair`.
        precision: A Keras mixed-precision policy name.
        xla: "off" or "on".
        args: The parsed command line.
        data: `(images, labels)` of the Keras sides.
        log: Progress printer.
        worker: The `TorchWorker`, or None (no timm side).

    Returns:
        A list of per-(impl, mode) measurement dicts with every repeat's images/s.
    """
    sides = make_sides(pair, precision, xla, args, data, log, worker)
    # Warm-up: tracing, XLA compilation and first-touch allocations, untimed.
    compile_seconds = {}
    for side in sides:
        for mode in args.modes:
            compile_seconds[(side.impl, mode)] = side.run(mode, args.warmup)[0]
    ips = {(side.impl, mode): [] for side in sides for mode in args.modes}
    cpu_ips = {key: [] for key in ips}
    for repeat in range(args.repeats):
        # Rotate who goes first, so slow drifts of the machine's load cancel in the ratios.
        shift = repeat % len(sides)
        order = sides[shift:] + sides[:shift]
        for mode in args.modes:
            for side in order:
                seconds, cpu_seconds = side.run(mode, args.steps)
                ips[(side.impl, mode)].append(args.batch * args.steps / seconds)
                cpu_ips[(side.impl, mode)].append(args.batch * args.steps / cpu_seconds)
        log(f"    repeat {repeat + 1}/{args.repeats}: " + ", ".join(
            f"{impl} {mode} {values[-1]:.1f}/s" for (impl, mode), values in ips.items()))
    for side in sides:
        if side.close:
            side.close()
    infos = {side.impl: side.info for side in sides}
    del sides
    keras.backend.clear_session()
    gc.collect()
    return [
        {
            "impl": impl,
            "mode": mode,
            "images_per_s": statistics.median(values),
            "repeats_images_per_s": values,
            "images_per_cpu_s": statistics.median(cpu_ips[(impl, mode)]),
            "repeats_images_per_cpu_s": cpu_ips[(impl, mode)],
            "warmup_seconds": compile_seconds[(impl, mode)],
            **infos[impl],
        }
        for (impl, mode), values in ips.items()
    ]


def paired_ratios(ours, theirs, prefix):
    """`ours / theirs` per repeat: median, min, max and the CPU-time median (None without a side)."""
    if ours is None or theirs is None:
        return dict.fromkeys((prefix, f"{prefix}_min", f"{prefix}_max", f"{prefix}_cpu_time"))
    wall = [a / b for a, b in zip(ours["repeats_images_per_s"], theirs["repeats_images_per_s"])]
    cpu = [a / b for a, b in zip(ours["repeats_images_per_cpu_s"], theirs["repeats_images_per_cpu_s"])]
    return {prefix: statistics.median(wall), f"{prefix}_min": min(wall), f"{prefix}_max": max(wall),
            f"{prefix}_cpu_time": statistics.median(cpu)}


def summarise(model_key, pair, precision, xla, measurements):
    """One comparison row per mode: every throughput and the ratios (MFU is added later).

    Every row has every column (None where a side was not measured), so the CSV has one header.
    """
    rows = []
    by = {(m["impl"], m["mode"]): m for m in measurements}

    def get(measurement, key):
        return None if measurement is None else measurement[key]

    for mode in dict.fromkeys(m["mode"] for m in measurements):
        ours, theirs = by[("keras_cnn", mode)], by.get(("keras.applications", mode))
        timm = by.get((TIMM_IMPL, mode))
        twin = None if timm is None else by.get((TWIN_IMPL, mode), ours)
        factor = 2 * (TRAIN_FLOPS_FACTOR if mode == "train" else 1)
        rows.append({
            "model": model_key,
            "keras_cnn": pair.keras_cnn,
            "keras_applications": pair.applications,
            "precision": precision,
            "xla": xla,
            "mode": mode,
            "keras_cnn_xla_effective": ours["xla_effective"],
            "keras_applications_xla_effective": get(theirs, "xla_effective"),
            "keras_applications_auto_xla": get(theirs, "xla_auto"),
            "keras_cnn_images_per_s": ours["images_per_s"],
            "keras_applications_images_per_s": get(theirs, "images_per_s"),
            **paired_ratios(ours, theirs, "ratio"),
            "keras_cnn_gflops_per_image": factor * ours["macs_per_image"] / 1e9,
            "keras_applications_gflops_per_image": (
                None if theirs is None else factor * theirs["macs_per_image"] / 1e9),
            "timm": pair.timm if timm else None,
            "timm_twin": pair.twin if timm else None,
            "timm_twin_images_per_s": get(twin, "images_per_s"),
            "timm_images_per_s": get(timm, "images_per_s"),
            # ratio_timm_cpu_time: TensorFlow's process CPU time vs the worker's process CPU time.
            **paired_ratios(twin, timm, "ratio_timm"),
            # The twin's graph counted: the same network as the timm model.
            "timm_gflops_per_image": None if timm is None else factor * timm["macs_per_image"] / 1e9,
        })
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
        if auto is None:
            continue  # No keras.applications side (a timm-only pair).
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


def number(value, spec):
    """`value` formatted with `spec`, or a dash (padded to the spec's width, so text columns stay
    aligned) where a side was not measured."""
    if value is not None:
        return format(value, spec)
    width = re.match(r"[<>^=]?(\d*)", spec).group(1)
    return format("–", f">{width}") if width else "–"


def span(row, prefix):
    """`[min, max]` of a ratio's repeats (dashes where it was not measured)."""
    return f"[{number(row[f'{prefix}_min'], '.2f')}, {number(row[f'{prefix}_max'], '.2f')}]"


def ratio_cell(row, prefix):
    """A Markdown ratio cell, `**median** [min, max]`, or a dash where it was not measured."""
    if row[prefix] is None:
        return "–"
    return f"**{row[prefix]:.2f}** [{row[f'{prefix}_min']:.2f}, {row[f'{prefix}_max']:.2f}]"


def has_timm(comparisons):
    """Whether any row has a timm measurement (else the timm columns are left out)."""
    return any(r.get("timm_images_per_s") is not None for r in comparisons)


def format_text(comparisons):
    """A fixed-width table for the terminal."""
    timm = has_timm(comparisons)
    header = (f"{'model':<15}{'precision':<16}{'xla':<5}{'mode':<10}{'keras_cnn/s':>12}"
              f"{'k.apps/s':>11}{'ratio':>8}{'  [min, max]':<18}{'cpu-t':>6}{'MFU kc':>8}{'MFU ka':>8}")
    if timm:
        header += f"{'twin/s':>10}{'timm/s':>10}{'twin/timm':>10}{'  [min, max]':<18}{'cpu-t':>6}{'MFU tm':>8}"
    lines = [header, "-" * len(header)]
    for r in comparisons:
        line = (
            f"{r['model']:<15}{r['precision']:<16}{r['xla']:<5}{r['mode']:<10}"
            f"{r['keras_cnn_images_per_s']:>12.2f}{number(r['keras_applications_images_per_s'], '>11.2f')}"
            f"{number(r['ratio'], '>8.3f')}  {span(r, 'ratio'):<14}  "
            f"{number(r['ratio_cpu_time'], '>6.2f')}{number(r['keras_cnn_mfu'], '>8.1%')}"
            f"{number(r['keras_applications_mfu'], '>8.1%')}"
        )
        if timm:
            line += (
                f"{number(r['timm_twin_images_per_s'], '>10.2f')}{number(r['timm_images_per_s'], '>10.2f')}"
                f"{number(r['ratio_timm'], '>10.3f')}  {span(r, 'ratio_timm'):<14}  "
                f"{number(r['ratio_timm_cpu_time'], '>6.2f')}"
                f"{number(r['timm_mfu'], '>8.1%')}"
            )
        lines.append(line)
    return "\n".join(lines)


def format_markdown(result):
    """The README table: machine, settings, every comparison and the defaults-vs-defaults rows."""
    m, s, torch = result["machine"], result["settings"], result["torch"]
    timm = has_timm(result["comparisons"])
    if torch["available"]:
        threads = (
            f"Threads: TensorFlow {m['intra_op_threads']} intra-op; the timm side runs in its own "
            f"process (torch {torch['torch']}, timm {torch['timm']}, torchvision {torch.get('torchvision')}, "
            f"channels_last) with "
            f"{torch['threads']} intra-op / {torch['interop_threads']} inter-op threads, "
            f"OMP_NUM_THREADS={torch['omp_num_threads']}, OMP_WAIT_POLICY={torch['omp_wait_policy']} "
            "(its idle OpenMP threads sleep while TensorFlow runs)."
        )
    else:
        threads = f"Threads: TensorFlow {m['intra_op_threads']} intra-op. No timm column: {torch['reason']}."
    lines = [
        f"Measured {result['timestamp']} on {m['cpu']} ({m['usable_cores']} usable cores, load "
        f"average {m['load_average_at_start'][0]:.1f} at start), TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}; {s['size']}x{s['size']} px, batch {s['batch']}, {s['steps']} timed "
        f"batches x {s['repeats']} interleaved repeats (median), fp32 GEMM ceiling "
        f"{result['gemm']['ceiling_gflops']:.1f} GFLOP/s. {threads}",
        "",
        "| model | precision | XLA | mode | keras_cnn img/s | keras.applications img/s "
        "| ratio [min, max] | CPU-time ratio | MFU keras_cnn | MFU keras.applications |"
        + (" keras_cnn (timm twin) img/s | timm img/s | keras_cnn/timm [min, max] "
           "| CPU-time ratio vs timm | MFU timm |" if timm else ""),
        "|---|---|---|---|---:|---:|---|---:|---:|---:|" + ("---:|---:|---|---:|---:|" if timm else ""),
    ]
    for r in result["comparisons"]:
        xla = r["xla"] + ("" if r["keras_cnn_xla_effective"] == (r["xla"] == "on") else " (fell back)")
        line = (
            f"| {r['model']} | {r['precision']} | {xla} | {r['mode']} "
            f"| {r['keras_cnn_images_per_s']:.2f} | {number(r['keras_applications_images_per_s'], '.2f')} "
            f"| {ratio_cell(r, 'ratio')} | {number(r['ratio_cpu_time'], '.2f')} "
            f"| {number(r['keras_cnn_mfu'], '.1%')} | {number(r['keras_applications_mfu'], '.1%')} |"
        )
        if timm:
            line += (
                f" {number(r['timm_twin_images_per_s'], '.2f')} | {number(r['timm_images_per_s'], '.2f')} "
                f"| {ratio_cell(r, 'ratio_timm')} | {number(r['ratio_timm_cpu_time'], '.2f')} | {number(r['timm_mfu'], '.1%')} |"
            )
        lines.append(line)
    lines += [
        "",
        "ratio = keras_cnn / keras.applications, the median of the per-repeat ratios of adjacent "
        "wall-clock measurements (min and max in brackets); CPU-time ratio: the same from process "
        "CPU time, less sensitive to other load on a shared machine. MFU: model FLOP/s (2 x MACs "
        "per image, x 3 for a training step) over the fp32 GEMM ceiling.",
    ]
    if timm:
        lines += [
            "",
            "keras_cnn/timm: the keras_cnn model that is the same network as the timm model (its "
            "twin) over timm, per repeat as above; both sides get uniform [0, 255) images and "
            "normalise them inside the timed step (keras_cnn inside the model, timm with one "
            "elementwise op to its mean/std). CPU-time ratio vs timm: TensorFlow's process CPU "
            "time against the torch worker's process CPU time. MFU timm uses the twin's FLOPs "
            "(the same network's), counted on the keras_cnn graph. timm runs float32 only, measured afresh beside each "
            "XLA setting of the Keras sides.",
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
    notes = sorted({PAIRS[r["model"]].note for r in result["comparisons"]
                    if r["model"] in PAIRS and PAIRS[r["model"]].note})
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
            for impl in IMPLS if pair.applications else IMPLS[:1]:
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
    # Before any TensorFlow op: the runtime fixes its thread pools when it starts.
    tf_threads = configure_threads(args.threads, log)
    if tf_threads not in (0, args.threads):
        log(f"TensorFlow runs {tf_threads} intra-op threads, the torch worker {args.threads}")
    worker, torch_info = start_torch(args, log)
    try:
        return run_with(args, log, run_start, worker, torch_info)
    finally:
        if worker is not None:
            worker.close()


def run_with(args, log, run_start, worker, torch_info):
    """`run` once the threads are set and the torch worker (or None) has started."""
    rng = np.random.default_rng(0)
    data = (
        tf.constant(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")),
        tf.constant(rng.integers(0, CLASSES, (args.batch,)).astype("int32")),
    )
    result = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("markdown", "profile")},
        "torch": torch_info,
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
                others = []
                if pair.applications:
                    others.append(f"keras.applications.{pair.applications}")
                if worker and pair.timm:
                    others.append(f"timm {pair.timm} (twin {pair.twin})")
                log(f"{model_key} ({pair.keras_cnn} vs {', '.join(others) or 'nothing'}), {precision}, XLA {xla}")
                measurements = measure_config(pair, precision, xla, args, data, log, worker)
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
    # Each side's throughput times its FLOPs per image; the twin's and timm's are the same network's.
    flops_columns = {"keras_cnn": "keras_cnn", "keras_applications": "keras_applications",
                     "timm_twin": "timm", "timm": "timm"}
    for row in result["comparisons"]:
        for key, flops_key in flops_columns.items():
            ips, gflops = row[f"{key}_images_per_s"], row[f"{flops_key}_gflops_per_image"]
            row[f"{key}_mfu"] = None if ips is None or gflops is None else ips * gflops * 1e9 / ceiling
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
