"""`keras-cnn predict` / `keras_cnn.predict`: a run directory or a .keras file on image files."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_cnn
from keras_cnn import cli
from keras_cnn.data import load_digits
from keras_cnn.data.class_names import DIGITS_CLASSES, imagenet_class_names
from keras_cnn.predict import load_predictor, predict

SIZE = 16  # the quickstart's digits size


@pytest.fixture(scope="module")
def run_dir(tiny_digits_run):
    return tiny_digits_run


def _softmax(logits):
    logits = np.asarray(logits, "float64")
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def test_predict_a_run_directory_reads_the_runs_contract(run_dir, tmp_path):
    """A PNG of a test digit gets the model's softmax of that digit's array, with digit names."""
    _, (x_test, _) = load_digits(image_size=SIZE)
    path = tmp_path / "digit.png"
    Image.fromarray(x_test[0]).save(path)
    grey = tmp_path / "grey.png"  # a one-channel file is replicated to RGB like the training data
    Image.fromarray(x_test[0][..., 0]).save(grey)
    [result, result_grey] = predict(run_dir, [str(path), str(grey)], top=3)
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    expected = _softmax(model.predict_on_batch(x_test[:1].astype("float32")))[0]
    order = np.argsort(-expected)[:3]
    assert [k.index for k in result.top] == list(order)
    assert [k.name for k in result.top] == [DIGITS_CLASSES[i] for i in order]
    np.testing.assert_allclose([k.probability for k in result.top], expected[order], rtol=1e-4, atol=1e-6)
    assert result_grey.top == result.top and result.path == str(path)


def test_predict_resizes_a_larger_image_to_the_run_size(run_dir, tmp_path):
    _, (x_test, _) = load_digits(image_size=SIZE)
    path = tmp_path / "big.png"
    Image.fromarray(x_test[1]).resize((64, 64), Image.NEAREST).save(path)
    predictor = load_predictor(run_dir)
    assert predictor.preprocess([path]).shape == (1, SIZE, SIZE, 3)
    assert len(predictor([path], top=20)[0].top) == 10  # at most the number of classes


def test_keras_file_with_1000_classes_gets_imagenet_names(tmp_path):
    model = keras_cnn.create_model("resnet18", classes=1000, input_shape=(32, 32, 3), stem_width=8,
                                   planes=(8, 8, 8, 8))
    path = str(tmp_path / "net.keras")
    model.save(path)
    image = tmp_path / "x.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 50, 3), dtype="uint8")).save(image)
    predictor = load_predictor(path)
    assert (predictor.image_size, predictor.preprocessing) == (32, "imagenet")
    [result] = predictor([image], top=5)
    assert [k.name for k in result.top] == [imagenet_class_names()[k.index] for k in result.top]
    # A softmax head is read as probabilities, not put through a second softmax.
    batch = predictor.preprocess([image])
    expected = np.asarray(model.predict_on_batch(batch), "float64")[0]
    np.testing.assert_allclose(result.top[0].probability, expected.max(), rtol=1e-5)


def test_bad_inputs_name_what_was_received(run_dir, tmp_path):
    with pytest.raises(ValueError, match="image file not found.*nope.png"):
        predict(run_dir, [str(tmp_path / "nope.png")])
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot decode image.*text.png"):
        predict(run_dir, [str(tmp_path / "text.png")])
    with pytest.raises(ValueError, match="not a finished run directory"):
        predict(str(tmp_path), [str(tmp_path / "text.png")])
    with pytest.raises(ValueError, match="`top` must be a positive integer, received top=0"):
        predict(run_dir, [str(tmp_path / "text.png")], top=0)
    assert cli.main(["predict", str(tmp_path / "missing"), "x.png"]) == 2


def test_cli_predict_prints_top_k_with_class_names(run_dir, tmp_path):
    _, (x_test, _) = load_digits(image_size=SIZE)
    path = tmp_path / "seven.png"
    Image.fromarray(x_test[2]).save(path)
    expected = [k.name for k in predict(run_dir, [path], top=3)[0].top]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-m", "keras_cnn.cli", "predict", run_dir, str(path), "--top", "3"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == str(path)
    assert [line.split("%")[1].split("(")[0].strip() for line in lines[1:]] == expected
