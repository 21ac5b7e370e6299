"""Noisy Student self-training (Xie et al. 2020, "Self-training with Noisy Student improves
ImageNet classification", CVPR; github.com/google-research/noisystudent).

The loop (Algorithm 1 of the paper):

1. a teacher is trained on the labeled images (round 0, unless one is given);
2. the teacher, **not noised** (inference mode, clean inputs), pseudo-labels the unlabeled
   images: soft labels (the paper's default) or hard ones, optionally filtered by confidence
   and class-balanced (`keras_cnn.ssl.pseudo_labels.balance_classes`, the JFT recipe);
3. an equal-or-larger student is trained on labeled + pseudo-labeled images **with noise**:
   RandAugment on its inputs, dropout and stochastic depth in the model;
4. the student becomes the teacher; back to 2 for `rounds` rounds.

`noisy_student` writes `round_<k>/model.keras` and `round_<k>/metrics.json` for every round
(the JSON last, atomically: a round is finished when its `metrics.json` exists), so a killed
run called again with the same `output_dir` skips the finished rounds and resumes at the
first unfinished one, from the last finished model.

Scale note: the labeled and pseudo-labeled images are held in memory as NumPy arrays (the
digits / CIFAR / SVHN scale). For ImageNet + JFT-scale data, pseudo-label with
`pseudo_label` to files and build the student's `tf.data` pipeline from them. The student
trains on one shuffled mix of both sets with float labels (one-hot for labeled images) and
`CategoricalCrossentropy(from_logits=True)`, and an epoch is one pass over that mix **as
actually trained on** (labeled + the pseudo-labeled images left after filtering and class
balancing): `compile_student(model, steps_per_epoch=...)` receives it to size the schedule.

Deviations from the released code (google-research/noisystudent `main.py`): it draws labeled
and unlabeled images from two streams (unlabeled batch = `unlabel_ratio` x labeled batch),
counts epochs over the labeled set, and normalises the summed loss by the labeled batch, so
its unlabeled term weighs `unlabel_ratio` times a labeled one; here one mixed stream weighs
every image equally. Kept as the release: label smoothing (`label_smoothing`) applies to the
one-hot labels (labeled images, hard pseudo-labels) and **not** to soft pseudo-labels (the
release's soft-label loss is a plain cross-entropy), and every model sees the images at its
own input size (`input_image_size` defaults to the model's resolution: a B1 student at 240
px from a B0 teacher at 224): batches are resized to the model's input size when it differs
from the arrays'. TensorFlow-specific (`tf.data` pipeline).
"""

import functools
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_cnn.data.augment import augment_layers
from keras_cnn.ssl.pseudo_labels import PSEUDO_LABEL_MODES, balance_classes, pseudo_label
from keras_cnn.validation import check_choice, check_positive_int, check_rate

__all__ = ["DEFAULT_NOISE", "noisy_student", "round_dir", "steps_per_epoch"]

# The paper's noise for EfficientNet students: RandAugment N=2, M=27 on its 0-30 scale (9 on
# keras_cnn's 0-10 one), dropout 0.5 before the classifier and stochastic depth with survival
# probability 0.8 at the last block (drop rate 0.2).
# These are ImageNet settings: on small, low-resolution images check that the input noise keeps
# the label (keras_cnn's RandAugment has the reference ranges, at M = 9 rotations of +-27 degrees
# and shifts of 0.4 of the side per op; `tools/ssl_benchmark.py --dataset digits` noises 16 px
# digits with translation + dropout + stochastic depth instead).
DEFAULT_NOISE = {"randaugment": (2, 9), "dropout": 0.5, "drop_path_rate": 0.2}
# Keys of `noise` that act on the inputs (through `augment_layers`, or extra layers); every
# other key is passed to `build_student`.
_INPUT_NOISE_KEYS = ("randaugment", "random_erasing", "augment")
_METRICS_FILE = "metrics.json"
_MODEL_FILE = "model.keras"


def round_dir(output_dir, k):
    """Directory of round `k` (`<output_dir>/round_<k>`)."""
    return os.path.join(output_dir, f"round_{k}")


def _finished(directory):
    return os.path.exists(os.path.join(directory, _METRICS_FILE)) and os.path.exists(
        os.path.join(directory, _MODEL_FILE))


