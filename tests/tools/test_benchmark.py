"""tools/benchmark.py: a smoke run at tiny settings (schema and sanity, never speed)."""

import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import textwrap

import pytest
from conftest import load_tool, positive_finite


@pytest.fixture(scope="module")
def tool():
    return load_tool("benchmark")



def tiny_run_args(models, out, *, repeats, threads, torch_python):
    """The command line of a tiny (32 px, one step) benchmark run with a timm side."""
    return [
        "--models", models, "--size", "32", "--batch", "2", "--steps", "1", "--warmup", "1",
        "--repeats", str(repeats), "--precision", "float32", "--xla", "off", "--gemm-size", "128",
        "--threads", str(threads), "--torch-python", torch_python, "--out", str(out), "--markdown",
    ]



def test_smoke_run_writes_json_csv_markdown(tool, tmp_path, capsys, monkeypatch):
    # The timm side's worker runs under this interpreter, as when the variable is not set.
    monkeypatch.delenv(tool.TORCH_PYTHON_ENV, raising=False)
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

    # MobileNet has no timm side; without torch/timm the run says why, with no timm column.
    here = all(importlib.util.find_spec(name) for name in ("torch", "timm"))
    assert result["torch"]["available"] is here
    if not here:
        assert "cannot import torch/timm" in result["torch"]["reason"]
        assert "No timm column: " in markdown and "cannot import torch/timm" in markdown
    assert result["settings"]["threads"] >= 1 and not result["settings"]["no_torch"]
    assert all(row["timm_images_per_s"] is None and row["ratio_timm"] is None for row in comparisons)
    assert "timm img/s" not in markdown and "timm img/s" not in printed


