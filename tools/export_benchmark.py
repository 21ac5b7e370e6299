"""Inference speed of the `keras_cnn.export` fast path against the TF graph, interleaved.

For one model (random weights: speed does not depend on them) at each batch size, three
engines run the same float32 [0, 255] images:

* `tf_graph`: the Keras model traced once as a `tf.function` (what a SavedModel's `serve`
  runs), TensorFlow intra-op threads = `--threads`, inter-op 1;
* `tflite_fp32` and `tflite_int8`: `keras_cnn.export.convert_to_tflite` of the model's
  SavedModel (int8: full-integer, calibrated on `--calibration` random images, which is enough
  for timing but not for accuracy; the accuracy check is `keras-cnn export`'s), run by the TFLite
  interpreter with `--threads` threads and its default XNNPACK delegate.

Each repeat times every engine in turn (`--steps` batches after `--warmup`), so load from other
processes on a shared machine hits all of them alike; the figure is the median images/s, and
each engine's speed-up is the median of its per-repeat ratios to `tf_graph` in the same repeat.

    python tools/export_benchmark.py                       # resnet50, 224 px, batch 1 and 16, 2 threads
    python tools/export_benchmark.py --batches 1 --repeats 3 --out benchmarks/export
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn.export import convert_to_tflite, tflite_interpreter  # noqa: E402
from keras_cnn.utils.argtypes import parse_positive_int  # noqa: E402

ENGINES = ("tf_graph", "tflite_fp32", "tflite_int8")


def parse_args(argv=None):
    """Parses and validates the command line (bad values raise `ValueError`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", help="a registry name (default resnet50)")
    parser.add_argument("--size", default="224", help="square input size in pixels")
    parser.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    parser.add_argument("--threads", default="2", help="threads of every engine")
    parser.add_argument("--steps", default="10", help="timed batches per measurement")
    parser.add_argument("--warmup", default="3", help="untimed batches first (trace, allocate)")
    parser.add_argument("--repeats", default="5", help="interleaved repeats; medians are kept")
    parser.add_argument("--calibration", default="16", help="int8 calibration images (random)")
    parser.add_argument("--out", default=None, help="also write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    for name in ("size", "threads", "steps", "warmup", "repeats", "calibration"):
        setattr(args, name, parse_positive_int(getattr(args, name), name))
    args.batches = [parse_positive_int(item, "batches") for item in args.batches.split(",") if item.strip()]
    if not args.batches:
        raise ValueError(f"`batches` must list positive integers, received batches={args.batches!r}")
    return args


class _TFLiteRunner:
    def __init__(self, flatbuffer, threads):
        self.interpreter = tflite_interpreter(flatbuffer, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape = None

    def __call__(self, images):
        if self.shape != images.shape:
            self.interpreter.resize_tensor_input(self.input, list(images.shape))
            self.interpreter.allocate_tensors()
            self.shape = images.shape
        self.interpreter.set_tensor(self.input, images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


def _images_per_second(run, images, steps, warmup):
    for _ in range(warmup):
        run(images)
    start = time.perf_counter()
    for _ in range(steps):
        run(images)
    return steps * len(images) / (time.perf_counter() - start)


def build_engines(args):
    """`{engine: callable(float32 batch) -> outputs}` and the conversion seconds."""
    model = keras_cnn.create_model(args.model, input_shape=(args.size, args.size, 3))
    graph = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    engines = {"tf_graph": lambda images: graph(tf.constant(images)).numpy()}
    calibration = np.random.RandomState(1).uniform(0, 255, (args.calibration, args.size, args.size, 3)).astype("float32")
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        model.export(os.path.join(tmp, "saved_model"), verbose=False)
        for engine, quantize in (("tflite_fp32", None), ("tflite_int8", "int8")):
            start = time.perf_counter()
            flatbuffer = convert_to_tflite(os.path.join(tmp, "saved_model"), quantize=quantize,
                                           representative_images=calibration)
            seconds[engine] = time.perf_counter() - start
            engines[engine] = _TFLiteRunner(flatbuffer, args.threads)
    return engines, seconds


def _set_tf_threads(threads):
    """Gives TensorFlow `threads` intra-op threads (1 inter-op); returns the count in effect.

    TensorFlow fixes its pools when it first runs an op: called from a process that already ran
    one (a test, a notebook), the setting is kept, and the result records the count used.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        print(f"export_benchmark: TensorFlow is already initialised: its intra-op threads stay "
              f"{tf.config.threading.get_intra_op_parallelism_threads() or 'the default'}", file=sys.stderr)
    return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()


def run(args):
    """Measures every engine and batch size; returns the result dict."""
    tf_threads = _set_tf_threads(args.threads)
    engines, convert_seconds = build_engines(args)
    rng = np.random.RandomState(0)
    rows = []
    for batch in args.batches:
        images = rng.uniform(0, 255, (batch, args.size, args.size, 3)).astype("float32")
        speeds = {engine: [] for engine in engines}
        for _ in range(args.repeats):
            for engine, call in engines.items():
                speeds[engine].append(_images_per_second(call, images, args.steps, args.warmup))
        for engine in engines:
            ratios = [s / t for s, t in zip(speeds[engine], speeds["tf_graph"])]
            rows.append({"batch": batch, "engine": engine, "images_per_second": statistics.median(speeds[engine]),
                         "speedup_vs_tf_graph": statistics.median(ratios), "repeats": speeds[engine]})
    return {
        "model": args.model, "size": args.size, "threads": args.threads, "tf_intra_op_threads": tf_threads,
        "steps": args.steps,
        "warmup": args.warmup, "repeats": args.repeats, "convert_seconds": convert_seconds,
        "machine": {"cpu": platform.processor() or platform.machine(), "logical_cores": os.cpu_count(),
                    "tensorflow": tf.__version__},
        "rows": rows,
    }


def markdown(result):
    """The result as a Markdown table (img/s and speed-up over the TF graph)."""
    lines = [f"{result['model']}, {result['size']} px, {result['threads']} threads, median of {result['repeats']} "
             f"interleaved repeats",
             "", "| batch | engine | img/s | × TF graph |", "|---:|---|---:|---:|"]
    lines += [f"| {r['batch']} | {r['engine']} | {r['images_per_second']:.1f} | {r['speedup_vs_tf_graph']:.2f} |"
              for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    try:
        args = parse_args(argv)
    except ValueError as error:
        print(f"export_benchmark: error: {error}", file=sys.stderr)
        return 2
    result = run(args)
    table = markdown(result)
    sys.stdout.write(table)
    if args.out:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        out.with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
