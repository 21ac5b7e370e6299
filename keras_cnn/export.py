"""Deployment exports of a trained run: a SavedModel, or TFLite fp32 / full-integer int8.

    from keras_cnn import export
    result = export.export("runs/fashion_mnist_resnet18", format="tflite", quantize="int8")
    print(result.path, result.check)   # {'int8_top1_agreement': ..., 'int8_accuracy': ..., ...}
    logits = export.tflite_predict(result.path, images)   # float32 in, float32 logits out

TFLite is TensorFlow's fast CPU inference path: its interpreter runs the graph through the
XNNPACK delegate by default (fused convolutions, int8 kernels using VNNI where the CPU has it).
`quantize="int8"` is full-integer post-training quantization: weights and activations int8,
calibrated on a representative dataset of the run's own training images (preprocessed as for
evaluation), with float32 input and output kept so the exported model takes the same [0, 255]
images and returns the same logits as `model.keras`.

A run trained in mixed precision is exported from a float32 copy of its weights
(`float32_model`: TFLite has no bfloat16 kernels), which is also what the check compares with.
Every export is checked against the Keras model on held-out data, the run's test split
(`Export.check`): fp32 max |logit difference| (absolute and relative to the largest logit),
and for int8 the top-1 agreement with the Keras model and the accuracy on the real labels.

The interpreter is LiteRT's (`ai_edge_litert`, `pip install keras_cnn[litert]`), the successor
of `tf.lite.Interpreter`; without it `tf.lite.Interpreter` (deprecated in TF 2.20+, still
shipped) runs the model.

`format="onnx"` (the `onnx` extra: `pip install -e .[onnx]`, tf2onnx + onnx + onnxruntime)
converts the model's SavedModel with tf2onnx (opset 17) and checks it with onnxruntime.
"""

import dataclasses
import json
import os
import tempfile
import warnings

import numpy as np

__all__ = ["FORMATS", "QUANTIZATIONS", "Export", "check_export", "convert_to_tflite", "export", "float32_model",
           "format_check", "held_out_data", "convert_to_onnx", "onnx_predict", "tflite_interpreter", "tflite_predict"]

FORMATS = ("saved_model", "tflite", "onnx")
ONNX_OPSET = 17
QUANTIZATIONS = (None, "int8")
REPRESENTATIVE_EXAMPLES = 256  # calibration images for int8 (TFLite's guidance: ~100-500)
CHECK_EXAMPLES = 1000  # held-out images of the equivalence check
_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Export:
    """The result of `export`.

    Attributes:
        path: The written file (`.tflite`) or directory (SavedModel).
        format: `"saved_model"`, `"tflite"` or `"onnx"`.
        quantize: `None` or `"int8"`.
        check: The equivalence check against the Keras model (see `check_export`).
    """

    path: str
    format: str
    quantize: object
    check: dict


def tflite_interpreter(model, num_threads=None):
    """A TFLite interpreter (LiteRT's when installed) for a `.tflite` path or flatbuffer bytes.

    Args:
        model: A `.tflite` file path or the model's bytes.
        num_threads: CPU threads (default: the interpreter's).

    Returns:
        The interpreter (XNNPACK delegate applied by default).
    """
    kwargs = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": os.fspath(model)}
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        # tf.lite.Interpreter's deprecation notice points to ai_edge_litert (the `litert` extra).
        warnings.simplefilter("ignore")
        return Interpreter(num_threads=num_threads, **kwargs)


