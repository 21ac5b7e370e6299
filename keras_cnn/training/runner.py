"""The training job behind `keras-cnn train` (TensorFlow only: tf.data, tf.distribute).

    from keras_cnn.training import config, runner
    cfg = config.apply_overrides(config.load_recipe("digits_quickstart"), ["epochs=5"])
    results = runner.train(cfg, output_dir="runs/digits")

One run writes into `output_dir`:

    backup/                  BackupAndRestore: weights + optimizer + epoch; deleted when fit ends
    checkpoints/last.weights.h5   weights after the last epoch with a finite loss
    history.csv, logs/       per-epoch metrics (CSV, appended across resumes) and TensorBoard
    model.keras              the trained model (logits out), loadable with safe_mode=True
    saved_model/             `model.export`: a TensorFlow SavedModel for serving
    results.json             the final evaluation; its presence marks the run finished

A killed run continues from its last backed-up epoch when the same command is run again. With
`deterministic=True` the resumed run is bit-identical to an uninterrupted one: op determinism is
on and epoch `e`'s shuffling and per-image augmentation (crops, flips) draw from seeds of
`(seed, e)` only, so the data of the resumed epoch are the ones the killed run would have seen.
The batch-level augmentation layers (colour jitter, PCA lighting, RandAugment, RandomErasing,
MixUp, CutMix) keep their own random state, which restarts from `seed` on a resume: with them a
resumed run is equivalent in distribution, not bit-identical.

Fine-tuning a pretrained `backbone` (a weights tag of `model` or a trained `.keras` model; see
`keras_cnn.training.transfer`) with `freeze_epochs` trains in two phases: the head alone with the
backbone frozen (its BN in inference mode) in `frozen_phase/` (its own backup, history and
`phase.weights.h5` when done), then `trainable_stages` unfrozen at `learning_rate *
unfreeze_learning_rate_factor` in the run's directory. A resumed run skips a finished phase.
Bit-identical resumes need whole passes over the data (`steps_per_epoch=None`): with a shorter
`steps_per_epoch` the repeated stream runs across Keras' epochs, so the data of a resumed epoch
(keyed by its number) differ from those an uninterrupted run reads there.

A config with `"method": "mpl"` or `"noisy_student"` is handed to `keras_cnn.ssl.runner`, which
reuses this module's pieces (`RunPaths`, `finished_results`, `run_context`, `resolve_strategy`,
`eval_pipeline`, `fit_callbacks`, `raise_if_diverged`, `write_artifacts`).
"""

import contextlib
import dataclasses
import json
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from keras_cnn import data
from keras_cnn.distribute import checkpoint as ckpt
from keras_cnn.distribute.precision import set_precision
from keras_cnn.distribute.strategy import get_strategy, resolve_strategy_kind
from keras_cnn.distribute.train_step import CLIPPING_UPSTREAM_ISSUE
from keras_cnn.distribute.xla import choose_jit_compile, use_replica_xla
from keras_cnn.registry import create_model
from keras_cnn.training.callbacks import (
    EpochTimer,
    GuardedBackupAndRestore,
    LastGoodCheckpoint,
    NonFiniteGuard,
    TrainingDiverged,
)
from keras_cnn.training.config import resolve_config
from keras_cnn.training.distillation import make_distiller
from keras_cnn.training.losses import classification_loss
from keras_cnn.training.optimizers import build_optimizer
from keras_cnn.training.schedules import build_schedule, scale_learning_rate
from keras_cnn.training.transfer import freeze_backbone, transfer_model
from keras_cnn.validation import check_choice, check_positive_int

__all__ = [
    "RunPaths",
    "TrainingDiverged",
    "augment_layers",
    "check_common_config",
    "classification_metrics",
    "load_teacher",
    "eval_pipeline",
    "finished_results",
    "fit_callbacks",
    "raise_if_diverged",
    "resolve_strategy",
    "run_context",
    "train",
    "write_artifacts",
    "write_json",
]

