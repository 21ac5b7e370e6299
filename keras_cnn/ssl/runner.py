"""The semi-supervised jobs behind `keras-cnn train` (TensorFlow-specific: tf.data, tf.distribute).

`keras_cnn.jobs.train` hands a config whose `"method"` is `"mpl"` or `"noisy_student"` to
`train_mpl` / `train_noisy_student` (`TRAINERS`); the keys are
`keras_cnn.training.config.defaults_for(method)`. Both jobs build on the pieces every job shares
(`keras_cnn.training.run`: run directory, resume, NaN guard, logs, optimizer, final artifacts;
never the supervised runner) and write the same files: `model.keras` / `saved_model/` are the
final **student** (logits out), `results.json` marks the run finished. Their finished stages
(the MPL student before finetuning, Noisy Student's rounds) are `RunPaths.stage`s.

**Meta Pseudo Labels** (`"mpl"`): the labeled and unlabeled streams of `ssl_split`
(`keras_cnn.data.ssl_datasets`) become batches `((x_l, y_l), (x_u_weak, x_u_strong))`: labeled
and weak views get the dataset's training preprocessing (CIFAR: pad-crop + flip), the strong
view is the weak batch through `randaugment` (+ `random_erasing`, the released code's Cutout).
`MetaPseudoLabels(teacher, student)` is compiled with two optimizers (`optimizer`, `momentum`,
`weight_decay`, ... for both; `learning_rate` / `warmup_epochs` / `schedule` for the student,
`teacher_learning_rate` / `teacher_warmup_epochs` and the same schedule for the teacher; both
learning rates scale with `batch_size / base_batch_size` as the released code's
`lr * train_batch_size / 256`; `ema` is the student's) and trained with `fit` under the same
backup/resume, NaN guard, `history.csv` and TensorBoard logs as a supervised run. The student
waits `student_wait_epochs` (its schedule starts after the wait, as the released code's). Then
the student's EMA weights are finalised and saved (`mpl_student.weights.h5`: a run killed
during finetuning resumes after the MPL stage), and the student is finetuned on labeled data
alone for `finetune_steps` steps (`keras_cnn.ssl.finetune_student`, `finetune_history.csv`).
The pipelines of a resumed MPL run are seeded with `seed + resumed epoch`: a resumed run sees
fresh (not replayed) data, equivalent in distribution, not bit-identical.

**Noisy Student** (`"noisy_student"`): `keras_cnn.ssl.noisy_student` (round directories under
`<output_dir>/rounds`, a killed run resumes at its first unfinished round) on the labeled images
(every training image of `dataset`, or the labels of `ssl_split`) and the `unlabeled` images,
center-cropped/resized to `image_size`. Each student is compiled with the recipe's optimizer and
schedule (steps per epoch from its round's data size), soft-label cross-entropy with
`label_smoothing`, and input noise `randaugment` (+ `random_erasing`); model noise (`dropout`,
`drop_path_rate`) is in `model_args`. `noisy_student` holds the decoded images in memory as
NumPy arrays (its scale note): the job refuses configs whose images exceed `max_in_memory_gb`
instead of running out of memory, so ImageNet-scale rounds need a streaming loop (not here).
"""

import logging
import math
import os
import time

import keras
import tensorflow as tf

from keras_cnn import data
from keras_cnn.distribute.precision import set_precision
from keras_cnn.distribute.xla import choose_jit_compile
from keras_cnn.registry import create_model
from keras_cnn.ssl.mpl import PSEUDO_LABELS, MetaPseudoLabels, finetune_student
from keras_cnn.ssl.noisy_student import noisy_student, round_dir
from keras_cnn.ssl.pseudo_labels import PSEUDO_LABEL_MODES
from keras_cnn.training.callbacks import NonFiniteGuard, TrainingDiverged
from keras_cnn.training.config import resolve_config
from keras_cnn.training.run import (
    classification_metrics,
    eval_pipeline,
    fit_callbacks,
    load_teacher,
    optimizer_from_config,
    raise_if_diverged,
    run_job,
    scaled_learning_rate,
    write_artifacts,
    write_json,
)
from keras_cnn.training.schedules import build_schedule
from keras_cnn.validation import check_bool as _check_bool
from keras_cnn.validation import check_choice, check_positive_int, check_positive_number
from keras_cnn.validation import check_non_negative as _check_non_negative

