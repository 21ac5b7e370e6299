"""tools/ablate.py: the rows are cumulative one-trick changes, and a tiny run produces the table."""

import statistics

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def ablate():
    return load_tool("ablate")


def _flat(config):
    flat = {k: v for k, v in config.items() if k != "model_args"}
    flat.update({f"model_args.{k}": v for k, v in config["model_args"].items()})
    return flat


def test_each_row_adds_exactly_one_trick(ablate):
    rows = ablate.row_configs(epochs=20)
    assert [name for name, _ in rows] == [name for name, _ in ablate.ROWS]
    baseline = rows[0][1]
    assert baseline["schedule"] == "step" and baseline["schedule_args"]["boundaries_epochs"] == (10, 15)
    assert not baseline["model_args"]["zero_gamma"] and not baseline["no_bias_decay"]
    assert baseline["label_smoothing"] == 0 and baseline["mixup_alpha"] == 0 and baseline["warmup_epochs"] == 0
    expected = [
        {"schedule", "schedule_args", "warmup_epochs"},
        {"model_args.zero_gamma"},
        {"no_bias_decay"},
        {"label_smoothing"},
        {"mixup_alpha"},
    ]
    assert len(rows) == len(expected) + 1
    for (_, before), (_, after), keys in zip(rows, rows[1:], expected):
        a, b = _flat(before), _flat(after)
        assert {k for k in a if a[k] != b[k]} == keys
    # The last row is the quickstart recipe plus mixup: the tricks match the recipe's.
    recipe = ablate.load_recipe("digits_quickstart")
    last = rows[-1][1]
    for key in ("schedule", "warmup_epochs", "no_bias_decay", "label_smoothing"):
        assert last[key] == recipe[key]


@pytest.mark.slow
def test_tiny_ablation_run(ablate, tmp_path):
    out_json, out_md = tmp_path / "a.json", tmp_path / "a.md"
    code = ablate.main(["--seeds", "2", "--epochs", "2", "--rows", "2", "--set", "model_args.stem_width=8",
                        "--set", "model_args.planes=(8, 8, 8, 8)", "--json", str(out_json),
                        "--markdown", str(out_md)])
    assert code == 0
    import json

    data = json.loads(out_json.read_text())
    assert [r["row"] for r in data["results"]] == ["baseline (step decay)", "+ cosine decay + warmup"]
    for r in data["results"]:
        assert len(r["accuracies"]) == 2
        assert r["mean"] == pytest.approx(statistics.fmean(r["accuracies"]))
        assert r["std"] == pytest.approx(statistics.stdev(r["accuracies"]))  # the sample std (ddof=1)
        # Each accuracy is over the 360 test digits: a whole number of them right.
        assert all(a * 360 == pytest.approx(round(a * 360)) for a in r["accuracies"])
    table = out_md.read_text()
    assert "| baseline (step decay) |" in table and "±" in table