def _to_arrays(data, with_labels):
    """NumPy arrays from `(x, y)` / `x` arrays or a finite, unbatched `tf.data.Dataset`."""
    if isinstance(data, tf.data.Dataset):
        items = list(data.as_numpy_iterator())
        if not items:
            return (np.zeros((0,)), np.zeros((0,))) if with_labels else np.zeros((0,))
        if with_labels:
            return np.stack([item[0] for item in items]), np.stack([item[1] for item in items])
        return np.stack([item[0] if isinstance(item, tuple) else item for item in items])
    if with_labels:
        x, y = data
        return np.asarray(x), np.asarray(y)
    return np.asarray(data)


def _split_noise(noise):
    noise = dict(DEFAULT_NOISE if noise is None else noise)
    inputs = {key: noise.pop(key) for key in _INPUT_NOISE_KEYS if key in noise}
    layers = augment_layers(randaugment=inputs.get("randaugment"),
                            random_erasing=inputs.get("random_erasing", 0.0))
    return layers + list(inputs.get("augment", [])), noise


def steps_per_epoch(num_examples, batch_size):
    """Optimizer steps of one student epoch: `ceil(num_examples / batch_size)` full batches."""
    return max(1, math.ceil(num_examples / batch_size))


def _input_size(model):
    """The model's static `(height, width)`, or `None` when it takes any size."""
    shape = tuple(model.inputs[0].shape[1:3]) if getattr(model, "inputs", None) else (None, None)
    return None if None in shape else tuple(int(v) for v in shape)


def _resize_to(images, size):
    """Batches resized (bilinear, antialiased when shrinking) to `size` unless already there."""
    if size is None or tuple(images.shape[1:3]) == size:
        return images
    return tf.image.resize(tf.cast(images, "float32"), size, method="bilinear", antialias=True)


def smooth_one_hot(labels, num_classes, label_smoothing):
    """One-hot float32 labels smoothed as Keras' `label_smoothing` does: `y (1 - e) + e / K`."""
    one_hot = np.eye(num_classes, dtype="float32")[np.asarray(labels).reshape(-1)]
    return one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes


def _student_dataset(x, y, *, batch_size, augment, seed, image_size=None):
    """Endless shuffled, noised `(x, y)` batches, all of exactly `batch_size` examples.

    Reshuffled every pass and batched across pass boundaries with `drop_remainder`: batching
    each epoch on its own left a runt last batch (100 labeled digits at batch 32: 3 x 32 + 4),
    so a quarter of round 0's steps were 4-example steps whose batch-norm statistics and
    gradients are far noisier than the rest (measured: 87.0 % vs 90.2 % test accuracy on
    few-label digits, `tools/ssl_benchmark.py --dataset digits`). `fit` runs `steps_per_epoch(len(x), batch_size)`
    steps per epoch. Batches are resized to `image_size` (the student's input size) before
    the augmentation, which runs on training batches only.
    """
    dataset = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y.astype("float32")))
    dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)

    def noised(images, labels):
        images = _resize_to(images, image_size)
        for layer in augment:
            images = layer(images, training=True)
        return images, labels

    if augment or (image_size is not None and tuple(x.shape[1:3]) != image_size):
        dataset = dataset.map(noised, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _accuracy(model, validation_data, batch_size):
    if validation_data is None:
        return None
    x, y = _to_arrays(validation_data, with_labels=True)
    correct, size = 0, _input_size(model)
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model.predict_on_batch(_resize_to(x[start:start + batch_size], size)))
        correct += int(np.sum(logits.argmax(-1) == y[start:start + batch_size].reshape(-1)))
    return correct / max(len(x), 1)


def _default_compile(model, steps_per_epoch=None):
    del steps_per_epoch  # a constant learning rate
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def _save_round(directory, model, metrics):
    os.makedirs(directory, exist_ok=True)
    # Write-then-rename, model first: a run killed mid-save leaves no metrics.json, so the
    # round counts as unfinished and is trained again.
    temporary = os.path.join(directory, "model.tmp.keras")
    model.save(temporary)
    os.replace(temporary, os.path.join(directory, _MODEL_FILE))
    temporary = os.path.join(directory, _METRICS_FILE + ".tmp")
    with open(temporary, "w") as file:
        json.dump(metrics, file, indent=2, default=float)
    os.replace(temporary, os.path.join(directory, _METRICS_FILE))


