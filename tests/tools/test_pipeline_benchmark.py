"""tools/pipeline_benchmark.py: a smoke run at tiny settings (output fields, never speed)."""

import json

import pytest
from conftest import load_tool, positive_finite


@pytest.fixture(scope="module")
def tool():
    return load_tool("pipeline_benchmark")



@pytest.mark.parametrize("extra", [[], ["--dataset", "cifar10", "--mock", "--mixup", "0.2", "--random-erasing", "0.5"]])
def test_smoke_run_prints_json_fields(tool, capsys, extra):
    status = tool.main(["--image-size", "32", "--batch", "8", "--pipeline-batches", "2", "--train-steps", "1",
                        "--warmup", "1", "--json", *extra])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"dataset", "mock", "image_size", "batch_size", "model", "augment", "pipeline_images_per_s",
                           "model_images_per_s", "ratio", "goal_ratio", "goal_met", "machine"}
    assert result["dataset"] == ("cifar10" if extra else "digits") and result["image_size"] == 32
    assert positive_finite(result["pipeline_images_per_s"]) and positive_finite(result["model_images_per_s"])
    assert result["ratio"] == pytest.approx(result["pipeline_images_per_s"] / result["model_images_per_s"])
    assert result["goal_met"] == (result["ratio"] >= tool.GOAL_RATIO)
    assert result["augment"]["mixup"] == (0.2 if extra else 0.0)


def test_text_output_and_cifar_needs_mock(tool, capsys):
    assert tool.main(["--image-size", "32", "--batch", "4", "--pipeline-batches", "1", "--train-steps", "1",
                      "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "input pipeline" in out and "model training" in out and "ratio" in out
    with pytest.raises(SystemExit):
        tool.main(["--dataset", "cifar10"])