def tflite_predict(model, images, *, batch_size=_BATCH, num_threads=None):
    """Runs a TFLite model on a float32 batch of images.

    Args:
        model: A `.tflite` path, its bytes or an interpreter from `tflite_interpreter`.
        images: `[n, H, W, 3]` float32 images in [0, 255].
        batch_size: Images per invocation.
        num_threads: CPU threads.

    Returns:
        The float32 outputs `[n, classes]`.
    """
    interpreter = model if hasattr(model, "invoke") else tflite_interpreter(model, num_threads=num_threads)
    images = np.asarray(images, dtype="float32")
    source = interpreter.get_input_details()[0]
    outputs, shape = [], None
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        if shape != chunk.shape:
            interpreter.resize_tensor_input(source["index"], list(chunk.shape))
            interpreter.allocate_tensors()
            shape = chunk.shape
        interpreter.set_tensor(source["index"], chunk)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])))
    return np.concatenate(outputs)


def convert_to_tflite(saved_model_dir, *, quantize=None, representative_images=None):
    """Converts a SavedModel (`model.export(...)`'s) to a TFLite flatbuffer.

    Args:
        saved_model_dir: The SavedModel directory.
        quantize: `None` (float32) or `"int8"` (full-integer; float32 input and output).
        representative_images: For int8: float32 `[n, H, W, 3]` calibration images, preprocessed
            as the model's inputs.

    Returns:
        The `.tflite` bytes.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}, received quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model_dir))
    if quantize == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError("int8 quantization needs `representative_images` (calibration data), received none")
        images = np.asarray(representative_images, dtype="float32")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([images[i:i + 1]] for i in range(len(images)))
        # Full-integer: a float op left in the graph is a conversion error, not a silent fallback.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001  (the converter's MLIR dump is not actionable)
        message = str(error).strip().splitlines()
        raise ValueError(f"TFLite conversion of {os.fspath(saved_model_dir)!r} (quantize={quantize!r}) failed: "
                         f"{message[0][:300] if message else type(error).__name__}") from None


def float32_model(model):
    """`model` itself if it computes in float32, else a float32 copy with the same weights.

    A run trained under `mixed_bfloat16` / `mixed_float16` (the Fashion-MNIST recipe) saves
    layers that compute in 16 bits; TFLite has no bfloat16 kernels (the conversion fails on
    every `Conv2D`), and int8 calibration wants float32 activations. The variables are float32
    under a mixed policy, so the copy holds exactly the trained weights.

    Args:
        model: A functional Keras model.

    Returns:
        A Keras model whose every layer computes in float32.
    """
    import keras

    if all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model._flatten_layers()):
        return model

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def _require_onnx():
    import importlib.util

    missing = [name for name in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"format='onnx' needs the `onnx` extra (pip install keras_cnn[onnx]); missing: {missing}")


def convert_to_onnx(saved_model_dir, output, *, opset=ONNX_OPSET):
    """Converts a SavedModel to an ONNX file with tf2onnx (its command line, in a subprocess).

    The command line reads the SavedModel with its variables frozen; tf2onnx's in-process
    `from_function` leaves Keras 3 variables as extra graph inputs.

    Args:
        saved_model_dir: The SavedModel directory.
        output: The `.onnx` path to write.
        opset: The ONNX opset.
    """
    import subprocess
    import sys

    _require_onnx()
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", os.fspath(saved_model_dir),
               "--output", os.fspath(output), "--opset", str(opset)]
    done = subprocess.run(command, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode != 0 or not os.path.isfile(output):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ValueError(f"ONNX conversion of {os.fspath(saved_model_dir)!r} failed: {lines[-1] if lines else done.returncode}")


def onnx_predict(path, images, *, batch_size=_BATCH):
    """Runs an ONNX model with onnxruntime (CPU) on a float32 batch of images; returns the outputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = np.asarray(images, dtype="float32")
    return np.concatenate([session.run(None, {name: images[i:i + batch_size]})[0]
                           for i in range(0, len(images), batch_size)])


def _run_config(run_dir):
    from keras_cnn.training.config import resolve_config

    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"`run_dir` must be a run directory of `keras-cnn train` (with config.json), "
                         f"received run_dir={run_dir!r}")
    with open(path, encoding="utf-8") as file:
        return resolve_config(json.load(file), source=f"{path} ")