def noisy_student(build_student, teacher, labeled, unlabeled, *, rounds, output_dir, epochs, batch_size,
                  mode="soft", threshold=None, balance=False, per_class=None, noise=None,
                  compile_student=None, validation_data=None, custom_objects=None, seed=0, verbose=1,
                  teacher_noise="same", label_smoothing=0.0):
    """Runs (or resumes) the Noisy Student loop; returns one metrics dict per round.

    Args:
        build_student: `build_student(k, **model_noise)` returns the (uncompiled) model of
            round `k`, logits out, equal to or larger than the previous one; `model_noise`
            is `noise` without its input keys, e.g. `dropout=0.5, drop_path_rate=0.2`:
            `lambda k, **n: keras_cnn.create_model(["b0", "b1", "b2"][k], classes=10,
            classifier_activation=None, **n)`.
        teacher: A trained teacher (logits out), or `None`: round 0 trains
            `build_student(0, ...)` on the labeled data (with the same noise) as the teacher.
        labeled: `(x, y)` arrays (integer labels) or an unbatched `tf.data.Dataset` of
            `(image, label)` (`keras_cnn.data.ssl_datasets`).
        unlabeled: Image array or unbatched dataset of images (labels, if any, ignored).
        rounds: Student rounds (`>= 1`): rounds `1..rounds` (plus round 0 without `teacher`).
        output_dir: Where the `round_<k>` directories go; finished rounds there are skipped.
        epochs: Epochs per round (int) or a sequence indexed by round; an epoch is
            `steps_per_epoch(examples, batch_size)` steps on full batches (the last batch of
            a pass is completed from the next, reshuffled pass).
        batch_size: Student batch size (also the teacher's prediction batch).
        mode: `"soft"` (probability vectors, the paper's default) or `"hard"` pseudo-labels.
        threshold: Drop pseudo-labels with confidence under it (`None`: keep all; the paper
            uses 0.3 on JFT).
        balance: Class-balance the pseudo-labeled set with `balance_classes`.
        per_class: `balance_classes`' `per_class` (`None`: the largest class).
        noise: Dict of noise: input noise `randaugment` (`(N, M)`), `random_erasing`,
            `augment` (extra Keras preprocessing layers, applied after those), and model
            noise (any other key, passed to `build_student`). `None`: `DEFAULT_NOISE`; `{}`:
            no noise (plain self-training).
        compile_student: `compile_student(model, steps_per_epoch=n)` compiles a student for
            float (soft or one-hot) labels and logits, `n` being the optimizer steps of one
            epoch over the round's training set after filtering and balancing (size the
            learning-rate schedule with it); its loss must not smooth labels (use
            `label_smoothing` here). Default: Adam(1e-3) with
            `CategoricalCrossentropy(from_logits=True)`.
        validation_data: Optional `(x, y)` (or dataset) evaluated after each round
            (`accuracy` in the metrics).
        custom_objects: For `keras.models.load_model` when resuming from a saved round.
        seed: Seed of shuffling, augmentation and class balancing (plus the round number).
        verbose: 0 silent, 1 progress bars (pseudo-labeling and `fit`).
        teacher_noise: Noise of round 0 (the teacher trained here when `teacher` is None), in
            the format of `noise`: `"same"` (default) uses `noise`; `{}` trains the teacher
            like a plain supervised model, which on small labeled sets gives a better first
            teacher than the students' strong noise (`tools/ssl_benchmark.py`).
        label_smoothing: In [0, 1): smoothing of the one-hot targets (labeled images and hard
            pseudo-labels), not of soft pseudo-labels (the release's).

    Returns:
        A list of dicts, one per round in order (round 0 first when it was trained here):
        `round`, `accuracy`, `num_labeled`, `num_pseudo_labeled`, `epochs`, `history`,
        `seconds`, and `resumed` (True when read back from a finished round).
    """
    check_positive_int("rounds", rounds)
    check_positive_int("batch_size", batch_size)
    check_choice("mode", mode, PSEUDO_LABEL_MODES)
    check_choice("verbose", verbose, (0, 1))
    check_positive_int("seed", seed, minimum=0)
    check_rate("label_smoothing", label_smoothing)
    if teacher is not None and not isinstance(teacher, keras.Model):
        raise ValueError(f"`teacher` must be None or a keras.Model, received teacher={teacher!r}")
    if not callable(build_student):
        raise ValueError(f"`build_student` must be callable, received build_student={build_student!r}")
    first = 0 if teacher is None else 1
    epoch_list = [epochs] * (rounds + 1) if isinstance(epochs, int) else list(epochs)
    if len(epoch_list) < rounds + 1 or any(not isinstance(e, int) or isinstance(e, bool) or e < 1
                                           for e in epoch_list[first:rounds + 1]):
        raise ValueError(f"`epochs` must be an integer >= 1 or one per round 0..{rounds}, received epochs={epochs!r}")
    augment, model_noise = _split_noise(noise)
    if isinstance(teacher_noise, str) and teacher_noise == "same":
        teacher_augment, teacher_model_noise = augment, model_noise
    elif teacher_noise is None or isinstance(teacher_noise, dict):
        teacher_augment, teacher_model_noise = _split_noise(teacher_noise)
    else:
        raise ValueError(f"`teacher_noise` must be 'same', None or a dict, received teacher_noise={teacher_noise!r}")
    compile_student = compile_student or _default_compile

    x_l, y_l = _to_arrays(labeled, with_labels=True)
    y_l = y_l.reshape(-1).astype("int64")
    x_u = None  # materialised only when a round has to be trained
    results, teacher_path = [], None
    for k in range(first, rounds + 1):
        directory = round_dir(output_dir, k)
        if _finished(directory):
            with open(os.path.join(directory, _METRICS_FILE)) as file:
                results.append({**json.load(file), "resumed": True})
            teacher, teacher_path = None, os.path.join(directory, _MODEL_FILE)
            continue
        if teacher is None and teacher_path is not None:
            teacher = keras.models.load_model(teacher_path, custom_objects=custom_objects, compile=False)
        start = time.perf_counter()
        student = build_student(k, **(teacher_model_noise if k == 0 else model_noise))
        num_classes = int(student.output_shape[-1])
        x_train, y_train, num_pseudo = x_l, smooth_one_hot(y_l, num_classes, label_smoothing), 0
        if teacher is not None:
            if x_u is None:
                x_u = _to_arrays(unlabeled, with_labels=False)
            # The teacher is not noised: inference mode on the clean images, at its input size.
            teacher_inputs = x_u
            teacher_size = _input_size(teacher)
            if teacher_size is not None and tuple(x_u.shape[1:3]) != teacher_size:
                teacher_inputs = tf.data.Dataset.from_tensor_slices(x_u).batch(batch_size).map(
                    functools.partial(_resize_to, size=teacher_size))
            labels = pseudo_label(teacher, teacher_inputs, mode=mode, threshold=threshold, batch_size=batch_size,
                                  verbose=verbose)
            indices = labels.indices
            targets = (labels.labels if mode == "soft"
                       else smooth_one_hot(labels.labels, num_classes, label_smoothing))
            if balance:
                chosen = balance_classes(labels.labels, labels.confidence, per_class=per_class, seed=seed + k)
                indices, targets = indices[chosen], targets[chosen]
            num_pseudo = len(indices)
            x_train = np.concatenate([x_l, x_u[indices]]) if num_pseudo else x_l
            y_train = np.concatenate([y_train, targets.astype("float32")]) if num_pseudo else y_train
        round_steps = steps_per_epoch(len(x_train), batch_size)
        compile_student(student, steps_per_epoch=round_steps)
        round_augment = teacher_augment if k == 0 else augment
        history = student.fit(_student_dataset(x_train, y_train, batch_size=batch_size, augment=round_augment,
                                               seed=seed + k, image_size=_input_size(student)),
                              epochs=epoch_list[k], steps_per_epoch=round_steps,
                              verbose=verbose, shuffle=False)  # the dataset shuffles itself
        metrics = {
            "round": k,
            "accuracy": _accuracy(student, validation_data, batch_size),
            "num_labeled": len(x_l),
            "num_pseudo_labeled": num_pseudo,
            "epochs": epoch_list[k],
            "steps_per_epoch": round_steps,
            "image_size": list(_input_size(student) or ()) or None,
            "mode": mode,
            "history": {name: [float(v) for v in values] for name, values in history.history.items()},
            "seconds": time.perf_counter() - start,
        }
        _save_round(directory, student, metrics)
        results.append({**metrics, "resumed": False})
        teacher, teacher_path = student, os.path.join(directory, _MODEL_FILE)
    return results
