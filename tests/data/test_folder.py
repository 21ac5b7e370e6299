"""dataset="folder": training on a user's own image folder (keras_cnn.data.folder)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_cnn import data, jobs
from keras_cnn.training import config

CLASSES = ("one", "two", "zero")  # sorted: labels 0, 1, 2 are "one", "two", "zero"
_DIGIT = {"zero": 0, "one": 1, "two": 2}


def _write_digits(root, per_class=20, *, start=0, classes=CLASSES):
    """`root/<class>/NNN.png` (and a few .jpg / grey PNGs) of scikit-learn's digits 0, 1 and 2."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        images = digits.images[digits.target == _DIGIT[name]][start:start + per_class]
        for i, image in enumerate(images):
            grey = tf.image.resize(image[..., None] * (255 / 16), (16, 16)).numpy().clip(0, 255).astype("uint8")
            if i % 5 == 1:  # grey JPEG: decoded to RGB by replicating the channel
                (folder / f"{i:03d}.jpg").write_bytes(tf.io.encode_jpeg(grey, quality=95).numpy())
            elif i % 5 == 2:  # grey PNG
                (folder / f"{i:03d}.png").write_bytes(tf.io.encode_png(grey).numpy())
            else:
                (folder / f"{i:03d}.png").write_bytes(tf.io.encode_png(np.repeat(grey, 3, -1)).numpy())
        (folder / "notes.txt").write_text("not an image: skipped")
    return root


@pytest.fixture
def digit_folder(tmp_path):
    return _write_digits(tmp_path / "photos")


def _paths(dataset):
    return sorted(int(label) for _, label in dataset.as_numpy_iterator())


def test_one_folder_layout_splits_each_class_80_20_with_sorted_class_names(digit_folder):
    info = data.get_dataset_info("folder", data_dir=str(digit_folder))
    assert info.class_names == CLASSES and info.num_classes == 3
    assert (info.train_examples, info.eval_examples) == (48, 12)  # 16 + 4 per class
    train = list(data.load("folder", "train", data_dir=str(digit_folder)).as_numpy_iterator())
    held_out = list(data.load("folder", "eval", data_dir=str(digit_folder)).as_numpy_iterator())
    assert [int(y) for _, y in train].count(2) == 16 and [int(y) for _, y in held_out].count(2) == 4
    assert all(x.dtype == np.uint8 and x.shape == (16, 16, 3) for x, _ in train + held_out)
    # Disjoint and complete: every image is in exactly one part; the split is fixed.
    everything = {x.tobytes() for x, _ in data.load("folder", "all", data_dir=str(digit_folder)).as_numpy_iterator()}
    assert {x.tobytes() for x, _ in train} | {x.tobytes() for x, _ in held_out} == everything
    assert not {x.tobytes() for x, _ in train} & {x.tobytes() for x, _ in held_out}
    again = list(data.load("folder", "train", data_dir=str(digit_folder)).as_numpy_iterator())
    assert [x.tobytes() for x, _ in again] == [x.tobytes() for x, _ in train]
    # Fractions from the config's split strings.
    assert len(_paths(data.load("folder", "all[:90%]", data_dir=str(digit_folder)))) == 54
    assert len(_paths(data.load("folder", "all[90%:]", data_dir=str(digit_folder)))) == 6
    # Labels in sorted-class order, without reading an image.
    np.testing.assert_array_equal(data.train_labels("folder", data_dir=str(digit_folder)),
                                  np.repeat(np.arange(3, dtype="int32"), 16))


def test_split_folders_layout_uses_train_and_test(tmp_path):
    root = tmp_path / "split"
    _write_digits(root / "train", 6)
    _write_digits(root / "val", 3, start=6)
    _write_digits(root / "test", 2, start=9, classes=("one", "zero"))  # a class may be missing from test
    info = data.get_dataset_info("folder", data_dir=str(root))
    assert info.class_names == CLASSES and (info.train_examples, info.eval_examples) == (18, 4)
    assert _paths(data.load("folder", "eval", data_dir=str(root))) == [0, 0, 2, 2]  # test/ before val/
    assert _paths(data.load("folder", "val", data_dir=str(root))) == [0] * 3 + [1] * 3 + [2] * 3
    (root / "test" / "seven").mkdir()
    with pytest.raises(ValueError, match=r"test folder .* has classes that .* lacks: \['seven'\]"):
        data.get_dataset_info("folder", data_dir=str(root))


@pytest.mark.parametrize("case, match", [
    ("none", r"data_dir \(keras-cnn train --data-dir PATH; supervised recipes only\), received data_dir=None"),
    ("missing", r"does not exist: '.*nowhere'"),
    ("empty", r"has no class subfolders"),
    ("one_class", r"single class folder 'zero'.*at least 2 classes"),
    ("no_images", r"class folders without images .*\['two'\]"),
])
def test_bad_folders_are_clear_value_errors(tmp_path, case, match):
    root = tmp_path / "photos"
    if case == "empty":
        root.mkdir()
    elif case == "one_class":
        _write_digits(root, 3, classes=("zero",))
    elif case == "no_images":
        _write_digits(root, 3, classes=("one", "zero"))
        (root / "two").mkdir()
    path = None if case == "none" else str(tmp_path / "nowhere" if case == "missing" else root)
    with pytest.raises(ValueError, match=match):
        data.get_dataset_info("folder", data_dir=path)


def test_unknown_split_names_the_choices(digit_folder):
    with pytest.raises(ValueError, match=r"split=.*'holdout'.*NAME\[a%:b%\]|NAME\[a%:b%\].*'holdout'"):
        data.load("folder", "holdout", data_dir=str(digit_folder))


def _folder_config(**changes):
    cfg = config.apply_overrides(config.load_recipe("digits_quickstart"),
                                 ["dataset=folder", "epochs=1", "batch_size=16", "warmup_epochs=0"])
    return config.resolve_config({**cfg, **changes})


def test_trains_on_a_folder_through_the_api_and_records_class_names(digit_folder, tmp_path):
    results = jobs.train(_folder_config(), output_dir=str(tmp_path / "run"), data_dir=str(digit_folder), verbose=0)
    assert results["dataset"] == "folder" and results["class_names"] == list(CLASSES)
    assert results["train_examples"] == 48 and results["steps_per_epoch"] == 3
    correct = results["test_accuracy"] * 12  # a whole number of the 12 held-out images
    assert abs(correct - round(correct)) < 1e-4
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["class_names"] == list(CLASSES)
    import keras

    model = keras.saving.load_model(str(tmp_path / "run" / "model.keras"), safe_mode=True)
    assert model.output_shape == (None, 3)
    # `keras-cnn predict RUN_DIR` names the folder's classes (from results.json).
    from keras_cnn.predict import load_predictor

    assert load_predictor(str(tmp_path / "run")).class_names == CLASSES


@pytest.mark.slow
def test_cli_trains_on_a_folder(digit_folder, tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "keras_cnn.cli", "train", "digits_quickstart", "--data-dir", str(digit_folder),
               "--set", "dataset=folder", "--set", "epochs=1", "--set", "batch_size=16", "--output", str(output),
               "--verbose", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy:" in result.stdout
    assert json.loads((output / "results.json").read_text())["class_names"] == list(CLASSES)
    # A folder that is not there: one line naming the flag, no traceback.
    missing = subprocess.run([*command[:6], str(tmp_path / "nowhere"), *command[7:-4], "--output",
                              str(tmp_path / "run2")], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert missing.returncode == 2
    assert "--data-dir" in missing.stderr and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
