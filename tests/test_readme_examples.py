"""The README's code examples run as printed (each in a fresh process)."""

import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _python_block(after_heading):
    text = README.read_text()
    section = text[text.index(after_heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("heading", ["## Distributed / TPU / mixed precision", "### The Bag-of-Tricks toolkit",
                                     "## Feature pyramids"])
def test_readme_example_runs(heading, tmp_path):
    code = _python_block(heading).replace("/tmp/keras_cnn_run", str(tmp_path))
    # A fresh interpreter: get_strategy must run before any other TensorFlow op.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    if heading.startswith("## Distributed"):
        assert (tmp_path / "model.keras").is_file()
        assert not (tmp_path / "backup").exists()  # a finished run leaves no backup to "resume"
    if heading == "## Feature pyramids":
        # Each print is followed by a comment with what it prints.
        lines = code.splitlines()
        expected = [lines[i + 1].lstrip("# ") for i, line in enumerate(lines[:-1]) if line.startswith("print(")]
        assert result.stdout.splitlines()[-len(expected):] == expected
