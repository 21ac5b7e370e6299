"""tools/fashion_mnist.py: time to accuracy from a run's history.csv, and the table."""

import json

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("fashion_mnist")


def _fake_run(directory, accuracies, seconds=60.0):
    directory.mkdir()
    rows = ["epoch,accuracy,epoch_seconds,loss,train_seconds,val_accuracy,val_loss"]
    for epoch, accuracy in enumerate(accuracies):
        rows.append(f"{epoch},0.9,{seconds},0.5,{seconds * (epoch + 1)},{accuracy},0.4")
    (directory / "history.csv").write_text("\n".join(rows) + "\n")
    (directory / "results.json").write_text(json.dumps({
        "recipe_model": "resnet18", "test_accuracy": accuracies[-1], "test_loss": 0.4, "epochs": len(accuracies),
        "train_seconds": seconds * len(accuracies) + 5, "precision": "float32"}))
    (directory / "config.json").write_text(json.dumps({"model": "resnet18", "model_args": {"planes": [16, 32]},
                                                       "seed": 0}))
    return str(directory)


def test_time_to_accuracy_is_the_first_epoch_at_the_target(tool, tmp_path):
    run = _fake_run(tmp_path / "a", [0.80, 0.929, 0.931, 0.925, 0.94])
    summary = tool.summarise_run(run, 0.93)
    # Epoch 3 (1-based) is the first at >= 93 %; its training time excludes validation.
    assert (summary["target_epoch"], summary["target_seconds"]) == (3, 180.0)
    assert summary["test_accuracy"] == 0.94 and summary["train_seconds"] == 305.0
    never = tool.summarise_run(_fake_run(tmp_path / "b", [0.8, 0.9]), 0.93)
    assert never["target_epoch"] is None and never["target_seconds"] is None


def test_summary_table_and_json(tool, tmp_path):
    runs = [_fake_run(tmp_path / "a", [0.9, 0.94]), _fake_run(tmp_path / "b", [0.91, 0.92])]
    out, table = tmp_path / "r.json", tmp_path / "r.md"
    assert tool.main(["--run", runs[0], "--run", runs[1], "--json", str(out), "--markdown", str(table)]) == 0
    result = json.loads(out.read_text())
    assert result["reached_target"] == 1 and result["test_accuracy"]["mean"] == pytest.approx(0.93)
    text = table.read_text()
    assert "| 94.00 | 2.0 | 2.1 | 2.0 (epoch 2) |" in text and "not reached" in text
    assert "| ResNet-18 (public benchmark table) | 94.9 |" in text
    with pytest.raises(SystemExit):
        tool.parse_args(["--target", "93"])
