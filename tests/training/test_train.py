"""The `keras-cnn train` job: the quickstart, resume after SIGKILL, divergence, errors."""

import json
import os
import signal
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
from conftest import signal_after_first_backup

from keras_cnn import cli

# A smaller quickstart for the process tests: width 8, a few epochs.
SMALL = ["--set", "model_args.stem_width=8", "--set", "model_args.planes=(8, 16, 32, 64)", "--verbose", "0"]


def _command(*args):
    return [sys.executable, "-m", "keras_cnn.cli", "train", "digits_quickstart", *args]


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return env


def _weights(path):
    model = keras.saving.load_model(path, safe_mode=True)
    return [np.asarray(w) for w in model.weights]


def test_unknown_recipe_and_key_list_the_valid_ones(capsys):
    assert cli.main(["train", "no_such_recipe"]) == 2
    err = capsys.readouterr().err
    assert "Unknown recipe 'no_such_recipe'" in err and "digits_quickstart" in err and "wrn28_2_cifar10" in err
    assert cli.main(["train", "digits_quickstart", "--set", "learning_rat=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'learning_rat'" in err and "'learning_rate'" in err


def test_bad_value_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["train", "digits_quickstart", "--output", str(tmp_path), "--set", "batch_size=0"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_recipes_command_lists_every_recipe(capsys):
    assert cli.main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "digits_quickstart" in out and "efficientnet_b0_imagenet" in out


# The README's first command (`keras-cnn train digits_quickstart`, >= 97 %, a complete run directory,
# a rerun that does not retrain) is checked where the README's blocks run: tests/test_readme_examples.py.


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    args = [*SMALL, "--set", "epochs=4"]
    reference = tmp_path / "reference"
    proc = subprocess.run(_command("--output", str(reference), *args), env=_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = tmp_path / "killed"
    metadata = run / "backup" / "training_metadata.json"
    victim = subprocess.Popen(_command("--output", str(run), *args), env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    signal_after_first_backup(victim, metadata, signal.SIGKILL)
    try:
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    assert not (run / "results.json").exists(), "the run finished before it was killed; the test proves nothing"
    killed_at = json.loads(metadata.read_text())["epoch"]
    assert 1 <= killed_at < 4

    resumed = subprocess.run(_command("--output", str(run), *args), env=_env(), capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["resumed_at_epoch"] == killed_at
    for a, b in zip(_weights(reference / "model.keras"), _weights(run / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert results["test_accuracy"] == json.loads((reference / "results.json").read_text())["test_accuracy"]


@pytest.mark.slow
def test_nan_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # One good epoch, then the learning rate jumps by 1e12 and the loss goes NaN in epoch 2.
    out = tmp_path / "run"
    code = cli.main(["train", "digits_quickstart", "--output", str(out), *SMALL, "--set", "epochs=3",
                     "--set", "warmup_epochs=0", "--set", "schedule=step",
                     "--set", "schedule_args={'boundaries_epochs': (1,), 'factor': 1e12}"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "NaN" in err and "epoch 2" in err and "Last good checkpoint" in err
    checkpoint = out / "checkpoints" / "last.weights.h5"
    assert checkpoint.exists() and not (out / "results.json").exists()
    with h5py.File(checkpoint) as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    assert arrays and all(np.isfinite(a).all() for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))
    # The backup of the last good epoch survives for a resume.
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"] == 1


def _imports(package):
    """`{module file: names it imports}` over a package's source (every import statement, any depth)."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "keras_cnn" / package
    found = {}
    for path in sorted(root.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[path.name] = names
    return found


def test_job_layer_sits_above_training_and_ssl():
    from keras_cnn import jobs
    from keras_cnn.training.config import METHODS

    assert tuple(jobs.TRAINERS) == METHODS  # every method has a job
    with pytest.raises(ValueError, match=r"`method` must be one of .*received method='mlp'"):
        jobs.trainer_for("mlp")
    # keras_cnn.training never imports keras_cnn.ssl; keras_cnn.ssl never imports the supervised
    # runner nor the job layer; keras_cnn.training never imports the job layer above it.
    for name, imported in _imports("training").items():
        assert not {m for m in imported if m.startswith("keras_cnn.ssl")}, name
        assert not {m for m in imported if m.startswith("keras_cnn.jobs")}, name
    for name, imported in _imports("ssl").items():
        assert not imported & {"keras_cnn.training.runner", "keras_cnn.jobs"}, name
    for probe in ("import sys, keras_cnn.training.runner, keras_cnn.training.run; "
                  "assert not [m for m in sys.modules if m.startswith(('keras_cnn.ssl', 'keras_cnn.jobs'))]",
                  "import sys, keras_cnn.ssl.runner; "
                  "assert not [m for m in sys.modules if m in ('keras_cnn.training.runner', 'keras_cnn.jobs')]"):
        proc = subprocess.run([sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
