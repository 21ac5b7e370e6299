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
