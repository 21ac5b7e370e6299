"""`keras-cnn models` and the README table generated from the same code."""

import importlib.util
import pathlib
import subprocess
import sys

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
