"""The semi-supervised jobs behind `keras-cnn train` (TensorFlow-specific: tf.data, tf.distribute).

`keras_cnn.training.runner.train` hands a config whose `"method"` is `"mpl"` or
`"noisy_student"` to `train_ssl`; the keys are `keras_cnn.training.config.defaults_for(method)`.
Both jobs reuse the supervised runner's pieces (run directory, resume, NaN guard, logs, final
artifacts) and write the same files: `model.keras` / `saved_model/` are the final **student**
(logits out), `results.json` marks the run finished.

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
from keras_cnn.distribute import checkpoint as ckpt
from keras_cnn.distribute.precision import set_precision
from keras_cnn.distribute.xla import choose_jit_compile
from keras_cnn.registry import create_model
from keras_cnn.ssl.mpl import PSEUDO_LABELS, MetaPseudoLabels, finetune_student
from keras_cnn.ssl.noisy_student import noisy_student, round_dir
from keras_cnn.ssl.pseudo_labels import PSEUDO_LABEL_MODES
from keras_cnn.training.callbacks import NonFiniteGuard, TrainingDiverged
from keras_cnn.training.config import resolve_config
from keras_cnn.training.optimizers import build_optimizer
from keras_cnn.training.runner import (
    RunPaths,
    check_common_config,
    classification_metrics,
    eval_pipeline,
    finished_results,
    fit_callbacks,
    load_teacher,
    raise_if_diverged,
    resolve_strategy,
    run_context,
    write_artifacts,
    write_json,
)
from keras_cnn.training.schedules import build_schedule, scale_learning_rate
from keras_cnn.validation import check_bool as _check_bool
from keras_cnn.validation import check_choice, check_positive_int, check_positive_number
from keras_cnn.validation import check_non_negative as _check_non_negative

__all__ = ["MPL_STAGE_FILE", "train_ssl"]

LOGGER = logging.getLogger("keras_cnn.train")

# The student after the MPL stage (EMA finalised): its presence means that stage is finished.
MPL_STAGE_FILE = "mpl_student.weights.h5"
_FINETUNE_HISTORY = "finetune_history.csv"
_ROUNDS_DIR = "rounds"


def _check_split(cfg, *, required):
    """The `SSLSplit` of `ssl_split` (or None), consistent with `dataset`."""
    if cfg["labels_per_class"] is not None and cfg["ssl_split"] is None:
        raise ValueError(f"`labels_per_class` needs an `ssl_split`, received labels_per_class="
                         f"{cfg['labels_per_class']!r} with ssl_split=None")
    if cfg["ssl_split"] is None:
        if required:
            raise ValueError(
                f"method {cfg['method']!r} needs `ssl_split` (one of {sorted(data.SSL_SPLITS)}, 'digits_<N>' or 'fashion_mnist_<N>'), "
                "received ssl_split=None")
        return None
    split = data.get_ssl_split(cfg["ssl_split"])
    if split.dataset != cfg["dataset"]:
        raise ValueError(
            f"`ssl_split`={cfg['ssl_split']!r} draws from dataset {split.dataset!r}, received "
            f"dataset={cfg['dataset']!r} (set both)")
    return split


def _steps(epochs, steps_per_epoch):
    return int(round(epochs * steps_per_epoch))


def _schedule_in_steps(cfg, learning_rate, *, total_steps, warmup_steps, steps_per_epoch):
    """`build_schedule` over `total_steps` steps (schedule arguments in epochs converted to steps)."""
    args = dict(cfg["schedule_args"])
    if "decay_epochs" in args:
        args["decay_epochs"] = args["decay_epochs"] * steps_per_epoch
    if "boundaries_epochs" in args:
        args["boundaries_epochs"] = [b * steps_per_epoch for b in args["boundaries_epochs"]]
    return build_schedule(cfg["schedule"], learning_rate, steps_per_epoch=1, epochs=total_steps,
                          warmup_epochs=warmup_steps, **args)


def _scaled(cfg, learning_rate):
    if cfg["base_batch_size"] is None:
        return learning_rate
    return scale_learning_rate(learning_rate, cfg["batch_size"], cfg["base_batch_size"])


def _optimizer(cfg, schedule, model, *, ema):
    return build_optimizer(
        cfg["optimizer"], schedule, weight_decay=cfg["weight_decay"], weight_decay_mode=cfg["weight_decay_mode"],
        no_bias_decay=cfg["no_bias_decay"], model=model, momentum=cfg["momentum"], nesterov=cfg["nesterov"], rho=cfg["rho"], epsilon=cfg["epsilon"],
        ema=ema, clipnorm=cfg["clipnorm"], global_clipnorm=cfg.get("global_clipnorm"),
    )


def _teacher_spec(cfg):
    """`(name, builder kwargs)` of the teacher: `teacher` (None: `model`, inheriting `model_args`)."""
    name = cfg["teacher"] or cfg["model"]
    inherited = cfg["model_args"] if cfg["teacher"] is None else {}
    return name, {**inherited, **cfg["teacher_args"]}


def _preprocessing(cfg, info):
    return info.preprocessing if cfg["preprocessing"] == "auto" else cfg["preprocessing"]


def _jit(cfg, model, strategy):
    override = None if cfg["jit_compile"] == "auto" else cfg["jit_compile"]
    jit = choose_jit_compile(model, strategy=strategy, override=override)
    if jit and strategy.num_replicas_in_sync > 1:
        # keras_cnn.distribute.use_replica_xla supports Keras' default train_step only; the
        # custom steps here run without XLA on >= 2 replicas rather than fail (keras-team/keras#19005).
        LOGGER.info("XLA off: %d replicas and a custom train_step", strategy.num_replicas_in_sync)
        return False
    return jit


def _evaluate_student(student, eval_ds, num_classes, strategy):
    with strategy.scope():
        # Plain SGD (no slot variables): model.keras then holds a 2-variable optimizer that loads
        # without Keras' "skipping variable loading" warning (compile's default RMSprop would).
        student.compile(optimizer=keras.optimizers.SGD(),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=classification_metrics(num_classes, one_hot=False))
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
    check_common_config(cfg)
    jobs = {"mpl": _train_mpl, "noisy_student": _train_noisy_student}
    check_choice("method", cfg["method"], tuple(jobs))
    paths = RunPaths(os.fspath(output_dir))
    finished = finished_results(paths, restart)
    if finished is not None:
        return finished
    with run_context(cfg):
        return jobs[cfg["method"]](cfg, paths, resolve_strategy(strategy), data_dir, verbose)


# --- Meta Pseudo Labels -------------------------------------------------------------------------


def _check_mpl(cfg):
    _check_split(cfg, required=True)
    check_positive_int("mu", cfg["mu"])
    check_positive_number("teacher_learning_rate", cfg["teacher_learning_rate"])
    check_positive_number("finetune_learning_rate", cfg["finetune_learning_rate"])
    for key in ("teacher_warmup_epochs", "student_wait_epochs", "warmup_epochs", "uda_weight", "uda_ramp_epochs"):
        _check_non_negative(key, cfg[key])
    check_positive_int("finetune_steps", cfg["finetune_steps"], minimum=0)
    if cfg["finetune_batch_size"] is not None:
        check_positive_int("finetune_batch_size", cfg["finetune_batch_size"])
    check_choice("pseudo_labels", cfg["pseudo_labels"], PSEUDO_LABELS)


def _mpl_pipelines(cfg, info, image_size, labeled, unlabeled, seed):
    """`((x_l, y_l), (x_u_weak, x_u_strong))` training batches, forever."""
    common = dict(training=True, image_size=image_size, num_classes=info.num_classes,
                  preprocessing=_preprocessing(cfg, info), repeat=True, deterministic=cfg["deterministic"])
    labeled_ds = data.make_pipeline(labeled, batch_size=cfg["batch_size"], seed=seed, **common)
    weak_ds = data.make_pipeline(unlabeled, batch_size=cfg["mu"] * cfg["batch_size"], seed=seed + 1, **common)
    strong_layers = data.augment_layers(randaugment=cfg["randaugment"], random_erasing=cfg["random_erasing"],
                                        seed=seed + 2)

    def views(weak):
        strong = weak
        for layer in strong_layers:
            strong = tf.cast(layer(strong, training=True), tf.float32)
        # The pipelines' contract is [0, 255]; interpolating layers may overshoot by rounding.
        return weak, tf.clip_by_value(strong, 0.0, 255.0)

    # Keras layers keep their random state in a variable: sequential calls when deterministic.
    parallel = None if cfg["deterministic"] else tf.data.AUTOTUNE
    unlabeled_ds = weak_ds.map(views, num_parallel_calls=parallel)
    return tf.data.Dataset.zip((labeled_ds, unlabeled_ds)).prefetch(tf.data.AUTOTUNE)


def _train_mpl(cfg, paths, strategy, data_dir, verbose):
    _check_mpl(cfg)
    info = data.get_dataset_info(cfg["dataset"])
    image_size = cfg["image_size"] or info.image_size
    precision = set_precision(strategy, cfg["precision"])
    labeled, unlabeled, info = data.ssl_datasets(cfg["ssl_split"], seed=cfg["seed"], data_dir=data_dir,
                                                 per_class=cfg["labels_per_class"], download=cfg["download"])
    eval_source = data.load(info.name, cfg["eval_split"], data_dir=data_dir, download=cfg["download"])
    unlabeled_batch = cfg["mu"] * cfg["batch_size"]
    steps_per_epoch = cfg["steps_per_epoch"] or max(1, info.train_examples // unlabeled_batch)
    total_steps = cfg["epochs"] * steps_per_epoch
    wait_steps = _steps(cfg["student_wait_epochs"], steps_per_epoch)
    if wait_steps >= total_steps:
        raise ValueError(f"`student_wait_epochs` must be smaller than `epochs` ({cfg['epochs']}), received "
                         f"student_wait_epochs={cfg['student_wait_epochs']!r}")
    eval_ds = eval_pipeline(cfg, info, image_size, eval_source)
    input_shape = (image_size, image_size, 3)
    teacher_name, teacher_args = _teacher_spec(cfg)
    stage_file = os.path.join(paths.root, MPL_STAGE_FILE)
    mpl_done = tf.io.gfile.exists(stage_file)

    with strategy.scope():
        student = create_model(cfg["model"], classes=info.num_classes, input_shape=input_shape,
                               classifier_activation=None, weights=cfg["weights"], **cfg["model_args"])
    jit = _jit(cfg, student, strategy)
    write_json(paths.config, cfg, strategy)
    initial_epoch, train_seconds, steps = 0, 0.0, {}
    if mpl_done:
        LOGGER.info("%s: the MPL stage is finished (%s); finetuning", paths.root, MPL_STAGE_FILE)
        student.load_weights(stage_file)
    else:
        guard, backup, callbacks = fit_callbacks(cfg, paths, strategy)
        initial_epoch = min(backup.resume_epoch(), cfg["epochs"] - 1)
        if initial_epoch:
            LOGGER.info("resuming %s at epoch %d", paths.root, initial_epoch + 1)
        train_ds = _mpl_pipelines(cfg, info, image_size, labeled, unlabeled, cfg["seed"] + initial_epoch)
        with strategy.scope():
            teacher = create_model(teacher_name, classes=info.num_classes, input_shape=input_shape,
                                   classifier_activation=None, **teacher_args)
            teacher_schedule = _schedule_in_steps(
                cfg, _scaled(cfg, cfg["teacher_learning_rate"]), total_steps=total_steps,
                warmup_steps=_steps(cfg["teacher_warmup_epochs"], steps_per_epoch), steps_per_epoch=steps_per_epoch)
            # The student's schedule runs after its wait (MetaPseudoLabels wraps it in a StudentWaitSchedule).
            student_schedule = _schedule_in_steps(
                cfg, _scaled(cfg, cfg["learning_rate"]), total_steps=total_steps - wait_steps,
                warmup_steps=_steps(cfg["warmup_epochs"], steps_per_epoch), steps_per_epoch=steps_per_epoch)
            mpl = MetaPseudoLabels(
                teacher, student, uda_weight=cfg["uda_weight"], uda_temperature=cfg["uda_temperature"],
                uda_threshold=cfg["uda_threshold"], label_smoothing=cfg["label_smoothing"],
                pseudo_labels=cfg["pseudo_labels"], student_wait_steps=wait_steps,
                uda_ramp_steps=_steps(cfg["uda_ramp_epochs"], steps_per_epoch),
                baseline_momentum=cfg["feedback_baseline_momentum"], seed=cfg["seed"])
            metrics = ["accuracy"]
            if info.num_classes >= 100:
                metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
            mpl.compile(teacher_optimizer=_optimizer(cfg, teacher_schedule, teacher, ema=None),
                        student_optimizer=_optimizer(cfg, student_schedule, student, ema=cfg["ema"]),
                        metrics=metrics, jit_compile=jit)
        validation = {}
        if cfg["validation_freq"]:
            validation = dict(validation_data=eval_ds, validation_freq=cfg["validation_freq"])
        start = time.time()
        mpl.fit(train_ds, epochs=cfg["epochs"], steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                callbacks=callbacks, verbose=verbose, shuffle=False, **validation)
        train_seconds = time.time() - start
        raise_if_diverged(guard, paths)
        steps = {"teacher_steps": int(mpl.optimizer.iterations.numpy()),
                 "student_steps": int(mpl.student_optimizer.iterations.numpy())}
        mpl.finalize_student()  # the student's EMA weights, as the released code evaluates
        # Written next to its final path and renamed over it (the chief writes; every worker saves).
        partial = stage_file[: -len(".weights.h5")] + ".partial.weights.h5"
        with ckpt.chief_only_path(partial, strategy) as target:
            student.save_weights(target)
            if target == partial:
                tf.io.gfile.rename(partial, stage_file, overwrite=True)

    before = _evaluate_student(student, eval_ds, info.num_classes, strategy)
    finetune_seconds = 0.0
    if cfg["finetune_steps"]:
        finetune_batch = cfg["finetune_batch_size"] or cfg["batch_size"]
        finetune_ds = data.make_pipeline(labeled, training=True, batch_size=finetune_batch, image_size=image_size,
                                         num_classes=info.num_classes, preprocessing=_preprocessing(cfg, info),
                                         repeat=True, seed=cfg["seed"] + 3, deterministic=cfg["deterministic"])
        guard = NonFiniteGuard()
        start = time.time()
        with strategy.scope():
            finetune_student(student, finetune_ds, epochs=1, learning_rate=cfg["finetune_learning_rate"],
                             label_smoothing=cfg["label_smoothing"], steps_per_epoch=cfg["finetune_steps"],
                             callbacks=[guard, keras.callbacks.CSVLogger(os.path.join(paths.root, _FINETUNE_HISTORY))],
                             verbose=verbose, shuffle=False)
        finetune_seconds = time.time() - start
        if guard.diverged:
            raise TrainingDiverged(
                f"finetuning stopped: the loss became NaN/inf. The MPL student is kept in "
                f"{os.path.join(paths.root, MPL_STAGE_FILE)}; the same command (e.g. with a lower --set "
                f"finetune_learning_rate=...) finetunes it again.")
    scores = _evaluate_student(student, eval_ds, info.num_classes, strategy) if cfg["finetune_steps"] else before
    results = {
        "method": "mpl",
        "recipe_model": cfg["model"],
        "teacher_model": teacher_name,
        "dataset": info.name,
        "ssl_split": cfg["ssl_split"],
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        **{k: v for k, v in _score_fields(scores).items() if k not in ("test_accuracy", "test_loss")},
        **_score_fields(before, "before_finetune"),
        "epochs": cfg["epochs"],
        "resumed_at_epoch": initial_epoch,
        "mpl_stage_resumed": mpl_done,
        "steps_per_epoch": steps_per_epoch,
        **steps,
        "student_wait_steps": wait_steps,
        "finetune_steps": cfg["finetune_steps"],
        "labeled_batch": cfg["batch_size"],
        "unlabeled_batch": unlabeled_batch,
        "image_size": image_size,
        "precision": precision,
        "jit_compile": bool(jit),
        "replicas": strategy.num_replicas_in_sync,
        "train_seconds": round(train_seconds, 1),
        "finetune_seconds": round(finetune_seconds, 1),
    }
    write_artifacts(student, results, paths, strategy)
    return results


# --- Noisy Student ------------------------------------------------------------------------------


def _check_noisy_student(cfg):
    _check_split(cfg, required=False)
    check_positive_int("rounds", cfg["rounds"])
    check_choice("pseudo_label_mode", cfg["pseudo_label_mode"], PSEUDO_LABEL_MODES)
    _check_bool("balance_classes", cfg["balance_classes"])
    check_positive_number("max_in_memory_gb", cfg["max_in_memory_gb"])
    models = cfg["student_models"]
    if models is not None and (not isinstance(models, (list, tuple)) or len(models) != cfg["rounds"]
                               or not all(isinstance(m, str) for m in models)):
        raise ValueError(
            f"`student_models` must be None or {cfg['rounds']} model names (one per round), received "
            f"student_models={models!r}")
    sizes = cfg["student_image_sizes"]
    if sizes is not None:
        if not isinstance(sizes, (list, tuple)) or len(sizes) != cfg["rounds"]:
            raise ValueError(f"`student_image_sizes` must be None or {cfg['rounds']} sizes (one per round), received "
                             f"student_image_sizes={sizes!r}")
        for size in sizes:
            check_positive_int("student_image_sizes", size, minimum=8)
    if not isinstance(cfg["unlabeled"], str) or not cfg["unlabeled"]:
        raise ValueError(f"`unlabeled` must be 'train_images', 'tfds:NAME[:SPLIT]' or a directory, received "
                         f"unlabeled={cfg['unlabeled']!r}")


def _unlabeled_images(cfg, default, image_size, data_dir):
    """`(dataset of images, count or -1)` for the `unlabeled` key."""
    source = cfg["unlabeled"]
    if source == "train_images":
        return default, int(default.cardinality())
    if source.startswith("tfds:"):
        import tensorflow_datasets as tfds

        name, _, split = source[len("tfds:"):].partition(":")
        split = split or "train"
        builder = tfds.builder(name, data_dir=data_dir)
        if cfg["download"]:
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
    return [image_size] + list(cfg["student_image_sizes"] or [image_size] * cfg["rounds"])


def _train_noisy_student(cfg, paths, strategy, data_dir, verbose):
    _check_noisy_student(cfg)
    info = data.get_dataset_info(cfg["dataset"])
    image_size = cfg["image_size"] or info.image_size
    round_sizes = _round_sizes(cfg, image_size)
    # Images are held once, at the largest size any round uses; noisy_student resizes batches to
    # each model's input size (downsampling, never upsampling stored pixels).
    hold_size = max(round_sizes)
    precision = set_precision(strategy, cfg["precision"])
    if cfg["ssl_split"] is not None:
        labeled, default_unlabeled, info = data.ssl_datasets(cfg["ssl_split"], seed=cfg["seed"], data_dir=data_dir,
                                                             per_class=cfg["labels_per_class"],
                                                             download=cfg["download"])
    else:
        labeled = data.load(info.name, cfg["train_split"], data_dir=data_dir, download=cfg["download"])
        default_unlabeled = labeled.map(lambda image, label: image)
    unlabeled, num_unlabeled = _unlabeled_images(cfg, default_unlabeled, image_size, data_dir)
    eval_source = data.load(info.name, cfg["eval_split"], data_dir=data_dir, download=cfg["download"])
    eval_ds = eval_pipeline(cfg, info, round_sizes[-1], eval_source)

    num_labeled = int(labeled.cardinality())
    if num_labeled < 0:  # a filtered split: its size from the split's definition
        split = data.get_ssl_split(cfg["ssl_split"]) if cfg["ssl_split"] else None
        per_class = cfg["labels_per_class"] or (split.per_class if split else None)
        num_labeled = (per_class * info.num_classes if isinstance(per_class, int)
                       else int(round((per_class or 1.0) * info.train_examples)))
    if num_unlabeled < 0:
        num_unlabeled = info.train_examples
    # noisy_student keeps float32 images: the labeled + unlabeled arrays and the student's mix.
    needed_gb = 2 * (num_labeled + num_unlabeled) * hold_size * hold_size * 3 * 4 / 2**30
    if needed_gb > cfg["max_in_memory_gb"]:
        raise ValueError(
            f"Noisy Student holds its images in memory (keras_cnn.ssl.noisy_student): {num_labeled} labeled + "
            f"{num_unlabeled} unlabeled images at {hold_size} px need about {needed_gb:.0f} GiB, over "
            f"max_in_memory_gb={cfg['max_in_memory_gb']!r}. Raise it (--set max_in_memory_gb=...), or use a "
            "smaller unlabeled set or image_size")

    kind = _preprocessing(cfg, info)

    def prepared(image):
        # The teacher labels clean images: the evaluation preprocessing (resize / center crop).
        return data.preprocess_eval(image, size=hold_size, kind=kind, crop_fraction=cfg["crop_fraction"])

    labeled_images = labeled.map(lambda image, label: (prepared(image), label), num_parallel_calls=tf.data.AUTOTUNE)
    unlabeled_images = unlabeled.map(prepared, num_parallel_calls=tf.data.AUTOTUNE)
    teacher_name, teacher_args = _teacher_spec(cfg)
    teacher = None
    if cfg["teacher_weights"] is not None:
        with strategy.scope():
            teacher = load_teacher({**cfg, "teacher": teacher_name, "teacher_args": teacher_args},
                                   info.num_classes, image_size)
    rounds_dir = os.path.join(paths.root, _ROUNDS_DIR)

    def build_student(k, **model_noise):
        if k == 0:
            name, args = teacher_name, teacher_args
        else:
            name = cfg["student_models"][k - 1] if cfg["student_models"] else cfg["model"]
            args = cfg["model_args"]
        size = round_sizes[k]
        return create_model(name, classes=info.num_classes, input_shape=(size, size, 3), classifier_activation=None,
                            **{**args, **model_noise})

    def compile_student(model, steps_per_epoch):
        # `steps_per_epoch` counts the round's training set after filtering and balancing.
        schedule = build_schedule(cfg["schedule"], _scaled(cfg, cfg["learning_rate"]), steps_per_epoch=steps_per_epoch,
                                  epochs=cfg["epochs"], warmup_epochs=cfg["warmup_epochs"], **cfg["schedule_args"])
        # No label smoothing in the loss: noisy_student smooths the one-hot targets only (the
        # released code leaves soft pseudo-labels unsmoothed).
        model.compile(optimizer=_optimizer(cfg, schedule, model, ema=cfg["ema"]),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                      jit_compile=_jit(cfg, model, strategy))

    write_json(paths.config, cfg, strategy)
    noise = {"randaugment": cfg["randaugment"], "random_erasing": cfg["random_erasing"]}
    start = time.time()
    with strategy.scope():
        rounds = noisy_student(
            build_student, teacher, labeled_images, unlabeled_images, rounds=cfg["rounds"], output_dir=rounds_dir,
            epochs=cfg["epochs"], batch_size=cfg["batch_size"], mode=cfg["pseudo_label_mode"],
            threshold=cfg["pseudo_label_threshold"], balance=cfg["balance_classes"], per_class=cfg["per_class"],
            noise=noise, compile_student=compile_student, seed=cfg["seed"], verbose=0 if verbose == 0 else 1,
            label_smoothing=cfg["label_smoothing"])
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
    scores = _evaluate_student(student, eval_ds, info.num_classes, strategy)
    results = {
        "method": "noisy_student",
        "recipe_model": cfg["student_models"][-1] if cfg["student_models"] else cfg["model"],
        "teacher_model": teacher_name,
        "dataset": info.name,
        "ssl_split": cfg["ssl_split"],
        "unlabeled": cfg["unlabeled"],
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        **{k: v for k, v in _score_fields(scores).items() if k not in ("test_accuracy", "test_loss")},
        "rounds": [{k: r.get(k) for k in ("round", "num_labeled", "num_pseudo_labeled", "epochs", "steps_per_epoch",
                                          "image_size", "resumed")}
                   for r in rounds],
        "resumed_rounds": sum(bool(r.get("resumed")) for r in rounds),
        "epochs": cfg["epochs"],
        "image_size": round_sizes[-1],
        "batch_size": cfg["batch_size"],
        "precision": precision,
        "replicas": strategy.num_replicas_in_sync,
        "train_seconds": round(train_seconds, 1),
    }
    write_artifacts(student, results, paths, strategy)
    return results
