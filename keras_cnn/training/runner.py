"""The training job behind `keras-cnn train` (TensorFlow only: tf.data, tf.distribute).

    from keras_cnn import jobs
    from keras_cnn.training import config
    cfg = config.apply_overrides(config.load_recipe("digits_quickstart"), ["epochs=5"])
    results = jobs.train(cfg, output_dir="runs/digits")

One run writes into `output_dir` the files listed in `keras_cnn.training.run` (backup/,
checkpoints/last.weights.h5, history.csv, logs/, config.json, model.keras, saved_model/,
curves.png, results.json, whose presence marks the run finished).

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

`train_supervised` is the supervised job of `keras_cnn.jobs.TRAINERS`; the pieces every job
shares (run directory, resume, callbacks, optimizer, evaluation, artifacts) are in
`keras_cnn.training.run`. Run a config with `keras_cnn.jobs.train`, which picks the job of its
`method`: this package never imports the job layer above it (tests/test_import_graph.py).
"""

import dataclasses
import logging
import os
import time

import keras
import tensorflow as tf

from keras_cnn import data
from keras_cnn.distribute.precision import set_precision
from keras_cnn.distribute.train_step import CLIPPING_UPSTREAM_ISSUE
from keras_cnn.distribute.xla import choose_jit_compile, use_replica_xla
from keras_cnn.registry import create_model
from keras_cnn.training.callbacks import TrainingDiverged
from keras_cnn.training.distillation import make_distiller
from keras_cnn.training.losses import classification_loss
from keras_cnn.training.run import (
    RunPaths,
    check_common_config,
    classification_metrics,
    eval_pipeline,
    finished_results,
    fit_callbacks,
    load_teacher,
    optimizer_from_config,
    raise_if_diverged,
    resolve_strategy,
    run_context,
    scaled_learning_rate,
    write_artifacts,
    write_json,
)
from keras_cnn.training.schedules import build_schedule
from keras_cnn.training.transfer import freeze_backbone, transfer_model

# The shared pieces stay importable from here (`keras_cnn.training.run` is their home).
__all__ = [
    "Phase",
    "RunPaths",
    "TrainingDiverged",
    "augment_layers",
    "check_common_config",
    "classification_metrics",
    "eval_pipeline",
    "finished_results",
    "fit_callbacks",
    "load_teacher",
    "raise_if_diverged",
    "resolve_strategy",
    "run_context",
    "train_supervised",
    "write_artifacts",
    "write_json",
]

LOGGER = logging.getLogger("keras_cnn.train")


def _sources(cfg, info, image_size, data_dir):
    """The raw train/eval sources and the number of training examples."""
    if info.name == "digits":
        (x_train, y_train), (x_test, y_test) = data.load_digits(image_size=image_size)
        return (x_train, y_train), (x_test, y_test), len(y_train)
    train = data.load(info.name, cfg.data.train_split, data_dir=data_dir, download=cfg.data.download)
    evaluation = data.load(info.name, cfg.data.eval_split, data_dir=data_dir, download=cfg.data.download)
    count = int(train.cardinality())
    if count < 0:  # unknown cardinality: the table's split size
        count = info.train_examples
    return train, evaluation, count


def _pipelines(cfg, info, image_size, train_source, eval_source, *, steps_per_epoch, initial_epoch):
    preprocessing = info.preprocessing if cfg.data.preprocessing == "auto" else cfg.data.preprocessing
    mixing = cfg.augment.mixup_alpha > 0 or cfg.augment.cutmix_alpha > 0
    one_hot = mixing or cfg.loss.label_smoothing > 0 or cfg.distill.teacher is not None
    def augment(seed):
        layers = augment_layers(cfg, seed)
        return layers or None

    common = dict(
        batch_size=cfg.schedule.batch_size,
        image_size=image_size,
        num_classes=info.num_classes,
        preprocessing=preprocessing,
        one_hot=one_hot,
    )
    train_args = dict(common, training=True, mixup_alpha=cfg.augment.mixup_alpha,
                      cutmix_alpha=cfg.augment.cutmix_alpha, drop_remainder=True)
    callbacks = []
    if cfg.run.deterministic:
        # Shuffle order and per-example randomness keyed by (seed, epoch), the epoch read from a
        # variable that a callback sets: a run resumed at epoch k sees exactly the batches an
        # uninterrupted run sees from epoch k on.
        epoch, epoch_callback = data.epoch_variable(initial=initial_epoch)
        callbacks.append(epoch_callback)
        train = data.make_pipeline(train_source, seed=cfg.run.seed, augment=augment(cfg.run.seed), deterministic=True,
                                   epoch=epoch, repeat=True, **train_args)
    else:
        train = data.make_pipeline(train_source, seed=cfg.run.seed, augment=augment(cfg.run.seed), repeat=True,
                                   **train_args)
    return train, eval_pipeline(cfg, info, image_size, eval_source, one_hot=one_hot), one_hot, callbacks


