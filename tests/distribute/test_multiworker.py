"""Multi-worker training: plain `fit` under MultiWorkerMirroredStrategy, sharding, checkpoints.

The multi-process tests start `tests/distribute/multiworker_job.py` twice (worker 0 = chief, worker 1) with a
`TF_CONFIG` on 127.0.0.1 and free ports from the OS; every process runs under `timeout -s KILL`
and every wait has a deadline, so a hung collective fails the test instead of hanging CI.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.distribute import multi_worker
from keras_cnn.distribute.checkpoint import (
    MultiWorkerBackupAndRestore,
    backup_and_restore,
    chief_only_path,
    is_chief,
    write_final_artifacts,
)
from keras_cnn.distribute.data import distribute_dataset, shard_options

JOB = Path(__file__).with_name("multiworker_job.py")
REPO = JOB.parents[2]
EPOCHS = 3
STEPS_PER_EPOCH = 6  # multiworker_job: 96 examples, global batch 16
PAUSE_EPOCH = 1
PROCESS_GUARD_S = 300  # `timeout -s KILL` per worker process
JOB_DEADLINE_S = 240  # what a test waits for a whole job


# --- helpers for the 2-process jobs ------------------------------------------------------------


def free_ports(count):
    # Hold all sockets open until every port is chosen, so the OS cannot hand one out twice.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Job:
    """Two worker processes of `multiworker_job.py` sharing `workdir`."""

    def __init__(self, workdir, *args, attempt=0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
        self.logs = [self.workdir / f"worker{i}_{attempt}.log" for i in range(2)]
        self.processes = []
        for index, log in enumerate(self.logs):
            env = dict(
                os.environ,
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            )
            command = [sys.executable, str(JOB), "--workdir", str(self.workdir), "--attempt", str(attempt),
                       "--epochs", str(EPOCHS), *args]
            if shutil.which("timeout"):
                command = ["timeout", "-s", "KILL", str(PROCESS_GUARD_S), *command]
            with open(log, "w") as out:
                self.processes.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
                )

    def wait(self, deadline_s=JOB_DEADLINE_S):
        """Return codes; processes still running at the deadline are killed (-9)."""
        end = time.monotonic() + deadline_s
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=max(end - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                self.kill()
                codes.append(process.wait())
        return codes

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()

    def report(self):
        """The end of each worker's log, for assertion messages."""
        tails = []
        for log in self.logs:
            lines = [line for line in log.read_text(errors="replace").splitlines()
                     if not line.startswith(("I0000", "W0000", "E0000", "WARNING: All log"))]
            tails.append(f"--- {log.name} ---\n" + "\n".join(lines[-40:]))
        return "\n".join(tails)

    def result(self, task, attempt=0):
        return json.loads((self.workdir / f"{task}_{attempt}.json").read_text())


@pytest.fixture
def job_factory():
    jobs = []

    def start(*args, **kwargs):
        jobs.append(Job(*args, **kwargs))
        return jobs[-1]

    yield start
    for job in jobs:  # never leave workers behind, whatever the test did
        job.kill()


def run_job(workdir, *args, attempt=0):
    job = Job(workdir, *args, attempt=attempt)
    try:
        codes = job.wait()
    finally:
        job.kill()
    return job, codes


@pytest.fixture(scope="module")
def reference_job(tmp_path_factory):
    """An uninterrupted 2-worker job with BackupAndRestore: the baseline of the fault test."""
    job, codes = run_job(tmp_path_factory.mktemp("reference"), "--backup")
    assert codes == [0, 0], job.report()
    return job


# --- 2-process MultiWorkerMirroredStrategy -------------------------------------------------------


@pytest.mark.slow
def test_two_workers_fit_evaluate_save(reference_job):
    chief, worker = reference_job.result("worker0"), reference_job.result("worker1")
    for result in (chief, worker):
        assert result["patched"] == ["TensorFlowTrainer._maybe_symbolic_build", "reduce_per_replica"]
        assert result["epochs_begun"] == list(range(EPOCHS))
        assert len(result["loss"]) == EPOCHS and np.isfinite(result["loss"]).all()
        assert result["iterations"] == EPOCHS * STEPS_PER_EPOCH
        assert result["predictions_shape"] == [32, 10]  # predict gathers both workers' shards
    # The reported losses are cross-worker reductions and the weights are mirrored: both workers
    # must agree exactly; training must also have done something.
    assert chief["loss"] == worker["loss"]
    assert chief["evaluation"] == worker["evaluation"]
    assert chief["trainable_sum"] == pytest.approx(worker["trainable_sum"], rel=1e-6)
    assert chief["loss"][-1] < chief["loss"][0]
    # Only the chief's artifact reaches the real path; the backup is deleted after a normal end.
    workdir = reference_job.workdir
    assert chief["written"] == [str(workdir / "model.keras")] and worker["written"] == []
    assert sorted(p.name for p in workdir.iterdir() if not p.name.endswith(".log")) == [
        "model.keras", "worker0_0.json", "worker1_0.json",
    ]
    model = keras.saving.load_model(workdir / "model.keras")
    assert model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 10)