def held_out_data(run_dir, split="test", *, count=CHECK_EXAMPLES, data_dir=None):
    """Images of a run's dataset preprocessed as its evaluation does, with their labels.

    Args:
        run_dir: A run directory (its `config.json` names the dataset, size and preprocessing).
        split: `"test"` (the run's `eval_split`: held-out data) or `"train"` (its `train_split`).
        count: At most this many examples, from the start of the split.
        data_dir: Where the dataset is (as `keras-cnn train --data-dir`).

    Returns:
        `(images, labels)`: float32 `[n, H, W, 3]` in [0, 255] and int32 `[n]`.
    """
    from keras_cnn import data

    cfg = _run_config(run_dir)
    info = data.get_dataset_info(cfg.data.dataset)
    image_size = cfg.data.image_size or info.image_size
    if info.name == "digits":  # served at the run's size, as the runner does
        train, test = data.load_digits(image_size=image_size)
        source = train if split == "train" else test
        source = (source[0][:count], source[1][:count])
    else:
        name = cfg.data.train_split if split == "train" else cfg.data.eval_split
        source = data.load(info.name, name, data_dir=data_dir).take(count)
    preprocessing = info.preprocessing if cfg.data.preprocessing == "auto" else cfg.data.preprocessing
    pipeline = data.make_pipeline(source, training=False, batch_size=_BATCH, image_size=image_size,
                                  num_classes=info.num_classes, preprocessing=preprocessing,
                                  crop_fraction=cfg.data.crop_fraction, drop_remainder=False)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in pipeline))
    return np.concatenate(images).astype("float32"), np.concatenate(labels).astype("int32")


def check_export(reference, exported, images, labels=None, *, quantize=None):
    """Compares an export's outputs with the Keras model's on the same images.

    Args:
        reference: The Keras model's outputs `[n, classes]`.
        exported: The export's outputs `[n, classes]`.
        images: Unused beyond the count (kept so the record says how many were compared).
        labels: True labels `[n]` (for the accuracies), or None.
        quantize: `None` or `"int8"`.

    Returns:
        A dict: `examples`, `max_abs_diff`, `max_rel_diff` (max |Δ| over max |reference|),
        `top1_agreement`, and with labels `keras_accuracy` and `export_accuracy`.
    """
    reference = np.asarray(reference, dtype="float64")
    exported = np.asarray(exported, dtype="float64")
    diff = float(np.max(np.abs(exported - reference)))
    check = {
        "quantize": quantize,
        "examples": int(len(images)),
        "max_abs_diff": diff,
        "max_rel_diff": diff / max(float(np.max(np.abs(reference))), 1e-12),
        "top1_agreement": float(np.mean(exported.argmax(-1) == reference.argmax(-1))),
    }
    if labels is not None:
        check["keras_accuracy"] = float(np.mean(reference.argmax(-1) == labels))
        check["export_accuracy"] = float(np.mean(exported.argmax(-1) == labels))
    return check


def format_check(check):
    """The one-line summary `keras-cnn export` prints."""
    text = (f"check on {check['examples']} held-out images: max |Δlogit| {check['max_abs_diff']:.3g} "
            f"(relative {check['max_rel_diff']:.3g}), top-1 agreement {100 * check['top1_agreement']:.2f} %")
    if "export_accuracy" in check:
        text += (f", accuracy {100 * check['export_accuracy']:.2f} % "
                 f"(Keras model {100 * check['keras_accuracy']:.2f} %)")
    if "reference" in check:
        text += f"; compared with a {check['reference']}"
    return text


def _default_output(run_dir, format, quantize):
    if format == "saved_model":
        return os.path.join(run_dir, "export", "saved_model")
    if format == "onnx":
        return os.path.join(run_dir, "model.onnx")
    return os.path.join(run_dir, "model_int8.tflite" if quantize else "model.tflite")


