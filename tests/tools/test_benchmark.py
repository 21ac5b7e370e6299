"""tools/benchmark.py: a smoke run at tiny settings (schema and sanity, never speed)."""

import csv
import json

import pytest
from conftest import load_tool, positive_finite


@pytest.fixture(scope="module")
def tool():
    return load_tool("benchmark")



def test_smoke_run_writes_json_csv_markdown(tool, tmp_path, capsys):
    out = tmp_path / "bench" / "latest"
    status = tool.main([
        "--models", "mobilenet", "--size", "32", "--batch", "2", "--steps", "1", "--warmup", "1",
        "--repeats", "2", "--precision", "float32", "--xla", "off", "--gemm-size", "128",
        "--out", str(out), "--markdown",
    ])
    assert status == 0

    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result) >= {"timestamp", "run_seconds", "machine", "settings", "gemm", "measurements", "comparisons",
                           "defaults"}
    machine = result["machine"]
    for key in ("cpu", "logical_cores", "usable_cores", "tensorflow", "keras"):
        assert machine[key], key
    assert result["settings"]["size"] == 32 and result["settings"]["models"] == ["mobilenet"]
    gemm = result["gemm"]
    # Before, between and after the (one) configuration; the best is the ceiling.
    assert len(gemm["measurements_gflops"]) == 2
    assert all(positive_finite(g) for g in gemm["measurements_gflops"])
    assert gemm["ceiling_gflops"] == max(gemm["measurements_gflops"])

    # One measurement per implementation and mode, each with every repeat.
    measurements = result["measurements"]
    assert {(m["impl"], m["mode"]) for m in measurements} == {
        (impl, mode) for impl in tool.IMPLS for mode in tool.MODES}
    for m in measurements:
        assert len(m["repeats_images_per_s"]) == 2
        assert all(positive_finite(v) for v in m["repeats_images_per_s"])
        assert m["images_per_s"] == pytest.approx(sorted(m["repeats_images_per_s"])[0] / 2
                                                  + sorted(m["repeats_images_per_s"])[1] / 2)
        assert m["macs_per_image"] > 0 and m["xla_effective"] is False
    # keras_cnn's MobileNet is keras.applications' layout: same MACs, same parameters.
    by_impl = {m["impl"]: m for m in measurements if m["mode"] == "inference"}
    assert by_impl["keras_cnn"]["macs_per_image"] == by_impl["keras.applications"]["macs_per_image"]
    assert by_impl["keras_cnn"]["params"] == by_impl["keras.applications"]["params"]

    comparisons = result["comparisons"]
    assert [(r["model"], r["precision"], r["xla"], r["mode"]) for r in comparisons] == [
        ("mobilenet", "float32", "off", "inference"), ("mobilenet", "float32", "off", "train")]
    for row in comparisons:
        for key in ("keras_cnn_images_per_s", "keras_applications_images_per_s", "ratio",
                    "keras_cnn_mfu", "keras_applications_mfu", "keras_cnn_gflops_per_image"):
            assert positive_finite(row[key]), (key, row[key])
        assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    train, inference = comparisons[1], comparisons[0]
    assert train["keras_cnn_gflops_per_image"] == pytest.approx(3 * inference["keras_cnn_gflops_per_image"])
    assert [(r["mode"], r["keras_cnn_xla"], r["keras_applications_xla"]) for r in result["defaults"]] == [
        ("inference", "off", "off"), ("train", "off", "off")]

    with out.with_suffix(".csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and list(rows[0]) == list(comparisons[0])
    assert all(positive_finite(float(row["ratio"])) for row in rows)

    printed = capsys.readouterr().out
    markdown = out.with_suffix(".md").read_text()
    assert markdown in printed
    assert "| mobilenet | float32 | off | inference |" in markdown
    assert machine["cpu"] in markdown and f"TensorFlow {machine['tensorflow']}" in markdown


@pytest.mark.parametrize("argv, argument", [
    (["--models", "resnet51"], "--models"),
    (["--precision", "float64"], "--precision"),
    (["--xla", "maybe"], "--xla"),
    (["--batch", "0"], "--batch"),
    (["--steps", "two"], "--steps"),
    (["--size", "16"], "--size"),
])
def test_bad_flags_name_the_flag_and_value(tool, argv, argument):
    with pytest.raises(ValueError, match=argument) as info:
        tool.parse_args(argv)
    assert argv[1] in str(info.value)


def test_defaults_compare_best_keras_cnn_with_keras_auto(tool):
    def row(xla, ours, theirs, ratio):
        return {"model": "m", "precision": "float32", "mode": "train", "xla": xla,
                "keras_applications_auto_xla": False, "keras_applications_xla_effective": xla == "on",
                "keras_cnn_images_per_s": ours, "keras_applications_images_per_s": theirs, "ratio": ratio}

    # XLA helps keras_cnn here: it is compared at "on" with keras.applications at Keras' "auto" (off).
    rows = [row("off", 10.0, 10.0, 1.0), row("on", 15.0, 20.0, 0.75)]
    assert tool.default_rows(rows) == [{
        "model": "m", "precision": "float32", "mode": "train", "keras_cnn_xla": "on",
        "keras_applications_xla": "off", "ratio": 1.5}]
    # Same setting on both sides: the paired median ratio is kept.
    rows = [row("off", 12.0, 10.0, 1.19), row("on", 5.0, 20.0, 0.25)]
    assert tool.default_rows(rows)[0]["ratio"] == 1.19


def test_profile_layers_times_every_layer(tool):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    y = keras.layers.ReLU(name="relu")(x)
    outputs = keras.layers.Add(name="add")([x, y])
    rows = tool.profile_layers(keras.Model(inputs, outputs), batch=2, repeats=1)
    assert sorted((name, cls) for name, cls, _ in rows) == [("add", "Add"), ("conv", "Conv2D"), ("relu", "ReLU")]
    assert all(positive_finite(ms) for _, _, ms in rows)
    assert [ms for _, _, ms in rows] == sorted((ms for _, _, ms in rows), reverse=True)