def augment_layers(cfg, seed):
    """The batch-level augmentation of a config: colour jitter, PCA lighting, RandAugment, erasing."""
    return data.augment_layers(randaugment=cfg.augment.randaugment, random_erasing=cfg.augment.random_erasing,
                               color_jitter=cfg.augment.color_jitter, pca_lighting=cfg.augment.pca_lighting, seed=seed)


def _input_shape(image_size):
    return (image_size, image_size, 3)


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
    if cfg.transfer.backbone is None:
        return [Phase("train", 0, cfg.schedule.epochs)]
    factor = cfg.transfer.unfreeze_learning_rate_factor
    unfrozen = Phase("unfrozen_phase", cfg.transfer.freeze_epochs, cfg.schedule.epochs, cfg.transfer.trainable_stages, factor)
    if not cfg.transfer.freeze_epochs:
        return [unfrozen]
    return [Phase("frozen_phase", 0, cfg.transfer.freeze_epochs, 0, last=False), unfrozen]


def _build_model(cfg, info, image_size):
    """The model to train: `model` (with `weights`), or a new head on a pretrained `backbone`."""
    if cfg.transfer.backbone is None:
        return create_model(cfg.model, classes=info.num_classes, input_shape=_input_shape(image_size),
                            classifier_activation=None, weights=cfg.weights, **cfg.model_args)
    source = os.fspath(cfg.transfer.backbone)
    model_args = {k: v for k, v in cfg.model_args.items() if k != "dropout"}
    if source.endswith(".keras"):
        if not tf.io.gfile.exists(source):
            raise ValueError(f"`backbone` file not found: {source!r}")
        backbone = keras.saving.load_model(source, safe_mode=True, compile=False)
        if tuple(backbone.inputs[0].shape[1:3]) not in ((image_size, image_size), (None, None)):
            raise ValueError(f"`backbone` {source!r} takes {tuple(backbone.inputs[0].shape[1:])} inputs, the "
                             f"config's image_size is {image_size}")
    else:  # a named weights tag of `model` ("imagenet", ...)
        backbone = create_model(cfg.model, include_top=False, input_shape=_input_shape(image_size),
                                weights=source, **model_args)
    return transfer_model(backbone, info.num_classes, dropout=cfg.model_args.get("dropout", 0.0),
                          name=f"{cfg.model}_transfer")


def _compile(cfg, model, info, image_size, strategy, *, one_hot, steps_per_epoch, phase):
    """Compiles `model` (or a distiller around it) for `phase`; returns `(trainee, jit_compile)`."""
    learning_rate = scaled_learning_rate(cfg, cfg.optim.learning_rate * phase.learning_rate_factor)
    epochs = phase.end - phase.start
    schedule = build_schedule(cfg.schedule.name, learning_rate, steps_per_epoch=steps_per_epoch, epochs=epochs,
                              warmup_epochs=min(cfg.schedule.warmup_epochs, epochs - 1) if phase.start == 0 else 0,
                              **cfg.schedule.args)
    optimizer = optimizer_from_config(cfg, schedule, model, ema=cfg.optim.ema)
    loss = classification_loss(label_smoothing=cfg.loss.label_smoothing, from_logits=True, sparse=not one_hot)
    metrics = classification_metrics(info.num_classes, one_hot=one_hot)
    trainee = model
    if cfg.distill.teacher is not None:
        teacher = load_teacher(cfg.distill.teacher, cfg.distill.teacher_args, cfg.distill.teacher_weights,
                               info.num_classes, image_size)
        trainee = make_distiller(teacher, model, temperature=cfg.distill.temperature, alpha=cfg.distill.alpha)
    override = None if cfg.run.jit_compile == "auto" else cfg.run.jit_compile
    jit = choose_jit_compile(model, strategy=strategy, override=override)
    jit = jit and not cfg.run.run_eagerly
    trainee.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit,
                    run_eagerly=cfg.run.run_eagerly)
    return trainee, jit