__all__ = ["MPL_STAGE_FILE", "TRAINERS", "train_mpl", "train_noisy_student", "train_ssl"]

LOGGER = logging.getLogger("keras_cnn.train")

# The student after the MPL stage (EMA finalised): its presence means that stage is finished.
MPL_STAGE_FILE = "mpl_student.weights.h5"
_FINETUNE_HISTORY = "finetune_history.csv"
_ROUNDS_DIR = "rounds"


def _check_split(cfg, *, required):
    """The `SSLSplit` of the method section's `ssl_split` (or None), consistent with `dataset`."""
    section = getattr(cfg, cfg.method)
    if section.labels_per_class is not None and section.ssl_split is None:
        raise ValueError(f"`labels_per_class` needs an `ssl_split`, received labels_per_class="
                         f"{section.labels_per_class!r} with ssl_split=None")
    if section.ssl_split is None:
        if required:
            raise ValueError(
                f"method {cfg.method!r} needs `ssl_split` (one of {sorted(data.SSL_SPLITS)}, 'digits_<N>' or 'fashion_mnist_<N>'), "
                "received ssl_split=None")
        return None
    split = data.get_ssl_split(section.ssl_split)
    if split.dataset != cfg.data.dataset:
        raise ValueError(
            f"`ssl_split`={section.ssl_split!r} draws from dataset {split.dataset!r}, received "
            f"dataset={cfg.data.dataset!r} (set both)")
    return split


def _steps(epochs, steps_per_epoch):
    return int(round(epochs * steps_per_epoch))


def _schedule_in_steps(cfg, learning_rate, *, total_steps, warmup_steps, steps_per_epoch):
    """`build_schedule` over `total_steps` steps (schedule arguments in epochs converted to steps)."""
    args = dict(cfg.schedule.args)
    if "decay_epochs" in args:
        args["decay_epochs"] = args["decay_epochs"] * steps_per_epoch
    if "boundaries_epochs" in args:
        args["boundaries_epochs"] = [b * steps_per_epoch for b in args["boundaries_epochs"]]
    return build_schedule(cfg.schedule.name, learning_rate, steps_per_epoch=1, epochs=total_steps,
                          warmup_epochs=warmup_steps, **args)


def _teacher_spec(cfg):
    """`(name, builder kwargs)` of the teacher: `teacher` (None: `model`, inheriting `model_args`)."""
    section = getattr(cfg, cfg.method)  # mpl.teacher or noisy_student.teacher (round 0)
    name = section.teacher or cfg.model
    inherited = cfg.model_args if section.teacher is None else {}
    return name, {**inherited, **section.teacher_args}


def _preprocessing(cfg, info):
    return info.preprocessing if cfg.data.preprocessing == "auto" else cfg.data.preprocessing


def _jit(cfg, model, strategy):
    if cfg.run.run_eagerly:
        return False
    override = None if cfg.run.jit_compile == "auto" else cfg.run.jit_compile
    jit = choose_jit_compile(model, strategy=strategy, override=override)
    if jit and strategy.num_replicas_in_sync > 1:
        # keras_cnn.distribute.use_replica_xla supports Keras' default train_step only; the
        # custom steps here run without XLA on >= 2 replicas rather than fail (keras-team/keras#19005).
        LOGGER.info("XLA off: %d replicas and a custom train_step", strategy.num_replicas_in_sync)
        return False
    return jit


def _evaluate_student(student, eval_ds, num_classes, strategy, run_eagerly=False):
    with strategy.scope():
        # Plain SGD (no slot variables): model.keras then holds a 2-variable optimizer that loads
        # without Keras' "skipping variable loading" warning (compile's default RMSprop would).
        student.compile(optimizer=keras.optimizers.SGD(),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=classification_metrics(num_classes, one_hot=False), run_eagerly=run_eagerly)
    return student.evaluate(eval_ds, return_dict=True, verbose=0)


