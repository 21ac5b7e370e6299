"""`keras-cnn models` and the README table generated from the same code."""

import importlib.util
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
from conftest import signal_after_first_backup

from keras_cnn import cli
from keras_cnn.utils.model_table import format_markdown, table_rows

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_models_command_prints_params_and_gmacs(capsys):
    assert cli.main(["models", "resnet18*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "params", "GMACs", "size"]
    rows = {line.split()[0]: line.split() for line in out[2:]}
    assert set(rows) == {"resnet18", "resnet18d"}
    assert rows["resnet18"][1:4] == ["11,689,512", "1.814", "224"]


def test_models_command_markdown_and_no_match(capsys):
    assert cli.main(["models", "wrn_28_2", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| name | builder | params |") and "`keras_cnn.WRN28_2`" in out
    assert cli.main(["models", "nothing*", "--no-stats"]) == 1


def test_console_script_is_installed():
    script = pathlib.Path(sys.executable).parent / "keras-cnn"
    assert script.exists(), "pip install -e . installs the keras-cnn console script"
    result = subprocess.run([str(script), "models", "--no-stats"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "senet154" in result.stdout


def test_readme_table_is_up_to_date():
    # From the stored counts, which tests/models/test_param_counts.py checks against built models.
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "tools" / "update_readme.py")
    update_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_readme)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert update_readme.render(text) == text, "run python tools/update_readme.py"
    assert format_markdown(table_rows()) in text


# --- keras-cnn train: run directories ----------------------------------------------------------------

# The quickstart at width 8; for the in-process test two stages of one block and two steps per epoch.
_NARROW = ["--set", "model_args.stem_width=8", "--set", "model_args.planes=(8, 16, 32, 64)", "--verbose", "0"]
_TINY = ["--set", "model_args.stem_width=8", "--set", "model_args.planes=(8, 16)", "--set", "model_args.depths=(1, 1)",
         "--set", "model_args.strides=(1, 2)", "--set", "steps_per_epoch=2", "--set", "eval_steps=1", "--verbose", "0"]


def test_train_refuses_a_changed_config_and_leaves_nothing_on_a_bad_value(tmp_path, capsys):
    out = tmp_path / "run"
    train = ["train", "digits_quickstart", "--output", str(out), *_TINY]
    assert cli.main([*train, "--set", "epochs=1"]) == 0
    assert "1 epochs in" in capsys.readouterr().out
    assert cli.main([*train, "--set", "epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "schedule.epochs: 1 -> 2" in err and "--restart" in err and "Traceback" not in err
    bad = tmp_path / "bad"
    assert cli.main(["train", "digits_quickstart", "--output", str(bad), *_TINY, "--set", "optimizer='sgdd'"]) == 2
    assert "sgdd" in capsys.readouterr().err and not bad.exists()


@pytest.mark.slow
def test_train_ctrl_c_is_one_line_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "keras_cnn.cli", "train", "digits_quickstart", "--output", str(out), *_NARROW,
               "--set", "epochs=4"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    metadata = out / "backup" / "training_metadata.json"
    # Ctrl-C as in a terminal: an xdist worker may ignore SIGINT, and a child inherits an ignored
    # signal (Python then installs no KeyboardInterrupt handler), so the child gets the default back.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    signal_after_first_backup(proc, metadata, signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and not stdout
    ours = [line for line in stderr.splitlines() if line.startswith("keras-cnn train:")]
    assert len(ours) == 1, stderr[-3000:]
    interrupted = int(re.fullmatch(r"keras-cnn train: interrupted at epoch (\d) of 4; run the same command to resume",
                                   ours[0]).group(1))
    backed_up = json.loads(metadata.read_text())["epoch"]
    assert 1 <= backed_up < 4 and interrupted in (backed_up, backed_up + 1)
    assert not (out / "results.json").exists()

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"keras-cnn train: resuming at epoch {backed_up + 1} of 4 from {out / 'backup'}" in resumed.stderr
    assert f"{4 - backed_up} epochs (of 4, resumed at epoch {backed_up + 1}) in" in resumed.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 4 - backed_up and results["resumed_at_epoch"] == backed_up

    # --restart starts over, also with another config: the old run's rows and events are gone.
    restarted = subprocess.run([*command, "--set", "epochs=1", "--restart"], env=env, capture_output=True, text=True,
                               timeout=600)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "1 epochs in" in restarted.stdout
    assert len((out / "history.csv").read_text().strip().splitlines()) == 1 + 1
    assert len(list((out / "logs" / "train").iterdir())) == 1


def _run(*args, env=None):
    import os

    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TPU_NAME", "KERAS_CNN_TPU")}
    return subprocess.run([sys.executable, "-m", "keras_cnn.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**environ, **(env or {})}, cwd=ROOT)


def test_commands_start_without_tensorflow_log_noise():
    # Before: absl's "All log messages before absl::InitializeLog()" banner, the oneDNN notice,
    # "Could not find cuda drivers", cpu_feature_guard and the cuInit error, twice over, on stderr.
    result = _run("recipes")
    assert result.returncode == 0 and "digits_quickstart" in result.stdout
    assert result.stderr == ""


def test_bad_set_is_one_line_without_traceback(tmp_path):
    # Before: a TypeError traceback from the runner ("can't multiply sequence by non-int of type 'float'").
    result = _run("train", "digits_quickstart", "--set", "learning_rate=fast", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr == "keras-cnn train: error: --set `learning_rate` must be a number, received learning_rate=fast\n"
    assert not (tmp_path / "run").exists()


def test_tpu_flag_without_a_tpu_is_one_line_without_traceback(tmp_path):
    # Before: a traceback ending in NotFoundError "TPUs not found in the cluster ... ConfigureDistributedTPU".
    result = _run("train", "digits_quickstart", "--tpu", "local", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.startswith("keras-cnn train: error: no TPU reachable at --tpu local: NotFoundError: "
                                    "TPUs not found in the cluster. On a machine without a TPU"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "drop --tpu, or choose another --strategy" in result.stderr
