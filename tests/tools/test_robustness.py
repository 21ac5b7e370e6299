"""tools/robustness.py: the figures' definitions and smoke runs of both modes (output fields and
files, never accuracy or speed)."""

import json
import math

import keras
import pytest
from conftest import load_tool

from keras_cnn.data.corruptions import CORRUPTIONS, NUM_SEVERITIES


@pytest.fixture(scope="module")
def tool():
    return load_tool("robustness")


def _result(clean, per_corruption):
    return {"clean": clean, "corruptions": {name: [a] * NUM_SEVERITIES for name, a in per_corruption.items()}}


def test_corruption_errors_follow_imagenet_c(tool):
    baseline = _result(0.9, {"fog": 0.5, "blur": 0.9})
    model = _result(0.8, {"fog": 0.75, "blur": 0.8})
    errors = tool.corruption_errors(model, baseline)
    # CE = sum of errors / baseline's: fog 0.25 / 0.5, blur 0.2 / 0.1.
    assert errors["ce"] == pytest.approx({"fog": 50.0, "blur": 200.0})
    assert errors["mce"] == pytest.approx(125.0)
    # Relative CE = degradation / baseline's: fog (0.25 - 0.2) / (0.5 - 0.1); blur does not hurt
    # the baseline (0.1 - 0.1 = 0), so it is left out.
    assert errors["relative_ce"] == pytest.approx({"fog": 12.5})
    assert errors["relative_mce"] == pytest.approx(12.5) and errors["relative_left_out"] == ["blur"]
    assert tool.corruption_errors(baseline, baseline)["mce"] == pytest.approx(100.0)


def test_arguments(tool):
    args = tool.parse_args(["--quick"])
    assert args.methods == tool.DEFAULT_METHODS and args.corruptions == tuple(CORRUPTIONS)
    assert args.eval_examples == tool.QUICK["eval_examples"]
    for bad in (["--corruptions", "fog,snow"], ["--methods", "noisy_student"], ["--seeds", "0"],
                ["--corruption-seed", "-1"]):
        with pytest.raises(SystemExit):
            tool.parse_args(bad)


def _check(result, names, corruptions=tuple(CORRUPTIONS)):
    assert set(result["results"]) == set(names) and result["baseline"] == names[0]
    for name in names:
        row = result["results"][name]
        for key in ("clean_accuracy", "mca", "mce"):
            assert all(math.isfinite(v) for v in row[key]["per_seed"]), (name, key)
        assert set(row["corruptions"]) == set(corruptions)
        for table in row["corruptions"].values():
            assert len(table["accuracy"]) == NUM_SEVERITIES
            assert all(math.isfinite(a) for a in table["accuracy"])
        # mCA is the mean over corruptions and severities (of the seeds' mean accuracies).
        everything = [a for table in row["corruptions"].values() for a in table["accuracy"]]
        assert row["mca"]["mean"] == pytest.approx(sum(everything) / len(everything))
    assert result["results"][names[0]]["mce"]["mean"] == pytest.approx(100.0)
    assert set(result["severities"]) == set(corruptions)


def _tiny_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                             keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(10)])


def test_saved_models_mode(tool, tmp_path):
    paths = []
    for seed in (0, 1):
        paths.append(str(tmp_path / f"model_{seed}.keras"))
        _tiny_model(seed).save(paths[-1])
    out = tmp_path / "robustness.json"
    assert tool.main(["--model", paths[0], "--model", paths[1], "--eval-examples", "30",
                      "--corruptions", "fog,pixelate,rotation", "--json", str(out)]) == 0
    _check(json.loads(out.read_text()), ["model_0", "model_1"], ("fog", "pixelate", "rotation"))


def test_quick_digits_run_supervised_only(tool, tmp_path):
    out, table = tmp_path / "robustness.json", tmp_path / "robustness.md"
    assert tool.main(["--quick", "--methods", "supervised", "--json", str(out), "--markdown", str(table)]) == 0
    result = json.loads(out.read_text())
    _check(result, ["supervised"])
    # The evaluated network is the one ssl_benchmark trained: same clean accuracy as it reported.
    assert result["results"]["supervised"]["clean_accuracy"]["per_seed"] == result["reported_clean_accuracy"][
        "supervised"]
    assert "| supervised |" in table.read_text() and "| jpeg_compression |" in table.read_text()


@pytest.mark.slow
def test_quick_run_end_to_end(tool, tmp_path):
    out, table = tmp_path / "robustness.json", tmp_path / "robustness.md"
    assert tool.main(["--quick", "--json", str(out), "--markdown", str(table)]) == 0
    result = json.loads(out.read_text())
    _check(result, ["supervised", "noisy_student"])
    assert result["quick"] and result["seeds"] == 1
    for method in ("supervised", "noisy_student"):
        assert (result["results"][method]["clean_accuracy"]["per_seed"]
                == result["reported_clean_accuracy"][method])
    text = table.read_text()
    assert "| noisy_student |" in text and "Relative mCE" in text
