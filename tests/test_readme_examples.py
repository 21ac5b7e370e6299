"""Every code block of README.md runs as printed (each in a fresh process), or says why not.

The convention, for whoever edits the README: a fenced ```python or ```bash block runs in this
test as written. An HTML comment on the line right above the fence changes that:

- `<!-- test: slow -->`: runs in the slow tier only (`pytest -m slow`), for blocks over ~15 s;
- `<!-- test: skip (REASON) -->`: not run, for what CI cannot do (internet downloads, a TPU,
  root, half an hour of training, the test suite itself). A skipped Python block is still
  compiled and checked for names used before any import or assignment defines them.

Bash blocks run with `bash -e` in a fresh directory, with the interpreter's `bin/` (`keras-cnn`)
first on the PATH; a leading `pip install ... &&` is dropped (the package under test is
installed already). Python blocks run with `python -c`, `/tmp/keras_cnn_run` replaced by a
fresh directory. The last test lists every skipped block with its reason.
"""

import ast
import builtins
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"(?:^<!-- test: (?P<marker>[^>]*?) -->\n)?^```(?P<lang>python|bash)\n(?P<code>.*?)^```",
                    re.M | re.S)
_SKIP = re.compile(r"^skip \((?P<reason>.+)\)$")
_PIP_SETUP = re.compile(r"^pip install [^\n&]*&&\s*", re.M)


def _heading(text, position):
    headings = re.findall(r"^#+ .*$", text[:position], re.M)
    return headings[-1] if headings else "(top)"


def readme_blocks():
    """`[(id, heading, language, code, marker)]` for every python/bash block of the README."""
    text = README.read_text()
    blocks, seen = [], {}
    for match in _FENCE.finditer(text):
        heading = _heading(text, match.start())
        slug = re.sub(r"[^a-z0-9]+", "-", heading.lstrip("# ").lower()).strip("-")
        seen[slug] = seen.get(slug, 0) + 1
        block_id = f"{slug}-{match['lang']}" + (f"-{seen[slug]}" if seen[slug] > 1 else "")
        marker = (match["marker"] or "").strip()
        if marker and marker != "slow" and not _SKIP.match(marker):
            raise ValueError(f"README block under {heading!r}: unknown marker <!-- test: {marker} --> "
                             "(use 'slow' or 'skip (REASON)')")
        blocks.append((block_id, heading, match["lang"], match["code"], marker))
    return blocks


BLOCKS = readme_blocks()


def _params():
    params = []
    for block in BLOCKS:
        marks = [pytest.mark.slow] if block[4] == "slow" else []
        if _SKIP.match(block[4]):
            marks.append(pytest.mark.skip(reason=f"README: {_SKIP.match(block[4])['reason']}"))
        params.append(pytest.param(block, id=block[0], marks=marks))
    return params


def _run(command, tmp_path, timeout=900):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    # As a user runs it: TensorFlow's default threads (conftest gives each xdist worker a share,
    # and the thread count changes float reductions: the quickstart prints 99.17 % on 1 thread).
    env.pop("TF_NUM_INTRAOP_THREADS", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)


@pytest.mark.parametrize("block", _params())
def test_readme_block_runs(block, tmp_path):
    _, heading, language, code, _ = block
    if language == "bash":
        result = _run(["bash", "-e", "-c", _PIP_SETUP.sub("", code)], tmp_path)
    else:
        code = code.replace("/tmp/keras_cnn_run", str(tmp_path))
        # A fresh interpreter: get_strategy must run before any other TensorFlow op.
        result = _run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, f"README block under {heading!r} failed:\n{result.stderr[-3000:]}"
    _check_claims(heading, code, result.stdout, tmp_path)


def _check_claims(heading, code, stdout, tmp_path):
    """What the README says each block gives."""
    if heading.startswith("## Distributed"):
        assert (tmp_path / "model.keras").is_file()
        assert not (tmp_path / "backup").exists()  # a finished run leaves no backup to "resume"
    if heading == "## Feature pyramids (detection and segmentation backbones)":
        # Each print is followed by a comment with what it prints.
        lines = code.splitlines()
        expected = [lines[i + 1].lstrip("# ") for i, line in enumerate(lines[:-1]) if line.startswith("print(")]
        assert stdout.splitlines()[-len(expected):] == expected
    if heading.startswith("### The Bag-of-Tricks toolkit"):
        # The EMA model and the distilled student learn (chance is 10 %): the prints' comments.
        ema = float(re.search(r"EMA weights: test accuracy ([\d.]+) %", stdout).group(1))
        student = float(re.search(r"distilled student: test accuracy ([\d.]+) %", stdout).group(1))
        assert ema > 90 and student > 50, stdout
    if heading == "## Set-up (fresh machine)":
        # The figure the README states for the quickstart (seed 0, deterministic).
        claimed = re.search(r"prints `(test accuracy: [\d.]+ %)` \(seed 0\)", README.read_text()).group(1)
        assert claimed in stdout, stdout
        _check_quickstart_run(stdout, tmp_path / "runs" / "digits_quickstart", tmp_path)


def _check_quickstart_run(stdout, out, tmp_path):
    """The README's first command as a user runs it: at least 97 %, a complete run directory, and
    the same command again does not retrain the finished run."""
    accuracy = float(re.search(r"test accuracy: ([\d.]+) %", stdout).group(1))
    assert accuracy >= 97.0, stdout
    results = json.loads((out / "results.json").read_text())
    assert results["test_accuracy"] == pytest.approx(accuracy / 100, abs=1e-4)
    assert len((out / "history.csv").read_text().strip().splitlines()) == 1 + results["epochs"]
    assert list((out / "logs").iterdir()), "no TensorBoard logs"
    assert (out / "saved_model" / "saved_model.pb").exists()
    again = _run(["keras-cnn", "train", "digits_quickstart", "--verbose", "0"], tmp_path, timeout=300)
    assert again.returncode == 0 and "finished run" in again.stdout, again.stderr[-3000:]


def _undefined_names(code):
    """Names a block reads that nothing in it (import, assignment, def, loop) or builtins defines."""
    tree = ast.parse(code)
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return sorted(used - defined)


@pytest.mark.parametrize("block", [pytest.param(b, id=b[0]) for b in BLOCKS if b[2] == "python"])
def test_readme_python_blocks_compile_and_import_what_they_use(block):
    # Also for the skipped blocks: the pretrained-weights block once used keras_cnn unimported.
    _, heading, _, code, _ = block
    compile(code, f"README block under {heading}", "exec")
    assert _undefined_names(code) == [], f"README block under {heading!r} uses names it never imports"


def test_every_readme_block_is_run_or_says_why_not(capsys):
    skipped = [(b[0], _SKIP.match(b[4])["reason"]) for b in BLOCKS if _SKIP.match(b[4])]
    slow = [b[0] for b in BLOCKS if b[4] == "slow"]
    with capsys.disabled():
        print(f"\nREADME: {len(BLOCKS)} code blocks, {len(BLOCKS) - len(skipped)} run "
              f"({len(slow)} in the slow tier), {len(skipped)} skipped:")
        for block_id, reason in skipped:
            print(f"  {block_id}: {reason}")
    assert len(BLOCKS) >= 9  # the regex finds the README's blocks (a broken pattern finds none)
    assert len(skipped) <= len(BLOCKS) - len(skipped)  # most of the README runs
    assert all(reason.strip() for _, reason in skipped)