def train_supervised(cfg, paths, strategy, data_dir, verbose):
    """The supervised job: `model.fit` in one or two phases (the module docstring), then the artifacts.

    Called by `keras_cnn.training.run.run_job` (after the config's checks and the finished-run
    check, inside `run_context`).

    Args:
        cfg: A resolved supervised config.
        paths: The run's `RunPaths`.
        strategy: A `tf.distribute.Strategy`.
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity.

    Returns:
        The results dict (also written to `results.json`).
    """
    info = data.get_dataset_info(cfg.data.dataset, data_dir=data_dir)
    image_size = cfg.data.image_size or info.image_size
    precision = set_precision(strategy, cfg.run.precision)
    if cfg.optim.clipnorm is not None and strategy.num_replicas_in_sync > 1:
        # Keras' own fit clips each replica's share before the all-reduce (the custom
        # train_steps of keras_cnn.ssl use keras_cnn.distribute.clip_across_replicas instead).
        LOGGER.warning("clipnorm=%s under %d replicas: Keras clips each replica's gradients before summing "
                       "them (%s), so the bound differs from a one-device run", cfg.optim.clipnorm,
                       strategy.num_replicas_in_sync, CLIPPING_UPSTREAM_ISSUE)
    train_source, eval_source, train_examples = _sources(cfg, info, image_size, data_dir)
    steps_per_epoch = cfg.schedule.steps_per_epoch or train_examples // cfg.schedule.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size`={cfg.schedule.batch_size} is larger than the {train_examples} training examples of "
            f"{info.name!r}"
        )

    with strategy.scope():
        model = _build_model(cfg, info, image_size)
    write_json(paths.config, cfg, strategy)
    start = time.time()
    epochs_run = 0  # by this call: a resumed run counts only the epochs it trains
    for phase in _phases(cfg):
        phase_paths = paths if phase.last else RunPaths(os.path.join(paths.root, phase.name))
        done = None if phase.last else paths.stage(phase.name, "phase.weights.h5")
        if done is not None and done.done:
            done.load(model)  # a finished earlier phase of a resumed run
            continue
        if phase.trainable_stages is not None:
            trainable = freeze_backbone(model, phase.trainable_stages, train_bn=cfg.transfer.train_bn)
            LOGGER.info("%s (epochs %d-%d): the head and %d backbone layers train", phase.name, phase.start + 1,
                        phase.end, len(trainable))
        guard, backup, callbacks = fit_callbacks(cfg, phase_paths, strategy)
        initial_epoch = max(phase.start, min(backup.resume_epoch(), phase.end - 1))
        if initial_epoch > phase.start:
            LOGGER.info("resuming at epoch %d of %d from %s", initial_epoch + 1, phase.end, phase_paths.backup)
        epochs_run += phase.end - initial_epoch
        train_ds, eval_ds, one_hot, data_callbacks = _pipelines(
            cfg, info, image_size, train_source, eval_source, steps_per_epoch=steps_per_epoch,
            initial_epoch=initial_epoch)
        with strategy.scope():
            trainee, jit = _compile(cfg, model, info, image_size, strategy, one_hot=one_hot,
                                    steps_per_epoch=steps_per_epoch, phase=phase)
        if jit and strategy.num_replicas_in_sync > 1:
            use_replica_xla(trainee)
        callbacks += data_callbacks
        if cfg.optim.ema is not None:
            # Validation during fit on the EMA weights; fit itself ends with them in the model.
            callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        validation = {}
        if cfg.schedule.validation_freq:
            validation = dict(validation_data=eval_ds, validation_freq=cfg.schedule.validation_freq)
        trainee.fit(train_ds, epochs=phase.end, steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                    callbacks=callbacks, verbose=verbose, shuffle=False,  # the pipeline shuffles
                    **validation)
        raise_if_diverged(guard, phase_paths)
        if done is not None:
            done.save(model, strategy)
    train_seconds = time.time() - start

    scores = trainee.evaluate(eval_ds, return_dict=True, verbose=0)
    results = {
        "method": "supervised",
        "recipe_model": cfg.model,
        "dataset": info.name,
        # Label i's name, for `keras-cnn predict` (a folder's sorted class subfolders).
        **({"class_names": list(info.class_names)} if info.class_names else {}),
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        **{f"test_{k}": float(v) for k, v in scores.items() if k not in ("accuracy", "loss")},
        "epochs": cfg.schedule.epochs,
        "epochs_run": epochs_run,
        "resumed_at_epoch": initial_epoch,
        "steps_per_epoch": steps_per_epoch,
        "train_examples": train_examples,
        "image_size": image_size,
        "batch_size": cfg.schedule.batch_size,
        "precision": precision,
        "jit_compile": bool(jit),
        "replicas": strategy.num_replicas_in_sync,
        "train_seconds": round(train_seconds, 1),
    }
    write_artifacts(model, results, paths, strategy, config=cfg)
    return results



