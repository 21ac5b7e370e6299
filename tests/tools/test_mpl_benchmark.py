"""tools/mpl_benchmark.py: a smoke run at tiny settings (output fields, never speed)."""

import json

import pytest
from conftest import load_tool, positive_finite


@pytest.fixture(scope="module")
def tool():
    return load_tool("mpl_benchmark")



def test_smoke_run_prints_json_fields(tool, capsys):
    status = tool.main(["--size", "8", "--labeled-batch", "2", "--mu", "1", "--steps", "1", "--repeats", "2",
                        "--warmup", "1", "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"model", "image_size", "labeled_batch", "unlabeled_batch", "mpl_step_s", "teacher_step_s",
                           "student_step_s", "ratio", "goal_ratio", "goal_met", "per_repeat_s", "machine"}
    assert result["labeled_batch"] == 2 and result["unlabeled_batch"] == 2 and result["image_size"] == 8
    for name in ("mpl_step_s", "teacher_step_s", "student_step_s"):
        assert positive_finite(result[name])
    assert all(len(v) == 2 for v in result["per_repeat_s"].values())
    assert result["ratio"] == pytest.approx(
        result["mpl_step_s"] / (result["teacher_step_s"] + result["student_step_s"]))
    assert result["goal_met"] == (result["ratio"] <= tool.GOAL_RATIO)


    text = tool.report(result)
    assert "MPL / (teacher + student)" in text and f"{result['ratio']:.2f}" in text


def test_argument_errors(tool):
    with pytest.raises(SystemExit):
        tool.main(["--mu", "0"])