def _score_fields(scores, prefix="test"):
    return {f"{prefix}_{k}": float(v) for k, v in scores.items()}


def train_ssl(config, *, output_dir, strategy="auto", data_dir=None, verbose="auto", restart=False):
    """Runs (or resumes) a semi-supervised config and writes the run's artifacts (module docstring).

    Args:
        config: A config dict with `"method": "mpl"` or `"noisy_student"`; missing keys take the
            method's defaults (`keras_cnn.training.config.defaults_for`).
        output_dir: The run's directory (Noisy Student's round directories need a local path).
        strategy: A `tf.distribute.Strategy` or a kind for `keras_cnn.distribute.get_strategy`.
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity (`"auto"`: a progress bar).
        restart: Train from scratch even if `output_dir` holds a finished or interrupted run.

    Returns:
        The results dict (also written to `results.json`): the student's test loss/accuracy and run facts.

    Raises:
        ValueError: A bad config value (naming the key), unknown dataset, split or model, missing data.
        TrainingDiverged: A loss became NaN/inf; the last good checkpoint and backup are kept.
    """
    cfg = resolve_config(config)
    check_choice("method", cfg.method, tuple(TRAINERS))
    return run_job(TRAINERS[cfg.method], cfg, output_dir=output_dir, strategy=strategy, data_dir=data_dir,
                   verbose=verbose, restart=restart)


# --- Meta Pseudo Labels -------------------------------------------------------------------------


def _check_mpl(cfg):
    _check_split(cfg, required=True)
    check_positive_int("mu", cfg.mpl.mu)
    check_positive_number("teacher_learning_rate", cfg.mpl.teacher_learning_rate)
    check_positive_number("finetune_learning_rate", cfg.mpl.finetune_learning_rate)
    for key in ("teacher_warmup_epochs", "student_wait_epochs", "warmup_epochs", "uda_weight", "uda_ramp_epochs"):
        _check_non_negative(key, cfg[key])
    check_positive_int("finetune_steps", cfg.mpl.finetune_steps, minimum=0)
    if cfg.mpl.finetune_batch_size is not None:
        check_positive_int("finetune_batch_size", cfg.mpl.finetune_batch_size)
    check_choice("pseudo_labels", cfg.mpl.pseudo_labels, PSEUDO_LABELS)


def _mpl_pipelines(cfg, info, image_size, labeled, unlabeled, seed):
    """`((x_l, y_l), (x_u_weak, x_u_strong))` training batches, forever."""
    common = dict(training=True, image_size=image_size, num_classes=info.num_classes,
                  preprocessing=_preprocessing(cfg, info), repeat=True, deterministic=cfg.run.deterministic)
    labeled_ds = data.make_pipeline(labeled, batch_size=cfg.schedule.batch_size, seed=seed, **common)
    weak_ds = data.make_pipeline(unlabeled, batch_size=cfg.mpl.mu * cfg.schedule.batch_size, seed=seed + 1, **common)
    strong_layers = data.augment_layers(randaugment=cfg.augment.randaugment, random_erasing=cfg.augment.random_erasing,
                                        seed=seed + 2)

    def views(weak):
        strong = weak
        for layer in strong_layers:
            strong = tf.cast(layer(strong, training=True), tf.float32)
        # The pipelines' contract is [0, 255]; interpolating layers may overshoot by rounding.
        return weak, tf.clip_by_value(strong, 0.0, 255.0)

    # Keras layers keep their random state in a variable: sequential calls when deterministic.
    parallel = None if cfg.run.deterministic else tf.data.AUTOTUNE
    unlabeled_ds = weak_ds.map(views, num_parallel_calls=parallel)
    return tf.data.Dataset.zip((labeled_ds, unlabeled_ds)).prefetch(tf.data.AUTOTUNE)