LOGGER = logging.getLogger("keras_cnn.train")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Where one run writes; see the module docstring."""

    root: str

    @property
    def backup(self):
        return os.path.join(self.root, "backup")

    @property
    def last_checkpoint(self):
        return os.path.join(self.root, "checkpoints", "last.weights.h5")

    @property
    def history(self):
        return os.path.join(self.root, "history.csv")

    @property
    def logs(self):
        return os.path.join(self.root, "logs")

    @property
    def model(self):
        return os.path.join(self.root, "model.keras")

    @property
    def saved_model(self):
        return os.path.join(self.root, "saved_model")

    @property
    def results(self):
        return os.path.join(self.root, "results.json")

    @property
    def config(self):
        return os.path.join(self.root, "config.json")

    @property
    def stage_markers(self):
        """Files of finished stages of multi-stage runs (semi-supervised, fine-tuning); `restart` deletes them."""
        return (os.path.join(self.root, "mpl_student.weights.h5"), os.path.join(self.root, "rounds"),
                os.path.join(self.root, "frozen_phase"))


def check_common_config(cfg):
    """Checks the keys every method uses (`ValueError` naming the key and the value)."""
    check_positive_int("epochs", cfg["epochs"])
    check_positive_int("batch_size", cfg["batch_size"])
    for key in ("steps_per_epoch", "eval_steps", "image_size"):
        if cfg[key] is not None:
            check_positive_int(key, cfg[key])
    if isinstance(cfg["validation_freq"], bool) or not isinstance(cfg["validation_freq"], int) \
            or cfg["validation_freq"] < 0:
        raise ValueError(f"`validation_freq` must be an int >= 0, received validation_freq={cfg['validation_freq']!r}")
    check_choice("preprocessing", cfg["preprocessing"], ("auto", "cifar", "imagenet", "none"))
    if cfg["jit_compile"] not in ("auto", True, False):
        raise ValueError(f"`jit_compile` must be 'auto', True or False, received jit_compile={cfg['jit_compile']!r}")


def _check_config(cfg):
    check_common_config(cfg)
    _check_transfer_config(cfg)
    if cfg["teacher"] is not None and cfg["teacher_weights"] is None:
        raise ValueError(
            f"distillation from teacher={cfg['teacher']!r} needs its trained weights: "
            "set teacher_weights to a .keras or .weights.h5 file (--set teacher_weights=PATH)"
        )


def _sources(cfg, info, image_size, data_dir):
    """The raw train/eval sources and the number of training examples."""
    if info.name == "digits":
        (x_train, y_train), (x_test, y_test) = data.load_digits(image_size=image_size)
        return (x_train, y_train), (x_test, y_test), len(y_train)
    train = data.load(info.name, cfg["train_split"], data_dir=data_dir, download=cfg["download"])
    evaluation = data.load(info.name, cfg["eval_split"], data_dir=data_dir, download=cfg["download"])
    count = int(train.cardinality())
    if count < 0:  # unknown cardinality: the table's split size
        count = info.train_examples
    return train, evaluation, count


def _pipelines(cfg, info, image_size, train_source, eval_source, *, steps_per_epoch, initial_epoch):
    preprocessing = info.preprocessing if cfg["preprocessing"] == "auto" else cfg["preprocessing"]
    mixing = cfg["mixup_alpha"] > 0 or cfg["cutmix_alpha"] > 0
    one_hot = mixing or cfg["label_smoothing"] > 0 or cfg["teacher"] is not None
    def augment(seed):
        layers = augment_layers(cfg, seed)
        return layers or None

    common = dict(
        batch_size=cfg["batch_size"],
        image_size=image_size,
        num_classes=info.num_classes,
        preprocessing=preprocessing,
        one_hot=one_hot,
    )
    train_args = dict(common, training=True, mixup_alpha=cfg["mixup_alpha"],
                      cutmix_alpha=cfg["cutmix_alpha"], drop_remainder=True)
    callbacks = []
    if cfg["deterministic"]:
        # Shuffle order and per-example randomness keyed by (seed, epoch), the epoch read from a
        # variable that a callback sets: a run resumed at epoch k sees exactly the batches an
        # uninterrupted run sees from epoch k on.
        epoch, epoch_callback = data.epoch_variable(initial=initial_epoch)
        callbacks.append(epoch_callback)
        train = data.make_pipeline(train_source, seed=cfg["seed"], augment=augment(cfg["seed"]), deterministic=True,
                                   epoch=epoch, repeat=True, **train_args)
    else:
        train = data.make_pipeline(train_source, seed=cfg["seed"], augment=augment(cfg["seed"]), repeat=True,
                                   **train_args)
    return train, eval_pipeline(cfg, info, image_size, eval_source, one_hot=one_hot), one_hot, callbacks


def augment_layers(cfg, seed):
    """The batch-level augmentation of a config: colour jitter, PCA lighting, RandAugment, erasing."""
    return data.augment_layers(randaugment=cfg["randaugment"], random_erasing=cfg["random_erasing"],
                               color_jitter=cfg["color_jitter"], pca_lighting=cfg["pca_lighting"], seed=seed)


def eval_pipeline(cfg, info, image_size, eval_source, *, one_hot=False):
    """The evaluation `tf.data` pipeline of a config (in order, remainder kept, `eval_steps` batches)."""
    preprocessing = info.preprocessing if cfg["preprocessing"] == "auto" else cfg["preprocessing"]
    evaluation = data.make_pipeline(eval_source, training=False, deterministic=cfg["deterministic"],
                                    drop_remainder=False, batch_size=cfg["batch_size"], image_size=image_size,
                                    num_classes=info.num_classes, preprocessing=preprocessing, one_hot=one_hot,
                                    crop_fraction=cfg["crop_fraction"])
    if cfg["eval_steps"] is not None:
        evaluation = evaluation.take(cfg["eval_steps"])
    return evaluation


def _input_shape(image_size):
    return (image_size, image_size, 3)


def load_teacher(cfg, classes, image_size):
    """The trained teacher of `cfg` (`teacher`, `teacher_args`, `teacher_weights`: .keras or .weights.h5)."""
    path = os.fspath(cfg["teacher_weights"])
    if not tf.io.gfile.exists(path):
        raise ValueError(f"`teacher_weights` file not found: {path!r}")
    if path.endswith(".keras"):
        teacher = keras.saving.load_model(path, safe_mode=True)
    elif path.endswith(".weights.h5"):
        teacher = create_model(cfg["teacher"], classes=classes, input_shape=_input_shape(image_size),
                               classifier_activation=None, **cfg["teacher_args"])
        teacher.load_weights(path)
    else:
        raise ValueError(f"`teacher_weights` must be a .keras or .weights.h5 file, received {path!r}")
    return teacher


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def write_json(path, payload, strategy):
    """Writes `payload` as JSON to `path` (the chief's copy only; see `chief_only_path`)."""
    with ckpt.chief_only_path(path, strategy) as target:
        with tf.io.gfile.GFile(target, "w") as f:
            f.write(json.dumps(payload, indent=2, default=_json_default) + "\n")


def finished_results(paths, restart):
    """The results of a finished run in `paths` (`None`: train), clearing a stale one on `restart`."""
    if tf.io.gfile.exists(paths.results) and not restart:
        with tf.io.gfile.GFile(paths.results) as f:
            results = json.load(f)
        LOGGER.info("%s is a finished run; pass restart=True (--restart) to train again", paths.root)
        return dict(results, already_finished=True)
    if restart and tf.io.gfile.exists(paths.root):
        for stale in (paths.backup, paths.results, *paths.stage_markers):
            if tf.io.gfile.exists(stale):
                tf.io.gfile.rmtree(stale) if tf.io.gfile.isdir(stale) else tf.io.gfile.remove(stale)
    return None


@contextlib.contextmanager
def run_context(cfg):
    """Seeds, op determinism (`deterministic`) and the global dtype policy, restored on exit."""
    previous_policy = keras.mixed_precision.global_policy().name
    keras.utils.set_random_seed(cfg["seed"])
    determinism_was_on = tf_config.is_op_determinism_enabled()
    if cfg["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if cfg["deterministic"] and not determinism_was_on:
            # TensorFlow exports only the switch on; the same module's off switch restores the
            # caller's setting so one deterministic run does not slow down the rest of the process.
            tf_config.disable_op_determinism()


def resolve_strategy(strategy):
    """A `tf.distribute.Strategy` from a strategy or a kind (`"auto"`: the default one on one device)."""
    if strategy == "auto" and resolve_strategy_kind("auto").kind == "one_device":
        # One device: TensorFlow's default strategy. OneDeviceStrategy routes every batch
        # through a multi-device iterator: the quickstart's steps took 2.1x as long with it
        # (5.7 s vs 2.7 s per epoch on 2 CPU cores). `strategy="one_device"` still gives it.
        return tf.distribute.get_strategy()
    if isinstance(strategy, str):
        return get_strategy(strategy)
    return strategy


def fit_callbacks(cfg, paths, strategy):
    """`(guard, backup, callbacks)`: NaN guard, backup/resume, last good checkpoint, CSV and TensorBoard logs."""
    guard = NonFiniteGuard()
    backup = GuardedBackupAndRestore(paths.backup, guard=guard, save_freq=cfg["backup_freq"],
                                     double_checkpoint=True, strategy=strategy)
    callbacks = [
        guard,
        backup,
        LastGoodCheckpoint(paths.last_checkpoint, guard=guard),
        EpochTimer(),  # before the loggers: history.csv gets epoch_seconds / train_seconds
        keras.callbacks.CSVLogger(paths.history, append=True),
        keras.callbacks.TensorBoard(paths.logs),
    ]
    return guard, backup, callbacks


def raise_if_diverged(guard, paths):
    """Raises `TrainingDiverged` naming the last good checkpoint if the guard saw a NaN/inf loss."""
    if not guard.diverged:
        return
    epoch, batch = guard.diverged_at
    where = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
    kept = paths.last_checkpoint if tf.io.gfile.exists(paths.last_checkpoint) else "none (no epoch finished)"
    raise TrainingDiverged(
        f"training stopped: the loss became NaN/inf at {where}. Last good checkpoint: {kept}; the backup in "
        f"{paths.backup} is kept, so the same command (e.g. with a lower --set learning_rate=...) resumes "
        f"from the last good epoch."
    )


def write_artifacts(model, results, paths, strategy):
    """Checks the results are finite, then writes model.keras, saved_model/ and results.json (last)."""
    if not all(math.isfinite(results[k]) for k in ("test_loss", "test_accuracy")):
        raise TrainingDiverged(f"the final evaluation is not finite: {results}")
    ckpt.write_final_artifacts(model, paths.model, strategy=strategy)
    with ckpt.chief_only_path(paths.saved_model, strategy) as target:
        model.export(target, verbose=False)
    write_json(paths.results, results, strategy)


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs `[start, end)` of a run trained with one set of trainable layers and one optimizer."""

    name: str
    start: int
    end: int
    trainable_stages: object = None  # None: no freezing; 0 (head only), an int or "all" (transfer)
    learning_rate_factor: float = 1.0
    last: bool = True


def _phases(cfg):
    """One phase; or, fine-tuning a `backbone` with `freeze_epochs`, a frozen one then an unfrozen one."""
    if cfg["backbone"] is None:
        return [Phase("train", 0, cfg["epochs"])]
    factor = cfg["unfreeze_learning_rate_factor"]
    unfrozen = Phase("unfrozen_phase", cfg["freeze_epochs"], cfg["epochs"], cfg["trainable_stages"], factor)
    if not cfg["freeze_epochs"]:
        return [unfrozen]
    return [Phase("frozen_phase", 0, cfg["freeze_epochs"], 0, last=False), unfrozen]


def _check_transfer_config(cfg):
    if cfg["backbone"] is None:
        for key, default in (("freeze_epochs", 0), ("trainable_stages", "all")):
            if cfg[key] != default:
                raise ValueError(f"`{key}` applies when fine-tuning a pretrained `backbone` (None here), "
                                 f"received {key}={cfg[key]!r}")
        return
    if cfg["weights"] is not None:
        raise ValueError(f"Set either `weights` or `backbone` (the weights of a fine-tuned backbone), received "
                         f"weights={cfg['weights']!r} and backbone={cfg['backbone']!r}")
    freeze = cfg["freeze_epochs"]
    if isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze < cfg["epochs"]:
        raise ValueError(f"`freeze_epochs` must be an int in [0, epochs={cfg['epochs']}), received "
                         f"freeze_epochs={freeze!r}")
    stages = cfg["trainable_stages"]
    if stages != "all" and (isinstance(stages, bool) or not isinstance(stages, int) or stages < 0):
        raise ValueError(f"`trainable_stages` must be 'all' or an int >= 0, received trainable_stages={stages!r}")
    factor = cfg["unfreeze_learning_rate_factor"]
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < float("inf"):
        raise ValueError(f"`unfreeze_learning_rate_factor` must be a positive number, received "
                         f"unfreeze_learning_rate_factor={factor!r}")


def _build_model(cfg, info, image_size):
    """The model to train: `model` (with `weights`), or a new head on a pretrained `backbone`."""
    if cfg["backbone"] is None:
        return create_model(cfg["model"], classes=info.num_classes, input_shape=_input_shape(image_size),
                            classifier_activation=None, weights=cfg["weights"], **cfg["model_args"])
    source = os.fspath(cfg["backbone"])
    model_args = {k: v for k, v in cfg["model_args"].items() if k != "dropout"}
    if source.endswith(".keras"):
        if not tf.io.gfile.exists(source):
            raise ValueError(f"`backbone` file not found: {source!r}")
        backbone = keras.saving.load_model(source, safe_mode=True, compile=False)
        if tuple(backbone.inputs[0].shape[1:3]) not in ((image_size, image_size), (None, None)):
            raise ValueError(f"`backbone` {source!r} takes {tuple(backbone.inputs[0].shape[1:])} inputs, the "
                             f"config's image_size is {image_size}")
    else:  # a named weights tag of `model` ("imagenet", ...)
        backbone = create_model(cfg["model"], include_top=False, input_shape=_input_shape(image_size),
                                weights=source, **model_args)
    return transfer_model(backbone, info.num_classes, dropout=cfg["model_args"].get("dropout", 0.0),
                          name=f"{cfg['model']}_transfer")


def _compile(cfg, model, info, image_size, strategy, *, one_hot, steps_per_epoch, phase):
    """Compiles `model` (or a distiller around it) for `phase`; returns `(trainee, jit_compile)`."""
    learning_rate = cfg["learning_rate"] * phase.learning_rate_factor
    if cfg["base_batch_size"] is not None:
        learning_rate = scale_learning_rate(learning_rate, cfg["batch_size"], cfg["base_batch_size"])
    epochs = phase.end - phase.start
    schedule = build_schedule(cfg["schedule"], learning_rate, steps_per_epoch=steps_per_epoch, epochs=epochs,
                              warmup_epochs=min(cfg["warmup_epochs"], epochs - 1) if phase.start == 0 else 0,
                              **cfg["schedule_args"])
    optimizer = build_optimizer(
        cfg["optimizer"], schedule, weight_decay=cfg["weight_decay"], weight_decay_mode=cfg["weight_decay_mode"],
        no_bias_decay=cfg["no_bias_decay"], model=model, momentum=cfg["momentum"], nesterov=cfg["nesterov"], rho=cfg["rho"],
        epsilon=cfg["epsilon"], ema=cfg["ema"], clipnorm=cfg["clipnorm"],
    )
    loss = classification_loss(label_smoothing=cfg["label_smoothing"], from_logits=True, sparse=not one_hot)
    metrics = classification_metrics(info.num_classes, one_hot=one_hot)
    trainee = model
    if cfg["teacher"] is not None:
        teacher = load_teacher(cfg, info.num_classes, image_size)
        trainee = make_distiller(teacher, model, temperature=cfg["distill_temperature"], alpha=cfg["distill_alpha"])
    override = None if cfg["jit_compile"] == "auto" else cfg["jit_compile"]
    jit = choose_jit_compile(model, strategy=strategy, override=override)
    trainee.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit)
    return trainee, jit


def train(config, *, output_dir, strategy="auto", data_dir=None, verbose="auto", restart=False):
    """Trains a config with `model.fit` and writes the run's artifacts (module docstring).

    Args:
        config: A config dict (`keras_cnn.training.config`); missing keys take the defaults of its
            `method` (`"supervised"` without one; `"mpl"` / `"noisy_student"` run
            `keras_cnn.ssl.runner.train_ssl`).
        output_dir: The run's directory (local path or any filesystem TensorFlow writes, e.g. gs://).
        strategy: A `tf.distribute.Strategy`, or a kind for `keras_cnn.distribute.get_strategy`
            (`"auto"`, `"tpu"`, `"multi_worker"`, `"mirrored"`, `"one_device"`).
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity (`"auto"`: a progress bar).
        restart: Train from scratch even if `output_dir` holds a finished or interrupted run.

    Returns:
        The results dict (also written to `results.json`): test loss/accuracy and run facts.

    Raises:
        ValueError: A bad config value, unknown dataset or model, or missing data.
        TrainingDiverged: The loss became NaN/inf; the last good checkpoint and backup are kept.
    """
    cfg = resolve_config(config)
    if cfg["method"] != "supervised":
        from keras_cnn.ssl.runner import train_ssl  # TensorFlow-specific SSL jobs; imported on demand

        return train_ssl(cfg, output_dir=output_dir, strategy=strategy, data_dir=data_dir, verbose=verbose,
                         restart=restart)
    _check_config(cfg)
    paths = RunPaths(os.fspath(output_dir))
    finished = finished_results(paths, restart)
    if finished is not None:
        return finished

    info = data.get_dataset_info(cfg["dataset"])
    image_size = cfg["image_size"] or info.image_size
    with run_context(cfg):
        strategy = resolve_strategy(strategy)
        precision = set_precision(strategy, cfg["precision"])
        if cfg["clipnorm"] is not None and strategy.num_replicas_in_sync > 1:
            # Keras' own fit clips each replica's share before the all-reduce (the custom
            # train_steps of keras_cnn.ssl use keras_cnn.distribute.clip_across_replicas instead).
            LOGGER.warning("clipnorm=%s under %d replicas: Keras clips each replica's gradients before summing "
                           "them (%s), so the bound differs from a one-device run", cfg["clipnorm"],
                           strategy.num_replicas_in_sync, CLIPPING_UPSTREAM_ISSUE)
        train_source, eval_source, train_examples = _sources(cfg, info, image_size, data_dir)
        steps_per_epoch = cfg["steps_per_epoch"] or train_examples // cfg["batch_size"]
        if steps_per_epoch < 1:
            raise ValueError(
                f"`batch_size`={cfg['batch_size']} is larger than the {train_examples} training examples of "
                f"{info.name!r}"
            )

        with strategy.scope():
            model = _build_model(cfg, info, image_size)
        write_json(paths.config, cfg, strategy)
        start = time.time()
        for phase in _phases(cfg):
            phase_paths = paths if phase.last else RunPaths(os.path.join(paths.root, phase.name))
            done = os.path.join(phase_paths.root, "phase.weights.h5")
            if not phase.last and tf.io.gfile.exists(done):
                model.load_weights(done)  # a finished earlier phase of a resumed run
                continue
            if phase.trainable_stages is not None:
                trainable = freeze_backbone(model, phase.trainable_stages, train_bn=cfg["train_bn"])
                LOGGER.info("%s (epochs %d-%d): the head and %d backbone layers train", phase.name, phase.start + 1,
                            phase.end, len(trainable))
            guard, backup, callbacks = fit_callbacks(cfg, phase_paths, strategy)
            initial_epoch = max(phase.start, min(backup.resume_epoch(), phase.end - 1))
            if initial_epoch:
                LOGGER.info("resuming %s at epoch %d", phase_paths.root, initial_epoch + 1)
            train_ds, eval_ds, one_hot, data_callbacks = _pipelines(
                cfg, info, image_size, train_source, eval_source, steps_per_epoch=steps_per_epoch,
                initial_epoch=initial_epoch)
            with strategy.scope():
                trainee, jit = _compile(cfg, model, info, image_size, strategy, one_hot=one_hot,
                                        steps_per_epoch=steps_per_epoch, phase=phase)
            if jit and strategy.num_replicas_in_sync > 1:
                use_replica_xla(trainee)
            callbacks += data_callbacks
            if cfg["ema"] is not None:
                # Validation during fit on the EMA weights; fit itself ends with them in the model.
                callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
            validation = {}
            if cfg["validation_freq"]:
                validation = dict(validation_data=eval_ds, validation_freq=cfg["validation_freq"])
            trainee.fit(train_ds, epochs=phase.end, steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                        callbacks=callbacks, verbose=verbose, shuffle=False,  # the pipeline shuffles
                        **validation)
            raise_if_diverged(guard, phase_paths)
            if not phase.last:
                with ckpt.chief_only_path(done, strategy) as target:
                    model.save_weights(target)
        train_seconds = time.time() - start

        scores = trainee.evaluate(eval_ds, return_dict=True, verbose=0)
        results = {
            "method": "supervised",
            "recipe_model": cfg["model"],
            "dataset": info.name,
            "test_accuracy": float(scores["accuracy"]),
            "test_loss": float(scores["loss"]),
            **{f"test_{k}": float(v) for k, v in scores.items() if k not in ("accuracy", "loss")},
            "epochs": cfg["epochs"],
            "resumed_at_epoch": initial_epoch,
            "steps_per_epoch": steps_per_epoch,
            "train_examples": train_examples,
            "image_size": image_size,
            "batch_size": cfg["batch_size"],
            "precision": precision,
            "jit_compile": bool(jit),
            "replicas": strategy.num_replicas_in_sync,
            "train_seconds": round(train_seconds, 1),
        }
        write_artifacts(model, results, paths, strategy)
        return results


def classification_metrics(num_classes, *, one_hot):
    """`["accuracy"]`, plus top-5 accuracy (`top5_accuracy`) from 100 classes on."""
    metrics = ["accuracy"]
    if num_classes >= 100:
        top5 = keras.metrics.TopKCategoricalAccuracy if one_hot else keras.metrics.SparseTopKCategoricalAccuracy
        metrics.append(top5(k=5, name="top5_accuracy"))
    return metrics