@pytest.mark.slow
def test_unpatched_keras_still_fails_multi_worker_fit(tmp_path):
    """keras-team/keras#20585 is still there; when this fails, Keras fixed it: drop multi_worker.py."""
    job, codes = run_job(tmp_path, "--no-fix")
    log = job.report()
    assert codes[0] != 0, log
    assert "Attempt to convert a value (PerReplica" in job.logs[0].read_text(), log


@pytest.mark.slow
def test_killed_worker_resumes_from_backup(tmp_path, job_factory, reference_job):
    # Attempt 0: worker 1 stops after the first batch of epoch PAUSE_EPOCH, i.e. after epoch
    # PAUSE_EPOCH - 1 was backed up, with half an epoch of unsaved progress in memory.
    first = job_factory(tmp_path, "--backup", "--pause-at-epoch", str(PAUSE_EPOCH), attempt=0)
    marker = tmp_path / "worker1.paused"
    end = time.monotonic() + JOB_DEADLINE_S
    while not marker.exists():
        assert all(p.poll() is None for p in first.processes), first.report()
        assert time.monotonic() < end, "worker 1 never reached the pause\n" + first.report()
        time.sleep(0.2)
    time.sleep(0.2)  # the pid is written before the file is closed
    metadata = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == PAUSE_EPOCH
    assert (tmp_path / "backup" / "latest.weights.h5").exists()

    os.kill(int(marker.read_text()), signal.SIGKILL)
    killed_at = time.monotonic()
    # TensorFlow's model: the survivor cannot go on without its peer. Its next collective fails
    # once the coordination service misses the peer's heartbeats (or hangs); either way the
    # whole job is restarted. Give it a bounded time to fail on its own, then kill it.
    codes = first.wait(deadline_s=120)
    print(f"chief exited {time.monotonic() - killed_at:.1f} s after worker 1 was killed: rc={codes[0]}")
    assert codes[1] != 0 and codes[0] != 0, first.report()
    assert not (tmp_path / "model.keras").exists()

    # Attempt 1: the whole job restarts with the same arguments (new ports, as after a reschedule).
    marker.unlink()
    second = job_factory(tmp_path, "--backup", attempt=1)
    assert second.wait() == [0, 0], second.report()
    reference = reference_job.result("worker0")
    for task in ("worker0", "worker1"):
        resumed = second.result(task, attempt=1)
        # Completed epochs are not repeated; only the interrupted one is redone.
        assert resumed["epochs_begun"] == list(range(PAUSE_EPOCH, EPOCHS))
        # Weights, optimizer state (momentum, iteration count) and the data position are back:
        # the remaining epochs reproduce the uninterrupted run's losses.
        assert resumed["iterations"] == EPOCHS * STEPS_PER_EPOCH
        np.testing.assert_allclose(resumed["loss"], reference["loss"][PAUSE_EPOCH:], rtol=1e-5)
        assert resumed["trainable_sum"] == pytest.approx(reference["trainable_sum"], rel=1e-5)
    assert not (tmp_path / "backup").exists()  # delete_checkpoint=True after the normal end
    resumed_model = keras.saving.load_model(tmp_path / "model.keras")
    reference_model = keras.saving.load_model(reference_job.workdir / "model.keras")
    for got, want in zip(resumed_model.get_weights(), reference_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --- enable_multi_worker_fit ---------------------------------------------------------------------


@pytest.fixture
def restore_keras_trainer(monkeypatch):
    """Starts from Keras's own functions and puts back whatever was there after the test."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    def original(function):
        return function.__wrapped__ if multi_worker._is_patched(function) else function

    trainer_class = tf_trainer.TensorFlowTrainer
    monkeypatch.setattr(trainer_class, "_maybe_symbolic_build", original(trainer_class._maybe_symbolic_build))
    monkeypatch.setattr(tf_trainer, "reduce_per_replica", original(tf_trainer.reduce_per_replica))
    assert not multi_worker.multi_worker_fit_enabled()
    return tf_trainer


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tiny_data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n).astype("int32")


def test_enable_multi_worker_fit_is_idempotent(restore_keras_trainer):
    assert multi_worker.enable_multi_worker_fit() == [
        "TensorFlowTrainer._maybe_symbolic_build", "reduce_per_replica",
    ]
    assert multi_worker.multi_worker_fit_enabled()
    build = restore_keras_trainer.TensorFlowTrainer._maybe_symbolic_build
    assert multi_worker.enable_multi_worker_fit() == []
    assert restore_keras_trainer.TensorFlowTrainer._maybe_symbolic_build is build


def test_enable_multi_worker_fit_is_a_no_op_once_keras_is_fixed(restore_keras_trainer, monkeypatch):
    monkeypatch.setattr(multi_worker, "_SYMBOLIC_BUILD_BUG", "fixed upstream")
    monkeypatch.setattr(multi_worker, "_REDUCE_MEAN_BUG", "fixed upstream")
    assert multi_worker.enable_multi_worker_fit() == []
    assert not multi_worker.multi_worker_fit_enabled()


def test_patched_keras_unchanged_outside_multi_worker(restore_keras_trainer):
    x, y = tiny_data()
    losses = {}
    for patched in (False, True):
        if patched:
            multi_worker.enable_multi_worker_fit()
        keras.utils.set_random_seed(1)
        with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
            model = tiny_model()
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        losses[patched] = history.history["loss"] + [model.evaluate(x, y, verbose=0)[0]]
    assert losses[True] == losses[False]


# --- data.py -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, expected",
    [("auto", "AUTO"), ("data", "DATA"), ("file", "FILE"), ("off", "OFF"), ("DATA", "DATA")],
)
def test_shard_options(policy, expected):
    options = shard_options(policy)
    assert isinstance(options, tf.data.Options)
    assert options.experimental_distribute.auto_shard_policy == getattr(
        tf.data.experimental.AutoShardPolicy, expected
    )


def test_shard_options_accepts_the_enum():
    policy = tf.data.experimental.AutoShardPolicy.FILE
    assert shard_options(policy).experimental_distribute.auto_shard_policy == policy


@pytest.mark.parametrize("policy", ["hint", "", None, 1])
def test_shard_options_rejects(policy):
    with pytest.raises(ValueError, match=r"policy=") as error:
        shard_options(policy)
    assert repr(policy) in str(error.value)


def test_distribute_dataset_batches_globally_and_drops_the_remainder():
    strategy = tf.distribute.get_strategy()  # the default strategy hands the dataset back as is
    dataset = distribute_dataset(tf.data.Dataset.range(10), strategy, global_batch_size=4, policy="data")
    assert [batch.numpy().tolist() for batch in dataset] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert dataset.options().experimental_distribute.auto_shard_policy == (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    assert dataset.element_spec.shape.as_list() == [4]  # static: drop_remainder=True


def test_distribute_dataset_feeds_fit_under_a_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x, y = tiny_data(20)
    dataset = distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)), strategy, global_batch_size=8, policy="off"
    )
    assert isinstance(dataset, tf.distribute.DistributedDataset)
    with strategy.scope():
        model = tiny_model()
    history = model.fit(dataset, epochs=1, verbose=0)
    assert model.optimizer.iterations.numpy() == 2  # 20 examples, 2 full batches of 8
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("global_batch_size", [0, -8, 3.0, True, "8", None])
def test_distribute_dataset_rejects_batch_size(global_batch_size):
    with pytest.raises(ValueError, match="global_batch_size="):
        distribute_dataset(tf.data.Dataset.range(8), tf.distribute.get_strategy(),
                           global_batch_size=global_batch_size)


def test_distribute_dataset_needs_a_multiple_of_the_replicas():
    strategy = tf.distribute.get_strategy()
    with mock.patch.object(type(strategy), "num_replicas_in_sync", new=mock.PropertyMock(return_value=2)):
        with pytest.raises(ValueError, match=r"2 replica\(s\).*global_batch_size=7"):
            distribute_dataset(tf.data.Dataset.range(8), strategy, global_batch_size=7)


def test_distribute_dataset_rejects_other_inputs():
    with pytest.raises(ValueError, match="dataset="):
        distribute_dataset([1, 2], tf.distribute.get_strategy(), global_batch_size=2)
    with pytest.raises(ValueError, match="strategy="):
        distribute_dataset(tf.data.Dataset.range(4), "mirrored", global_batch_size=2)


# --- checkpoint.py -------------------------------------------------------------------------------


def non_chief(task_id=1):
    """What `is_chief` and the temp-dir naming read from a MultiWorkerMirroredStrategy worker."""
    return types.SimpleNamespace(
        extended=types.SimpleNamespace(should_checkpoint=False),
        cluster_resolver=types.SimpleNamespace(task_type="worker", task_id=task_id),
    )


@pytest.fixture
def private_tempdir(tmp_path, monkeypatch):
    """Non-chief temp files land here, so the test can see that they are gone."""
    path = tmp_path / "system_tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def test_is_chief_without_multi_worker():
    assert is_chief()
    assert is_chief(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert not is_chief(non_chief())


def test_chief_only_path_on_the_chief(tmp_path):
    path = tmp_path / "out" / "model.keras"
    with chief_only_path(path) as target:
        assert target == str(path)
        assert path.parent.is_dir()


def test_chief_only_path_on_a_worker_is_temporary(tmp_path, private_tempdir):
    path = tmp_path / "out" / "model.keras"
    with chief_only_path(str(path), non_chief()) as target:
        assert Path(target).name == "model.keras"
        assert Path(target).parent.parent == private_tempdir
        assert "worker1" in Path(target).parent.name
        Path(target).write_text("written by worker 1")
    assert not path.parent.exists()
    assert list(private_tempdir.iterdir()) == []
    with pytest.raises(RuntimeError), chief_only_path(str(path), non_chief()) as target:
        Path(target).write_text("partial")
        raise RuntimeError("save failed")
    assert list(private_tempdir.iterdir()) == []


@pytest.mark.parametrize("path", ["", None, "out/", 3])
def test_chief_only_path_rejects(path):
    with pytest.raises(ValueError, match="path="), chief_only_path(path):
        pass


def test_write_final_artifacts(tmp_path, private_tempdir):
    model = tiny_model()
    model.fit(*tiny_data(), epochs=1, verbose=0)
    model_path, weights_path = tmp_path / "a" / "m.keras", tmp_path / "a" / "m.weights.h5"
    assert write_final_artifacts(model, model_path, weights_filepath=weights_path) == (
        str(model_path), str(weights_path),
    )
    loaded = keras.saving.load_model(model_path)
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    other = tmp_path / "b" / "m.keras"
    assert write_final_artifacts(model, other, weights_filepath=tmp_path / "b" / "w.weights.h5",
                                 strategy=non_chief()) == ()
    assert not other.parent.exists()
    assert list(private_tempdir.iterdir()) == []


def test_write_final_artifacts_rejects_paths(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="filepath="):
        write_final_artifacts(model, tmp_path / "model.h5")
    with pytest.raises(ValueError, match="weights_filepath="):
        write_final_artifacts(model, tmp_path / "model.keras", weights_filepath=tmp_path / "w.h5")


def test_backup_and_restore_configuration(tmp_path):
    callback = backup_and_restore(tmp_path / "backup")
    assert isinstance(callback, keras.callbacks.BackupAndRestore)
    assert isinstance(callback, MultiWorkerBackupAndRestore)
    assert (callback.backup_dir, callback.save_freq, callback.delete_checkpoint) == (
        str(tmp_path / "backup"), "epoch", True,
    )
    assert backup_and_restore(tmp_path, save_freq=np.int64(5), delete_checkpoint=False).save_freq == 5


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"save_freq": 0}, "save_freq"), ({"save_freq": "batch"}, "save_freq"), ({"save_freq": True}, "save_freq"),
     ({"delete_checkpoint": "yes"}, "delete_checkpoint")],
)
def test_backup_and_restore_rejects(tmp_path, kwargs, argument):
    with pytest.raises(ValueError, match=f"{argument}="):
        backup_and_restore(tmp_path, **kwargs)
    with pytest.raises(ValueError, match="directory="):
        backup_and_restore("")


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("preempted")


def test_backup_and_restore_resumes_on_the_chief(tmp_path):
    x, y = tiny_data()
    directory = tmp_path / "backup"
    model = tiny_model()
    with pytest.raises(RuntimeError, match="preempted"):
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[backup_and_restore(directory), StopAt(2)])
    assert json.loads((directory / "training_metadata.json").read_text())["epoch"] == 2
    resumed = tiny_model()
    history = resumed.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[backup_and_restore(directory)])
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 only
    assert resumed.optimizer.iterations.numpy() == 4 * 2
    assert not directory.exists()


def test_backup_and_restore_never_writes_on_a_worker(tmp_path, private_tempdir):
    x, y = tiny_data()
    directory = tmp_path / "backup"
    saves = []
    callback = backup_and_restore(directory, save_freq=1, strategy=non_chief())
    model = tiny_model()
    with mock.patch.object(model, "save_weights", wraps=model.save_weights) as save_weights:
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
        saves = save_weights.call_args_list
    # The worker saved every batch (taking part in the collectives) but only to temp paths.
    assert len(saves) == 2 * 2
    assert all(Path(call.args[0]).parent.parent == private_tempdir for call in saves)
    assert not directory.exists()
    assert list(private_tempdir.iterdir()) == []
