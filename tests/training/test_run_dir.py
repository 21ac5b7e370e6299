"""Run directories never mislead: restart starts over, a changed config is refused, Ctrl-C resumes,
failed setup leaves nothing behind, the results count the epochs run, curves.png."""

import json
import os
import signal
import sys

import pytest

from keras_cnn import jobs
from keras_cnn.training import callbacks as training_callbacks
from keras_cnn.training import config, run

# The quickstart's ResNet at two stages of one block, width 8, two steps per epoch, one evaluation
# batch: a few seconds per run.
TINY = ["model_args.stem_width=8", "model_args.planes=(8, 16)", "model_args.depths=(1, 1)", "model_args.strides=(1, 2)",
        "steps_per_epoch=2", "eval_steps=1", "jit_compile=False"]


def _config(*overrides):
    return config.apply_overrides(config.load_recipe("digits_quickstart"), [*TINY, *overrides])


def _train(out, *overrides, **kwargs):
    return jobs.train(_config(*overrides), output_dir=str(out), verbose=0, **kwargs)


def _rows(path):
    return path.read_text().strip().splitlines()[1:]


def _event_files(out):
    return sorted(p.name for p in (out / "logs").rglob("events.out.tfevents.*"))


def test_restart_starts_over_and_a_finished_run_has_curves(tmp_path):
    out = tmp_path / "run"
    first = _train(out, "epochs=1")
    assert first["epochs"] == 1 and first["epochs_run"] == 1 and first["resumed_at_epoch"] == 0
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"val_loss", "val_accuracy"} <= set(header)  # per-epoch validation (the quickstart's own setting)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first["curves"] == str(out / "curves.png")
    old_events = _event_files(out)
    assert len(old_events) == 2  # train/ and validation/

    again = _train(out, "epochs=1", restart=True)
    assert not again.get("already_finished")
    assert len(_rows(out / "history.csv")) == 1  # not the old rows plus the new ones
    assert len(_event_files(out)) == 2 and not set(_event_files(out)) & set(old_events)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the moved-aside run is deleted


def test_an_interrupted_restart_never_shows_the_old_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _train(out, "epochs=1")
    seen = []

    def interrupted_job(cfg, paths, strategy, data_dir, verbose):
        seen.append(sorted(os.listdir(paths.root)) if os.path.isdir(paths.root) else [])
        raise KeyboardInterrupt

    monkeypatch.setitem(jobs.TRAINERS, "supervised", interrupted_job)
    with pytest.raises(run.TrainingInterrupted, match="run the same command"):
        _train(out, "epochs=1", restart=True)
    assert seen == [[]]  # the job started in an empty directory: no old model.keras, results.json, backup
    assert not (out / "model.keras").exists() and not (out / "results.json").exists()


def test_restart_refuses_to_delete_files_that_are_not_part_of_a_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not part of a run: \['notes.txt'\].*--output"):
        _train(out, "epochs=1", restart=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "config.json").exists()


def test_a_run_with_another_config_is_refused(tmp_path):
    out = tmp_path / "run"
    _train(out, "epochs=1")
    with pytest.raises(ValueError) as error:
        _train(out, "epochs=2", "model_args.stem_width=16")
    message = str(error.value)
    assert "finished run with a different config" in message
    assert "schedule.epochs: 1 -> 2" in message and "model_args.stem_width: 8 -> 16" in message
    assert "--restart" in message and "--output" in message
    # Keys that do not change what is trained may differ; so may fit's verbosity (not a config key).
    same = jobs.train(_config("epochs=1", "download=True"), output_dir=str(out), verbose=1)
    assert same["already_finished"] is True
    # A partial run (no results.json) is refused the same way.
    (out / "results.json").unlink()
    with pytest.raises(ValueError, match=r"holds a run with a different config.*optim.learning_rate: 0.4 -> 0.2"):
        _train(out, "epochs=1", "learning_rate=0.2")


@pytest.mark.parametrize("bad", ["optimizer='sgdd'", "schedule='cosinee'", "model_args.zero_gama=True"])
def test_failed_argument_checks_leave_nothing_behind(tmp_path, bad):
    out = tmp_path / "new"
    with pytest.raises((ValueError, TypeError)):
        _train(out, "epochs=1", bad)
    assert not out.exists()
    empty = tmp_path / "empty"  # a directory the user made stays, empty
    empty.mkdir()
    with pytest.raises((ValueError, TypeError)):
        _train(empty, "epochs=1", bad)
    assert empty.is_dir() and not list(empty.iterdir())


def test_ctrl_c_keeps_the_backup_and_the_resumed_results_count_the_epochs_run(tmp_path, monkeypatch):
    out = tmp_path / "run"

    class CtrlCInEpoch2(training_callbacks.EpochTimer):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:  # Ctrl-C as epoch 2 begins
                raise KeyboardInterrupt
            super().on_epoch_begin(epoch, logs)

    monkeypatch.setattr(run, "EpochTimer", CtrlCInEpoch2)
    with pytest.raises(run.TrainingInterrupted) as error:
        _train(out, "epochs=2")
    assert str(error.value) == "interrupted at epoch 2 of 2; run the same command to resume"
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    monkeypatch.undo()

    resumed = _train(out, "epochs=2")
    assert resumed["resumed_at_epoch"] == 1 and resumed["epochs_run"] == 1 and resumed["epochs"] == 2
    assert [row.split(",")[0] for row in _rows(out / "history.csv")] == ["0", "1"]


def test_defer_interrupts_holds_ctrl_c_until_the_write_is_done():
    # Python's own Ctrl-C handler, as in `keras-cnn train` (an xdist worker may run with another).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with training_callbacks.defer_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("written")  # not cut off by the signal
        assert done == ["written"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_plot_history_skips_cleanly(tmp_path, monkeypatch):
    history = tmp_path / "history.csv"
    # A resume after a mid-epoch backup logs epoch 1 twice: the last row counts.
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.4,1.1\n1,0.6,0.9,,\n1,0.7,0.8,0.6,0.9\n")
    assert run.plot_history(str(history), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert not run.plot_history(str(tmp_path / "missing.csv"), str(tmp_path / "none.png"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # not installed
    assert not run.plot_history(str(history), str(tmp_path / "no_matplotlib.png"))
    assert not (tmp_path / "no_matplotlib.png").exists()
