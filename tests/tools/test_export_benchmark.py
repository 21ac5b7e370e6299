"""tools/export_benchmark.py: a smoke run at tiny settings (schema and sanity, never speed)."""

import json

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("export_benchmark")


def test_smoke_run_times_every_engine_against_the_tf_graph(tool, tmp_path):
    out = tmp_path / "bench"
    assert tool.main(["--model", "resnet18", "--size", "32", "--batches", "1,2", "--steps", "1", "--warmup", "1",
                      "--repeats", "2", "--calibration", "2", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert [(r["batch"], r["engine"]) for r in result["rows"]] == [
        (b, e) for b in (1, 2) for e in tool.ENGINES]
    for row in result["rows"]:
        assert len(row["repeats"]) == 2 and all(s > 0 for s in row["repeats"])
        if row["engine"] == "tf_graph":
            assert row["speedup_vs_tf_graph"] == 1.0
    assert "| 1 | tflite_int8 |" in out.with_suffix(".md").read_text()


def test_bad_flag_is_named(tool, capsys):
    assert tool.main(["--batches", "0"]) == 2
    assert "received batches='0'" in capsys.readouterr().err