def train_mpl(cfg, paths, strategy, data_dir, verbose):
    """The Meta Pseudo Labels job (module docstring), run by `keras_cnn.training.run.run_job`.

    Args:
        cfg: A resolved `"mpl"` config (checked by `train_mpl.check`).
        paths: The run's `RunPaths`.
        strategy: A `tf.distribute.Strategy`.
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity.

    Returns:
        The results dict (also written to `results.json`).
    """
    info = data.get_dataset_info(cfg.data.dataset)
    image_size = cfg.data.image_size or info.image_size
    precision = set_precision(strategy, cfg.run.precision)
    labeled, unlabeled, info = data.ssl_datasets(cfg.mpl.ssl_split, seed=cfg.run.seed, data_dir=data_dir,
                                                 per_class=cfg.mpl.labels_per_class, download=cfg.data.download)
    eval_source = data.load(info.name, cfg.data.eval_split, data_dir=data_dir, download=cfg.data.download)
    unlabeled_batch = cfg.mpl.mu * cfg.schedule.batch_size
    steps_per_epoch = cfg.schedule.steps_per_epoch or max(1, info.train_examples // unlabeled_batch)
    total_steps = cfg.schedule.epochs * steps_per_epoch
    wait_steps = _steps(cfg.mpl.student_wait_epochs, steps_per_epoch)
    if wait_steps >= total_steps:
        raise ValueError(f"`student_wait_epochs` must be smaller than `epochs` ({cfg.schedule.epochs}), received "
                         f"student_wait_epochs={cfg.mpl.student_wait_epochs!r}")
    eval_ds = eval_pipeline(cfg, info, image_size, eval_source)
    input_shape = (image_size, image_size, 3)
    teacher_name, teacher_args = _teacher_spec(cfg)
    stage = paths.stage(MPL_STAGE_FILE)
    mpl_done = stage.done

    with strategy.scope():
        student = create_model(cfg.model, classes=info.num_classes, input_shape=input_shape,
                               classifier_activation=None, weights=cfg.weights, **cfg.model_args)
    jit = _jit(cfg, student, strategy)
    write_json(paths.config, cfg, strategy)
    initial_epoch, train_seconds, steps = 0, 0.0, {}
    if mpl_done:
        LOGGER.info("%s: the MPL stage is finished (%s); finetuning", paths.root, MPL_STAGE_FILE)
        stage.load(student)
    else:
        guard, backup, callbacks = fit_callbacks(cfg, paths, strategy)
        initial_epoch = min(backup.resume_epoch(), cfg.schedule.epochs - 1)
        if initial_epoch:
            LOGGER.info("resuming at epoch %d of %d from %s", initial_epoch + 1, cfg.schedule.epochs, paths.backup)
        train_ds = _mpl_pipelines(cfg, info, image_size, labeled, unlabeled, cfg.run.seed + initial_epoch)
        with strategy.scope():
            teacher = create_model(teacher_name, classes=info.num_classes, input_shape=input_shape,
                                   classifier_activation=None, **teacher_args)
            teacher_schedule = _schedule_in_steps(
                cfg, scaled_learning_rate(cfg, cfg.mpl.teacher_learning_rate), total_steps=total_steps,
                warmup_steps=_steps(cfg.mpl.teacher_warmup_epochs, steps_per_epoch), steps_per_epoch=steps_per_epoch)
            # The student's schedule runs after its wait (MetaPseudoLabels wraps it in a StudentWaitSchedule).
            student_schedule = _schedule_in_steps(
                cfg, scaled_learning_rate(cfg, cfg.optim.learning_rate), total_steps=total_steps - wait_steps,
                warmup_steps=_steps(cfg.schedule.warmup_epochs, steps_per_epoch), steps_per_epoch=steps_per_epoch)
            mpl = MetaPseudoLabels(
                teacher, student, uda_weight=cfg.mpl.uda_weight, uda_temperature=cfg.mpl.uda_temperature,
                uda_threshold=cfg.mpl.uda_threshold, label_smoothing=cfg.loss.label_smoothing,
                pseudo_labels=cfg.mpl.pseudo_labels, student_wait_steps=wait_steps,
                uda_ramp_steps=_steps(cfg.mpl.uda_ramp_epochs, steps_per_epoch),
                baseline_momentum=cfg.mpl.feedback_baseline_momentum, seed=cfg.run.seed)
            metrics = ["accuracy"]
            if info.num_classes >= 100:
                metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
            mpl.compile(teacher_optimizer=optimizer_from_config(cfg, teacher_schedule, teacher, ema=None, global_clipnorm=cfg.mpl.global_clipnorm),
                        student_optimizer=optimizer_from_config(cfg, student_schedule, student, ema=cfg.optim.ema,
                                                                  global_clipnorm=cfg.mpl.global_clipnorm),
                        metrics=metrics, jit_compile=jit, run_eagerly=cfg.run.run_eagerly)
        validation = {}
        if cfg.schedule.validation_freq:
            validation = dict(validation_data=eval_ds, validation_freq=cfg.schedule.validation_freq)
        start = time.time()
        mpl.fit(train_ds, epochs=cfg.schedule.epochs, steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                callbacks=callbacks, verbose=verbose, shuffle=False, **validation)
        train_seconds = time.time() - start
        raise_if_diverged(guard, paths)
        steps = {"teacher_steps": int(mpl.optimizer.iterations.numpy()),
                 "student_steps": int(mpl.student_optimizer.iterations.numpy())}
        mpl.finalize_student()  # the student's EMA weights, as the released code evaluates
        stage.save(student, strategy)  # finetuning a resumed run starts from here

    before = _evaluate_student(student, eval_ds, info.num_classes, strategy, cfg.run.run_eagerly)
    finetune_seconds = 0.0
    if cfg.mpl.finetune_steps:
        finetune_batch = cfg.mpl.finetune_batch_size or cfg.schedule.batch_size
        finetune_ds = data.make_pipeline(labeled, training=True, batch_size=finetune_batch, image_size=image_size,
                                         num_classes=info.num_classes, preprocessing=_preprocessing(cfg, info),
                                         repeat=True, seed=cfg.run.seed + 3, deterministic=cfg.run.deterministic)
        guard = NonFiniteGuard()
        start = time.time()
        with strategy.scope():
            finetune_student(student, finetune_ds, epochs=1, learning_rate=cfg.mpl.finetune_learning_rate,
                             label_smoothing=cfg.loss.label_smoothing, steps_per_epoch=cfg.mpl.finetune_steps,
                             callbacks=[guard, keras.callbacks.CSVLogger(os.path.join(paths.root, _FINETUNE_HISTORY))],
                             verbose=verbose, shuffle=False)
        finetune_seconds = time.time() - start
        if guard.diverged:
            raise TrainingDiverged(
                f"finetuning stopped: the loss became NaN/inf. The MPL student is kept in "
                f"{os.path.join(paths.root, MPL_STAGE_FILE)}; the same command (e.g. with a lower --set "
                f"finetune_learning_rate=...) finetunes it again.")
    scores = _evaluate_student(student, eval_ds, info.num_classes, strategy, cfg.run.run_eagerly) if cfg.mpl.finetune_steps else before
    results = {
        "method": "mpl",
        "recipe_model": cfg.model,
        "teacher_model": teacher_name,
        "dataset": info.name,
        "ssl_split": cfg.mpl.ssl_split,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        **{k: v for k, v in _score_fields(scores).items() if k not in ("test_accuracy", "test_loss")},
        **_score_fields(before, "before_finetune"),
        "epochs": cfg.schedule.epochs,
        "epochs_run": 0 if mpl_done else cfg.schedule.epochs - initial_epoch,
        "resumed_at_epoch": initial_epoch,
        "mpl_stage_resumed": mpl_done,
        "steps_per_epoch": steps_per_epoch,
        **steps,
        "student_wait_steps": wait_steps,
        "finetune_steps": cfg.mpl.finetune_steps,
        "labeled_batch": cfg.schedule.batch_size,
        "unlabeled_batch": unlabeled_batch,
        "image_size": image_size,
        "precision": precision,
        "jit_compile": bool(jit),
        "replicas": strategy.num_replicas_in_sync,
        "train_seconds": round(train_seconds, 1),
        "finetune_seconds": round(finetune_seconds, 1),
    }
    write_artifacts(student, results, paths, strategy, config=cfg)
    return results


# --- Noisy Student ------------------------------------------------------------------------------


def _check_noisy_student(cfg):
    _check_split(cfg, required=False)
    check_positive_int("rounds", cfg.noisy_student.rounds)
    check_choice("pseudo_label_mode", cfg.noisy_student.pseudo_label_mode, PSEUDO_LABEL_MODES)
    _check_bool("balance_classes", cfg.noisy_student.balance_classes)
    check_positive_number("max_in_memory_gb", cfg.noisy_student.max_in_memory_gb)
    models = cfg.noisy_student.student_models
    if models is not None and (not isinstance(models, (list, tuple)) or len(models) != cfg.noisy_student.rounds
                               or not all(isinstance(m, str) for m in models)):
        raise ValueError(
            f"`student_models` must be None or {cfg.noisy_student.rounds} model names (one per round), received "
            f"student_models={models!r}")
    sizes = cfg.noisy_student.student_image_sizes
    if sizes is not None:
        if not isinstance(sizes, (list, tuple)) or len(sizes) != cfg.noisy_student.rounds:
            raise ValueError(f"`student_image_sizes` must be None or {cfg.noisy_student.rounds} sizes (one per round), received "
                             f"student_image_sizes={sizes!r}")
        for size in sizes:
            check_positive_int("student_image_sizes", size, minimum=8)
    if not isinstance(cfg.noisy_student.unlabeled, str) or not cfg.noisy_student.unlabeled:
        raise ValueError(f"`unlabeled` must be 'train_images', 'tfds:NAME[:SPLIT]' or a directory, received "
                         f"unlabeled={cfg.noisy_student.unlabeled!r}")


def _unlabeled_images(cfg, default, image_size, data_dir):
    """`(dataset of images, count or -1)` for the `unlabeled` key."""
    source = cfg.noisy_student.unlabeled
    if source == "train_images":
        return default, int(default.cardinality())
    if source.startswith("tfds:"):
        import tensorflow_datasets as tfds

        name, _, split = source[len("tfds:"):].partition(":")
        split = split or "train"
        builder = tfds.builder(name, data_dir=data_dir)
        if cfg.data.download:
            builder.download_and_prepare()
        try:
            dataset = builder.as_dataset(split=split, shuffle_files=False)
        except (AssertionError, ValueError) as error:
            raise ValueError(f"`unlabeled`={source!r} cannot be read from tfds (data_dir={data_dir!r}): "
                             f"{str(error).splitlines()[0][:300]}") from None
        return dataset.map(lambda example: example["image"]), builder.info.splits[split].num_examples
    if tf.io.gfile.isdir(source):
        dataset = keras.utils.image_dataset_from_directory(
            source, labels=None, image_size=(image_size, image_size), batch_size=None, shuffle=False,
            verbose=False)
        return dataset, int(dataset.cardinality())
    raise ValueError(
        "`unlabeled` must be 'train_images', 'tfds:NAME[:SPLIT]' or an existing directory of images, received "
        f"unlabeled={source!r}")


def _round_sizes(cfg, image_size):
    """Input size of each round 0..rounds: the teacher's `image_size`, then `student_image_sizes`."""
    return [image_size] + list(cfg.noisy_student.student_image_sizes or [image_size] * cfg.noisy_student.rounds)


def train_noisy_student(cfg, paths, strategy, data_dir, verbose):
    """The Noisy Student job (module docstring), run by `keras_cnn.training.run.run_job`.

    Args:
        cfg: A resolved `"noisy_student"` config (checked by `train_noisy_student.check`).
        paths: The run's `RunPaths`.
        strategy: A `tf.distribute.Strategy`.
        data_dir: tfds data directory (`None`: tfds' default).
        verbose: `fit`'s verbosity.

    Returns:
        The results dict (also written to `results.json`).
    """
    info = data.get_dataset_info(cfg.data.dataset)
    image_size = cfg.data.image_size or info.image_size
    round_sizes = _round_sizes(cfg, image_size)
    # Images are held once, at the largest size any round uses; noisy_student resizes batches to
    # each model's input size (downsampling, never upsampling stored pixels).
    hold_size = max(round_sizes)
    precision = set_precision(strategy, cfg.run.precision)
    if cfg.noisy_student.ssl_split is not None:
        labeled, default_unlabeled, info = data.ssl_datasets(cfg.noisy_student.ssl_split, seed=cfg.run.seed, data_dir=data_dir,
                                                             per_class=cfg.noisy_student.labels_per_class,
                                                             download=cfg.data.download)
    else:
        labeled = data.load(info.name, cfg.data.train_split, data_dir=data_dir, download=cfg.data.download)
        default_unlabeled = labeled.map(lambda image, label: image)
    unlabeled, num_unlabeled = _unlabeled_images(cfg, default_unlabeled, image_size, data_dir)
    eval_source = data.load(info.name, cfg.data.eval_split, data_dir=data_dir, download=cfg.data.download)
    eval_ds = eval_pipeline(cfg, info, round_sizes[-1], eval_source)

    num_labeled = int(labeled.cardinality())
    if num_labeled < 0:  # a filtered split: its size from the split's definition
        split = data.get_ssl_split(cfg.noisy_student.ssl_split) if cfg.noisy_student.ssl_split else None
        per_class = cfg.noisy_student.labels_per_class or (split.per_class if split else None)
        num_labeled = (per_class * info.num_classes if isinstance(per_class, int)
                       else int(round((per_class or 1.0) * info.train_examples)))
    if num_unlabeled < 0:
        num_unlabeled = info.train_examples
    # noisy_student keeps float32 images: the labeled + unlabeled arrays and the student's mix.
    needed_gb = 2 * (num_labeled + num_unlabeled) * hold_size * hold_size * 3 * 4 / 2**30
    if needed_gb > cfg.noisy_student.max_in_memory_gb:
        raise ValueError(
            f"Noisy Student holds its images in memory (keras_cnn.ssl.noisy_student): {num_labeled} labeled + "
            f"{num_unlabeled} unlabeled images at {hold_size} px need about {needed_gb:.0f} GiB, over "
            f"max_in_memory_gb={cfg.noisy_student.max_in_memory_gb!r}. Raise it (--set max_in_memory_gb=...), or use a "
            "smaller unlabeled set or image_size")

    kind = _preprocessing(cfg, info)

    def prepared(image):
        # The teacher labels clean images: the evaluation preprocessing (resize / center crop).
        return data.preprocess_eval(image, size=hold_size, kind=kind, crop_fraction=cfg.data.crop_fraction)

    labeled_images = labeled.map(lambda image, label: (prepared(image), label), num_parallel_calls=tf.data.AUTOTUNE)
    unlabeled_images = unlabeled.map(prepared, num_parallel_calls=tf.data.AUTOTUNE)
    teacher_name, teacher_args = _teacher_spec(cfg)
    teacher = None
    if cfg.noisy_student.teacher_weights is not None:
        with strategy.scope():
            teacher = load_teacher(teacher_name, teacher_args, cfg.noisy_student.teacher_weights, info.num_classes,
                                   image_size)
    rounds_dir = paths.stage(_ROUNDS_DIR).path  # noisy_student resumes its rounds there

    def build_student(k, **model_noise):
        if k == 0:
            name, args = teacher_name, teacher_args
        else:
            name = cfg.noisy_student.student_models[k - 1] if cfg.noisy_student.student_models else cfg.model
            args = cfg.model_args
        size = round_sizes[k]
        return create_model(name, classes=info.num_classes, input_shape=(size, size, 3), classifier_activation=None,
                            **{**args, **model_noise})

    def compile_student(model, steps_per_epoch):
        # `steps_per_epoch` counts the round's training set after filtering and balancing.
        schedule = build_schedule(cfg.schedule.name, scaled_learning_rate(cfg, cfg.optim.learning_rate), steps_per_epoch=steps_per_epoch,
                                  epochs=cfg.schedule.epochs, warmup_epochs=cfg.schedule.warmup_epochs, **cfg.schedule.args)
        # No label smoothing in the loss: noisy_student smooths the one-hot targets only (the
        # released code leaves soft pseudo-labels unsmoothed).
        model.compile(optimizer=optimizer_from_config(cfg, schedule, model, ema=cfg.optim.ema),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                      jit_compile=_jit(cfg, model, strategy), run_eagerly=cfg.run.run_eagerly)

    write_json(paths.config, cfg, strategy)
    noise = {"randaugment": cfg.augment.randaugment, "random_erasing": cfg.augment.random_erasing}
    start = time.time()
    with strategy.scope():
        rounds = noisy_student(
            build_student, teacher, labeled_images, unlabeled_images, rounds=cfg.noisy_student.rounds, output_dir=rounds_dir,
            epochs=cfg.schedule.epochs, batch_size=cfg.schedule.batch_size, mode=cfg.noisy_student.pseudo_label_mode,
            threshold=cfg.noisy_student.pseudo_label_threshold, balance=cfg.noisy_student.balance_classes, per_class=cfg.noisy_student.per_class,
            noise=noise, compile_student=compile_student, seed=cfg.run.seed, verbose=0 if verbose == 0 else 1,
            label_smoothing=cfg.loss.label_smoothing)
    train_seconds = time.time() - start
    for record in rounds:
        losses = record.get("history", {}).get("loss", [])
        if losses and not math.isfinite(losses[-1]):
            raise TrainingDiverged(
                f"round {record['round']} ended with a non-finite loss ({losses[-1]}); delete "
                f"{round_dir(rounds_dir, record['round'])} and run again (e.g. with a lower --set learning_rate=...)")
    last = rounds[-1]["round"]
    with strategy.scope():
        student = keras.saving.load_model(os.path.join(round_dir(rounds_dir, last), "model.keras"), compile=False)
    scores = _evaluate_student(student, eval_ds, info.num_classes, strategy, cfg.run.run_eagerly)
    results = {
        "method": "noisy_student",
        "recipe_model": cfg.noisy_student.student_models[-1] if cfg.noisy_student.student_models else cfg.model,
        "teacher_model": teacher_name,
        "dataset": info.name,
        "ssl_split": cfg.noisy_student.ssl_split,
        "unlabeled": cfg.noisy_student.unlabeled,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        **{k: v for k, v in _score_fields(scores).items() if k not in ("test_accuracy", "test_loss")},
        "rounds": [{k: r.get(k) for k in ("round", "num_labeled", "num_pseudo_labeled", "epochs", "steps_per_epoch",
                                          "image_size", "resumed")}
                   for r in rounds],
        "resumed_rounds": sum(bool(r.get("resumed")) for r in rounds),
        "epochs": cfg.schedule.epochs,
        # Over the rounds this call trained (a finished round is read back, not trained again).
        "epochs_run": sum(int(r.get("epochs") or 0) for r in rounds if not r.get("resumed")),
        "image_size": round_sizes[-1],
        "batch_size": cfg.schedule.batch_size,
        "precision": precision,
        "replicas": strategy.num_replicas_in_sync,
        "train_seconds": round(train_seconds, 1),
    }
    write_artifacts(student, results, paths, strategy, config=cfg)
    return results


train_mpl.check = _check_mpl
train_noisy_student.check = _check_noisy_student

# The semi-supervised jobs by method (`keras_cnn.jobs.TRAINERS` adds the supervised one).
TRAINERS = {"mpl": train_mpl, "noisy_student": train_noisy_student}
