"""The job layer: a config's `method` picks the training job that runs it.

    from keras_cnn import jobs
    from keras_cnn.training import config
    results = jobs.train(config.load_recipe("digits_quickstart"), output_dir="runs/digits")

Layers, top down (each imports only the ones below it):

    keras_cnn.cli, tools/            the command line and scripts
    keras_cnn.jobs                   TRAINERS: method -> job; `train`
    keras_cnn.training.runner        the supervised job       keras_cnn.ssl.runner: the MPL and
                                                              Noisy Student jobs
    keras_cnn.training.run           what every job shares: run directory, one resume mechanism
                                     (finished results, fit backups, finished stages), callbacks,
                                     optimizer from a config, evaluation, artifacts
    keras_cnn.training.config        the typed recipe config; keras_cnn.training.*, keras_cnn.ssl.*
                                     models and losses, keras_cnn.data, keras_cnn.distribute

`keras_cnn.ssl` never imports the supervised runner and `keras_cnn.training` never imports
`keras_cnn.ssl` or this package (`keras_cnn.training.runner.train` moved here as `train`).
A new method is one job function `job(cfg, paths, strategy, data_dir, verbose)` (optionally
with a `job.check(cfg)` run before the finished-run check), its config section in `keras_cnn.training.config`, and one entry in `TRAINERS`.
"""

from keras_cnn.ssl.runner import train_mpl, train_noisy_student
from keras_cnn.training.config import resolve_config
from keras_cnn.training.run import run_job
from keras_cnn.training.runner import train_supervised

__all__ = ["TRAINERS", "train", "trainer_for"]

TRAINERS = {
    "supervised": train_supervised,
    "mpl": train_mpl,
    "noisy_student": train_noisy_student,
}


def trainer_for(method):
    """The job function of `method`.

    Args:
        method: One of `keras_cnn.training.config.METHODS`.

    Returns:
        The job function (`TRAINERS[method]`).

    Raises:
        ValueError: Unknown method (the message lists the valid ones).
    """
    if not isinstance(method, str) or method not in TRAINERS:
        raise ValueError(f"`method` must be one of {list(TRAINERS)}, received method={method!r}")
    return TRAINERS[method]


def train(config, *, output_dir, strategy="auto", data_dir=None, verbose="auto", restart=False):
    """Trains (or resumes) a config with the job of its `method` and writes the run's artifacts.

    Running it again on the same `output_dir` with the same config resumes an interrupted run
    (Ctrl-C included), or returns the finished run's results (with `already_finished=True`)
    without training; with another config it is refused (`keras_cnn.training.run`). A config or
    argument error leaves nothing behind in `output_dir`.

    Args:
        config: A config (`keras_cnn.training.config`); missing keys take the defaults of its
            `method` (`"supervised"` without one).
        output_dir: The run's directory (local path or any filesystem TensorFlow writes, e.g. gs://).
        strategy: A `tf.distribute.Strategy`, or a kind for `keras_cnn.distribute.get_strategy`
            (`"auto"`, `"tpu"`, `"multi_worker"`, `"mirrored"`, `"one_device"`).
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity (`"auto"`: a progress bar).
        restart: Start over: move the previous run in `output_dir` aside whole and delete it before
            training (`keras_cnn.training.run.discard_run`), so none of its files (history rows,
            TensorBoard events, model, results) survives, even if the new run is interrupted.

    Returns:
        The results dict (also written to `results.json`): test loss/accuracy and run facts;
        `epochs_run` and `train_seconds` count what this call trained (a resumed run: the rest).

    Raises:
        ValueError: A bad config value, unknown dataset or model, missing data; `output_dir` holds
            a run with another config (the message lists the differing keys), or, with `restart`,
            files no run writes.
        TrainingDiverged: The loss became NaN/inf; the last good checkpoint and backup are kept.
        keras_cnn.training.run.TrainingInterrupted: Ctrl-C (a `KeyboardInterrupt`); the backup is
            kept and the message says at which epoch; the same call resumes.
    """
    cfg = resolve_config(config)
    return run_job(trainer_for(cfg.method), cfg, output_dir=output_dir, strategy=strategy, data_dir=data_dir,
                   verbose=verbose, restart=restart)
