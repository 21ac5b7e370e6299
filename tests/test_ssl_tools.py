"""tools/ssl_twomoon.py and tools/ssl_digits.py: smoke runs at tiny settings (output fields and
files, never accuracy or speed)."""

import json
import math

import pytest
from conftest import load_tool as _load


@pytest.fixture(scope="module")
def twomoon():
    return _load("ssl_twomoon")


@pytest.fixture(scope="module")
def digits():
    return _load("ssl_digits")


def _is_accuracy(value):
    return isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


def _check_stats(row, seeds):
    assert len(row["per_seed"]) == seeds and all(_is_accuracy(v) for v in row["per_seed"])
    assert row["mean"] == pytest.approx(sum(row["per_seed"]) / seeds)
    assert row["std"] >= 0.0


def test_twomoon_data_has_1000_points_per_class_and_3_labeled_each(twomoon):
    x, y, labeled = twomoon.make_data(0, 0.1)
    assert x.shape == (2000, 2) and x.dtype == "float32"
    assert [int((y == c).sum()) for c in (0, 1)] == [1000, 1000]
    assert len(set(labeled.tolist())) == 6 and sorted(y[labeled].tolist()) == [0, 0, 0, 1, 1, 1]
    # Seeded: the same seed gives the same points and labeled set, another seed others.
    x2, _, labeled2 = twomoon.make_data(0, 0.1)
    assert (x2 == x).all() and (labeled2 == labeled).all()
    assert not (twomoon.make_data(1, 0.1)[0] == x).all()


def test_twomoon_smoke_run_writes_json_and_table(twomoon, tmp_path, capsys):
    path = tmp_path / "twomoon.json"
    status = twomoon.main(["--seeds", "2", "--steps", "3", "--hidden", "8", "--unlabeled-batch", "16",
                           "--json", str(path)])
    assert status == 0
    result = json.loads(path.read_text())
    assert set(result["accuracy"]) == {"supervised", "pseudo_labels", "mpl", "mpl_teacher"}
    for row in result["accuracy"].values():
        _check_stats(row, 2)
    assert result["seeds"] == [0, 1] and result["config"]["steps"] == 3
    out = capsys.readouterr().out
    assert "Meta Pseudo Labels" in out and "Pseudo-Labels" in out and "Supervised" in out


def test_twomoon_figure(twomoon, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "twomoon.png"
    assert twomoon.main(["--seeds", "1", "--steps", "2", "--hidden", "8", "--unlabeled-batch", "16",
                         "--figure", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_twomoon_rejects_unknown_method(twomoon):
    with pytest.raises(SystemExit):
        twomoon.parse_args(["--methods", "supervised,fixmatch"])


def test_digits_arguments(digits):
    args = digits.parse_args(["--quick"])
    assert (args.seeds, args.labels, args.steps, args.unlabeled) == (1, 20, 2, 48)
    assert digits.parse_args([]).methods == digits.METHODS
    assert digits.parse_args([]).ns_ra_magnitude is None  # no RandAugment in the Noisy Student noise
    assert digits.parse_args(["--ns-ra-magnitude", "5"]).ns_ra_magnitude == 5.0
    for bad in (["--labels", "55"], ["--methods", "mixmatch"], ["--planes", "8,16"], ["--steps", "0"],
                ["--lr", "0"], ["--ns-ra-magnitude", "11"], ["--ns-mode", "sharp"], ["--pl-threshold", "2"]):
        with pytest.raises(SystemExit):
            digits.parse_args(bad)


def test_digits_noisy_student_teacher_is_clean_and_students_noised(digits):
    teacher, student = digits.ns_noise(digits.parse_args([]), 0)
    assert set(teacher) == {"augment"}  # the supervised recipe: translation only
    assert student["dropout"] > 0 and student["drop_path_rate"] > 0 and "randaugment" not in student
    _, student = digits.ns_noise(digits.parse_args(["--ns-ra-magnitude", "3"]), 0)
    assert student["randaugment"] == (2, 3.0)


def test_digits_markdown_lists_every_row(digits):
    rows = {key: {"mean": 0.5, "std": 0.1, "per_seed": [0.4, 0.6]} for key in (*digits.ROWS, "mpl_teacher")}
    result = {"task": "t", "backbone": "b", "budget": "s", "seeds": [0, 1], "accuracy": rows,
              "seconds": {m: 1.0 for m in digits.METHODS}}
    text = digits.markdown(result)
    table = [line for line in text.splitlines() if line.startswith("| ") and "%" in line]
    assert len(table) == len(rows)
    assert all("50.0 ± 10.0 %" in line and "40.0, 60.0" in line for line in table)


@pytest.mark.slow
def test_digits_quick_run_writes_json_and_markdown(digits, tmp_path):
    json_path, md_path = tmp_path / "digits.json", tmp_path / "digits.md"
    assert digits.main(["--quick", "--json", str(json_path), "--markdown", str(md_path)]) == 0
    result = json.loads(json_path.read_text())
    assert result["quick"] is True and result["seeds"] == [0] and result["config"]["unlabeled"] == 48
    assert set(result["accuracy"]) == {*digits.ROWS, "mpl_teacher"}
    for row in result["accuracy"].values():
        _check_stats(row, 1)
    # Round 0 (teacher) plus the 2 student rounds.
    assert len(result["extras"]["noisy_student_rounds"][0]) == 3
    assert all(steps >= 1 for steps in result["extras"]["noisy_student_steps"][0])
    assert set(result["seconds"]) == set(digits.METHODS)
    assert md_path.read_text() == digits.markdown(result)