@pytest.mark.parametrize("argv, argument", [
    (["--models", "resnet51"], "--models"),
    (["--precision", "float64"], "--precision"),
    (["--xla", "maybe"], "--xla"),
    (["--batch", "0"], "--batch"),
    (["--steps", "two"], "--steps"),
    (["--size", "16"], "--size"),
    (["--threads", "0"], "--threads"),
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


# A stand-in for a python with torch + timm: run as `PYTHON tools/torch_worker.py --threads T`, it
# ignores the script, answers the worker protocol with fixed times (10 ms wall, 40 ms CPU per
# step) and logs every request to $FAKE_WORKER_LOG.
FAKE_WORKER = """
import json, os, sys
threads = int(sys.argv[sys.argv.index("--threads") + 1])
log = open(os.environ["FAKE_WORKER_LOG"], "a")
def reply(message):
    print(json.dumps(message), flush=True)
reply({"ready": True, "torch": "0.0-fake", "timm": "0.1-fake", "threads": threads, "interop_threads": 1,
       "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "python": sys.executable})
for line in sys.stdin:
    log.write(line)
    log.flush()
    request = json.loads(line)
    if request["cmd"] == "build":
        reply({"error": "RuntimeError: Unknown model"} if request["timm"] == "missing"
              else {"key": request["key"], "params": 123})
    elif request["cmd"] == "run":
        reply({"wall": 0.01 * request["steps"], "cpu": 0.04 * request["steps"]})
    else:
        reply({"ok": True})
        if request["cmd"] == "quit":
            break
"""


def fake_python(tmp_path, monkeypatch, body=FAKE_WORKER):
    """An executable that stands in for `--torch-python`; returns its path and its request log."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    return str(path), log


def test_timm_column_from_a_fake_worker(tool, tmp_path, capsys, monkeypatch):
    python, log = fake_python(tmp_path, monkeypatch)
    # One pair with all three implementations (the twin is keras_cnn's side), one timm-only pair
    # whose twin is another keras_cnn network (timed as a side of its own). Small graphs: fast.
    monkeypatch.setattr(tool, "PAIRS", {
        "tiny": tool.Pair("lenet5", "MobileNet", timm="fake_lenet"),
        "tiny_twin": tool.Pair("lenet5", timm="fake_squeezenet", timm_twin="squeezenet1_1"),
    })
    out = tmp_path / "latest"
    status = tool.main(tiny_run_args("tiny,tiny_twin", out, repeats=2, threads=1, torch_python=python))
    assert status == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["torch"] == {
        "available": True, "reason": None, "torch": "0.0-fake", "timm": "0.1-fake", "threads": 1,
        "interop_threads": 1, "omp_num_threads": "1", "omp_wait_policy": "PASSIVE", "python": sys.executable}

    # The protocol: per pair a build, per mode one warm-up then one run per repeat, a free, then quit.
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    builds = [r for r in requests if r["cmd"] == "build"]
    assert [(r["timm"], r["size"], r["batch"], r["classes"]) for r in builds] == [
        ("fake_lenet", 32, 2, 1000), ("fake_squeezenet", 32, 2, 1000)]
    runs = [(r["key"], r["mode"], r["steps"]) for r in requests if r["cmd"] == "run"]
    for build in builds:
        assert [run[1:] for run in runs if run[0] == build["key"]] == [
            ("inference", 1), ("train", 1), ("inference", 1), ("train", 1), ("inference", 1), ("train", 1)]
    assert [r["key"] for r in requests if r["cmd"] == "free"] == [b["key"] for b in builds]
    assert requests[-1] == {"cmd": "quit"}

    measurements = {(m["model"], m["impl"], m["mode"]): m for m in result["measurements"]}
    assert {(model, impl) for model, impl, _ in measurements} == {
        ("tiny", "keras_cnn"), ("tiny", "keras.applications"), ("tiny", "timm"),
        ("tiny_twin", "keras_cnn"), ("tiny_twin", "keras_cnn(timm twin)"), ("tiny_twin", "timm")}
    for (model, impl, mode), m in measurements.items():
        if impl == "timm":
            # 2 images in 10 ms of wall-clock and 40 ms of CPU time; the twin's MACs.
            assert m["repeats_images_per_s"] == pytest.approx([200.0, 200.0])
            assert m["images_per_cpu_s"] == pytest.approx(50.0) and m["params"] == 123
            twin = "keras_cnn" if model == "tiny" else "keras_cnn(timm twin)"
            assert m["macs_per_image"] == measurements[(model, twin, mode)]["macs_per_image"]
    assert (measurements[("tiny_twin", "keras_cnn(timm twin)", "train")]["macs_per_image"]
            != measurements[("tiny_twin", "keras_cnn", "train")]["macs_per_image"])

    ceiling = result["gemm"]["ceiling_gflops"] * 1e9
    rows = {(r["model"], r["mode"]): r for r in result["comparisons"]}
    assert list(rows) == [("tiny", "inference"), ("tiny", "train"), ("tiny_twin", "inference"),
                          ("tiny_twin", "train")]
    for (model, mode), row in rows.items():
        twin = measurements[(model, "keras_cnn" if model == "tiny" else "keras_cnn(timm twin)", mode)]
        paired = [v / 200.0 for v in twin["repeats_images_per_s"]]
        assert row["timm_twin"] == ("lenet5" if model == "tiny" else "squeezenet1_1")
        assert row["timm_twin_images_per_s"] == twin["images_per_s"]
        assert row["timm_images_per_s"] == pytest.approx(200.0)
        assert row["ratio_timm"] == pytest.approx(statistics.median(paired))
        assert (row["ratio_timm_min"], row["ratio_timm_max"]) == pytest.approx((min(paired), max(paired)))
        assert row["ratio_timm_cpu_time"] == pytest.approx(
            statistics.median(v / 50.0 for v in twin["repeats_images_per_cpu_s"]))
        factor = 6 if mode == "train" else 2
        assert row["timm_gflops_per_image"] == pytest.approx(factor * twin["macs_per_image"] / 1e9)
        assert row["timm_mfu"] == pytest.approx(200.0 * row["timm_gflops_per_image"] * 1e9 / ceiling)
        assert row["timm_twin_mfu"] == pytest.approx(
            twin["images_per_s"] * row["timm_gflops_per_image"] * 1e9 / ceiling)
    # No keras.applications side in the timm-only pair: its columns are empty, not made up.
    assert rows[("tiny_twin", "train")]["keras_applications_images_per_s"] is None
    assert rows[("tiny_twin", "train")]["ratio"] is None and rows[("tiny_twin", "train")]["keras_cnn_mfu"] > 0
    assert [(r["model"], r["mode"]) for r in result["defaults"]] == [("tiny", "inference"), ("tiny", "train")]

    with out.with_suffix(".csv").open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 4 and list(csv_rows[0]) == list(result["comparisons"][0])
    assert float(csv_rows[1]["ratio_timm"]) == pytest.approx(rows[("tiny", "train")]["ratio_timm"])
    assert csv_rows[3]["keras_applications_images_per_s"] == ""

    markdown = out.with_suffix(".md").read_text()
    assert markdown in capsys.readouterr().out
    assert "OMP_WAIT_POLICY=PASSIVE" in markdown and "OMP_NUM_THREADS=1" in markdown
    assert "torch 0.0-fake, timm 0.1-fake" in markdown and "with 1 intra-op / 1 inter-op threads" in markdown
    assert "| timm img/s | keras_cnn/timm [min, max] | CPU-time ratio vs timm | MFU timm |" in markdown
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model | precision | XLA"))
    table = lines[start:lines.index("", start)]
    assert len(table) == 2 + 4 and len({line.count("|") for line in table}) == 1
    train = rows[("tiny", "train")]
    assert (f"| 200.00 | **{train['ratio_timm']:.2f}** [{train['ratio_timm_min']:.2f}, "
            f"{train['ratio_timm_max']:.2f}] | {train['ratio_timm_cpu_time']:.2f} | {train['timm_mfu']:.1%} |"
            in markdown)
    assert "| tiny_twin | float32 | off | train | " in markdown and "| – | – | – |" in markdown
    # The text table: unmeasured cells are dashes as wide as their column, so every line lines up.
    text = tool.format_text(result["comparisons"]).splitlines()
    assert len({len(line) for line in text}) == 1, text
    assert "–" in text[-1]


@pytest.mark.parametrize("case", ["no-torch", "missing python", "exits", "cannot import"])
def test_without_torch_the_run_goes_on_and_says_why(tool, tmp_path, monkeypatch, case):
    python = {
        "no-torch": sys.executable,
        "missing python": str(tmp_path / "no-such-python"),
        "exits": fake_python(tmp_path, monkeypatch, "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)")[0],
        "cannot import": sys.executable,  # the real worker, under a python without torch
    }[case]
    if case == "cannot import" and all(importlib.util.find_spec(name) for name in ("torch", "timm")):
        pytest.skip("this python imports torch and timm")
    args = tool.parse_args(["--torch-python", python, "--threads", "1"] + ["--no-torch"] * (case == "no-torch"))
    messages = []
    worker, info = tool.start_torch(args, messages.append)
    assert worker is None and info["available"] is False
    expected = {"no-torch": "--no-torch", "missing python": "cannot run --torch-python=",
                "exits": "exited with status 3: boom", "cannot import": "cannot import torch/timm"}[case]
    assert expected in info["reason"]
    assert messages == [f"no timm column: {info['reason']}"]


def test_worker_errors_are_worker_errors(tool, tmp_path, monkeypatch):
    python, _ = fake_python(tmp_path, monkeypatch)
    worker = tool.TorchWorker(python, threads=2)
    try:
        assert worker.info["threads"] == 2 and worker.info["omp_wait_policy"] == "PASSIVE"
        with pytest.raises(tool.WorkerError, match="Unknown model"):
            worker.request(cmd="build", key="k", timm="missing", size=32, batch=2, classes=10)
        assert worker.request(cmd="run", key="k", mode="train", steps=3) == pytest.approx({"wall": 0.03, "cpu": 0.12})
    finally:
        worker.close()
    assert worker.process.returncode == 0


def torch_python():
    """$KERAS_CNN_TORCH_PYTHON if it names a python that imports torch and timm, else None."""
    python = os.environ.get("KERAS_CNN_TORCH_PYTHON")
    if python and subprocess.run([python, "-c", "import timm, torch"], capture_output=True).returncode == 0:
        return python
    return None


@pytest.mark.slow
def test_real_timm_side(tool, tmp_path, monkeypatch):
    python = torch_python()
    if python is None:
        pytest.skip("KERAS_CNN_TORCH_PYTHON is not set to a python that imports torch and timm")
    # The real pair less its keras.applications side (the other tests cover it): half the tracing.
    pair = tool.PAIRS["efficientnetb0"]
    monkeypatch.setitem(tool.PAIRS, "efficientnetb0", tool.Pair(pair.keras_cnn, timm=pair.timm))
    out = tmp_path / "latest"
    status = tool.main(tiny_run_args("efficientnetb0", out, repeats=1, threads=2, torch_python=python))
    assert status == 0
    result = json.loads(out.with_suffix(".json").read_text())
    torch = result["torch"]
    assert torch["available"] is True and torch["torch"] and torch["timm"]
    assert (torch["threads"], torch["interop_threads"], torch["omp_num_threads"], torch["omp_wait_policy"]) == (
        2, 1, "2", "PASSIVE")
    by = {(m["impl"], m["mode"]): m for m in result["measurements"]}
    assert set(by) == {(impl, mode) for impl in ("keras_cnn", "timm")
                       for mode in ("inference", "train")}
    # The same network: timm's efficientnet_b0 has keras_cnn's parameters (BatchNorm statistics included).
    assert by[("timm", "train")]["params"] == by[("keras_cnn", "train")]["params"]
    for row in result["comparisons"]:
        assert row["timm"] == "efficientnet_b0" and row["timm_twin"] == "efficientnet_b0"
        for key in ("timm_images_per_s", "ratio_timm", "ratio_timm_cpu_time", "timm_mfu"):
            assert positive_finite(row[key]), (key, row[key])
    markdown = out.with_suffix(".md").read_text()
    assert f"torch {torch['torch']}, timm {torch['timm']}" in markdown and "| MFU timm |" in markdown


# The families timm has no model of, and the size each builds at in both frameworks.
TORCH_ONLY = {"alexnet": 64, "googlenet": 64, "squeezenet": 64, "lenet5": 32}


def torchvision_python():
    """`torch_python()` if torchvision imports there too, else None."""
    python = torch_python()
    if python and subprocess.run([python, "-c", "import torchvision"], capture_output=True).returncode == 0:
        return python
    return None


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(TORCH_ONLY))
def test_real_torch_sides_of_the_families_timm_lacks(tool, tmp_path, model):
    python = torchvision_python()
    if python is None:
        pytest.skip("KERAS_CNN_TORCH_PYTHON is not set to a python that imports torch, timm and torchvision")
    import keras_cnn

    pair = tool.PAIRS[model]
    worker = tool.TorchWorker(python, threads=1)
    try:
        assert worker.info["torchvision"]
        size = TORCH_ONLY[model]
        reply = worker.request(cmd="build", key="k", timm=pair.timm, size=size, batch=2, classes=10)
        # The same network: torchvision's (or the worker's LeNet-5) has the keras_cnn twin's
        # parameters, BatchNorm statistics and GoogLeNet's auxiliary classifiers included.
        twin = keras_cnn.create_model(pair.twin, input_shape=(size, size, 3), classes=10)
        assert reply["params"] == twin.count_params()
        for mode in ("train", "inference"):
            times = worker.request(cmd="run", key="k", mode=mode, steps=1)
            assert positive_finite(times["wall"]) and times["cpu"] >= 0
    finally:
        worker.close()
