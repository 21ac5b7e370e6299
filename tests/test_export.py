"""`keras-cnn export` / `keras_cnn.export`: TFLite fp32 and int8, SavedModel, checked on held-out data."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cnn import cli
from keras_cnn import export as export_module
from keras_cnn.export import export, held_out_data, tflite_predict


@pytest.fixture(scope="module")
def run_dir(tiny_digits_run):
    return tiny_digits_run


@pytest.fixture(scope="module")
def held_out(run_dir):
    """The run's test split as the export check sees it, and the Keras model's logits on it."""
    images, labels = held_out_data(run_dir, "test")
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    return images, labels, np.asarray(model.predict(images, verbose=0), "float64")


def test_held_out_data_is_the_runs_test_split(run_dir, held_out):
    images, labels, _ = held_out
    assert images.shape == (360, 16, 16, 3) and labels.shape == (360,)  # digits' test part at 16 px
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1  # [0, 255]: models normalise inside


def test_tflite_fp32_matches_the_keras_model(run_dir, held_out, tmp_path):
    images, labels, reference = held_out
    result = export(run_dir, "tflite", output=str(tmp_path / "m.tflite"))
    assert result.path == str(tmp_path / "m.tflite") and os.path.getsize(result.path) > 0
    outputs = tflite_predict(result.path, images, num_threads=2)  # the written file, re-read
    diff = np.max(np.abs(outputs - reference))
    assert diff / np.max(np.abs(reference)) <= 1e-5  # issue 16: fp32 within 1e-5 relative
    assert result.check["max_abs_diff"] == pytest.approx(diff, rel=1e-3, abs=1e-7)
    assert result.check["top1_agreement"] == np.mean(outputs.argmax(-1) == reference.argmax(-1)) == 1.0
    assert result.check["keras_accuracy"] == np.mean(reference.argmax(-1) == labels)


def test_tflite_int8_is_integer_and_agrees_on_held_out_data(run_dir, held_out):
    images, labels, reference = held_out
    result = export(run_dir, "tflite", quantize="int8", representative_examples=64)
    assert result.path == os.path.join(run_dir, "model_int8.tflite")
    interpreter = export_module.tflite_interpreter(result.path)
    kinds = {detail["dtype"].__name__ for detail in interpreter.get_tensor_details()}
    assert "int8" in kinds  # quantized kernels, float32 only at the input/output boundary
    outputs = tflite_predict(interpreter, images)
    agreement = np.mean(outputs.argmax(-1) == reference.argmax(-1))
    assert result.check["top1_agreement"] == pytest.approx(agreement)
    assert agreement >= 0.95, result.check
    keras_accuracy = np.mean(reference.argmax(-1) == labels)
    assert result.check["export_accuracy"] == pytest.approx(np.mean(outputs.argmax(-1) == labels))
    assert result.check["export_accuracy"] >= keras_accuracy - 0.03, result.check


def test_saved_model_export_serves_the_same_logits(run_dir, tmp_path):
    result = export(run_dir, "saved_model", output=str(tmp_path / "sm"), check_examples=64)
    assert os.path.isfile(os.path.join(result.path, "saved_model.pb"))
    assert result.check["examples"] == 64 and result.check["max_rel_diff"] <= 1e-5


def test_bad_arguments_name_the_value(run_dir, tmp_path):
    with pytest.raises(ValueError, match="`format` must be one of.*received format='coreml'"):
        export(run_dir, "coreml")
    with pytest.raises(ValueError, match="`quantize` applies to format='tflite' only"):
        export(run_dir, "saved_model", quantize="int8")
    with pytest.raises(ValueError, match="`quantize` must be one of.*received quantize='int4'"):
        export(run_dir, quantize="int4")
    with pytest.raises(ValueError, match="finished run directory.*received run_dir="):
        export(str(tmp_path))
    assert cli.main(["export", str(tmp_path / "missing")]) == 2


def test_cli_export_prints_the_equivalence_check(run_dir, tmp_path):
    output = str(tmp_path / "model.tflite")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-m", "keras_cnn.cli", "export", run_dir, "--format", "tflite",
                           "--output", output], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"exported tflite (float32) to {output}" in done.stdout
    assert "check on 360 held-out images: max |Δlogit|" in done.stdout and "top-1 agreement 100.00 %" in done.stdout
    assert os.path.getsize(output) > 0


def test_without_litert_tf_lite_runs_the_export(run_dir, held_out, tmp_path, monkeypatch):
    """CI installs no `litert` extra: the deprecated tf.lite.Interpreter then runs the same file."""
    images, _, reference = held_out
    path = str(tmp_path / "m.tflite")
    export(run_dir, "tflite", output=path, check_examples=32)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    interpreter = export_module.tflite_interpreter(path)
    assert type(interpreter).__module__.startswith("tensorflow")
    outputs = tflite_predict(interpreter, images[:32])
    assert np.max(np.abs(outputs - reference[:32])) / np.max(np.abs(reference)) <= 1e-5


def test_a_mixed_bfloat16_model_converts_through_a_float32_copy():
    """TFLite has no bfloat16 kernels: the Fashion-MNIST recipe's mixed_bfloat16 model fails as is."""
    import tempfile

    import keras_cnn

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras_cnn.create_model("resnet18", classes=10, input_shape=(16, 16, 3), classifier_activation=None,
                                       stem="cifar", stem_pool=None, stem_width=8, planes=(8, 8, 8, 8))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copy = export_module.float32_model(model)
    assert copy is not model and {layer.compute_dtype for layer in copy.layers} == {"float32"}
    assert export_module.float32_model(copy) is copy
    for mine, theirs in zip(copy.weights, model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    images = np.random.RandomState(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    with tempfile.TemporaryDirectory() as tmp:
        model.export(os.path.join(tmp, "bf16"), verbose=False)
        with pytest.raises(ValueError, match="TFLite conversion of .* failed"):
            export_module.convert_to_tflite(os.path.join(tmp, "bf16"))
        copy.export(os.path.join(tmp, "fp32"), verbose=False)
        flatbuffer = export_module.convert_to_tflite(os.path.join(tmp, "fp32"))
    reference = np.asarray(copy.predict(images, verbose=0))
    assert np.max(np.abs(tflite_predict(flatbuffer, images) - reference)) <= 1e-5 * np.max(np.abs(reference))


def test_onnx_export_matches_the_keras_model(run_dir, held_out, tmp_path):
    """The optional `onnx` extra (tf2onnx + onnxruntime); skipped where it is not installed."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    images, _, reference = held_out
    result = export(run_dir, "onnx", output=str(tmp_path / "m.onnx"), check_examples=64)
    outputs = export_module.onnx_predict(result.path, images[:64])
    assert np.max(np.abs(outputs - reference[:64])) / np.max(np.abs(reference)) <= 1e-5
    assert result.check["top1_agreement"] == 1.0 and result.check["max_rel_diff"] <= 1e-5


def test_onnx_without_the_extra_says_how_to_get_it(run_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the `onnx` extra.*missing: \[.*'tf2onnx'"):
        export(run_dir, "onnx")