def export(run_dir, format="tflite", *, quantize=None, output=None, data_dir=None,
           representative_examples=REPRESENTATIVE_EXAMPLES, check_examples=CHECK_EXAMPLES):
    """Exports a run's model and checks the export against it on the run's held-out data.

    Args:
        run_dir: A finished run directory of `keras-cnn train` (`model.keras`, `config.json`).
        format: `"tflite"`, `"saved_model"` or `"onnx"` (the `onnx` extra).
        quantize: `None` or `"int8"` (TFLite full-integer post-training quantization,
            calibrated on `representative_examples` training images).
        output: Where to write (default: `RUN_DIR/model.tflite`, `RUN_DIR/model_int8.tflite`,
            `RUN_DIR/export/saved_model`, `RUN_DIR/model.onnx`).
        data_dir: Where the run's dataset is (as `keras-cnn train --data-dir`).
        representative_examples: Calibration images for int8.
        check_examples: Held-out images for the equivalence check.

    Returns:
        An `Export` (its `check` as `check_export` returns it).
    """
    import keras
    import tensorflow as tf

    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {list(FORMATS)}, received format={format!r}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}, received quantize={quantize!r}")
    if quantize is not None and format != "tflite":
        raise ValueError(f"`quantize` applies to format='tflite' only, received format={format!r}, quantize={quantize!r}")
    for argument, value in (("representative_examples", representative_examples), ("check_examples", check_examples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{argument}` must be a positive integer, received {argument}={value!r}")
    run_dir = os.fspath(run_dir)
    model_path = os.path.join(run_dir, "model.keras")
    cfg_exists = os.path.isfile(os.path.join(run_dir, "config.json"))
    if not (os.path.isdir(run_dir) and cfg_exists and os.path.isfile(model_path)):
        raise ValueError(f"`run_dir` must be a finished run directory of `keras-cnn train` (model.keras and "
                         f"config.json), received run_dir={run_dir!r}")
    if format == "onnx":
        _require_onnx()
    output = os.fspath(output) if output is not None else _default_output(run_dir, format, quantize)
    trained = keras.saving.load_model(model_path, compile=False)
    model = float32_model(trained)
    images, labels = held_out_data(run_dir, "test", count=check_examples, data_dir=data_dir)
    reference = np.concatenate([model.predict_on_batch(images[i:i + _BATCH]) for i in range(0, len(images), _BATCH)])

    if format == "saved_model":
        model.export(output, verbose=False)
        loaded = tf.saved_model.load(output)  # held: `serve` alone does not keep the variables alive
        exported = np.concatenate([loaded.serve(tf.constant(images[i:i + _BATCH])).numpy()
                                   for i in range(0, len(images), _BATCH)])
    elif format == "onnx":
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            model.export(os.path.join(tmp, "saved_model"), verbose=False)
            convert_to_onnx(os.path.join(tmp, "saved_model"), output)
        exported = onnx_predict(output, images)
    else:
        representative = None
        if quantize == "int8":
            representative, _ = held_out_data(run_dir, "train", count=representative_examples, data_dir=data_dir)
        with tempfile.TemporaryDirectory() as tmp:
            # Re-exported from model.keras rather than reusing RUN_DIR/saved_model, so the
            # export is of exactly the model the check compares against.
            model.export(os.path.join(tmp, "saved_model"), verbose=False)
            flatbuffer = convert_to_tflite(os.path.join(tmp, "saved_model"), quantize=quantize,
                                           representative_images=representative)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "wb") as file:
            file.write(flatbuffer)
        exported = tflite_predict(flatbuffer, images)
    check = check_export(reference, exported, images, labels, quantize=quantize)
    if model is not trained:
        policies = sorted({layer.dtype_policy.name for layer in trained.layers if layer.compute_dtype != "float32"})
        check["reference"] = f"float32 copy of the {'/'.join(policies)} model"
    return Export(output, format, quantize, check)
