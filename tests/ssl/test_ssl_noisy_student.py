"""Noisy Student: rounds on few-label digits, clean teacher / noised student, resuming."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.data import load_digits, ssl_datasets
from keras_cnn.ssl.noisy_student import noisy_student, round_dir, steps_per_epoch

SIZE = 16
MARK = 1000.0  # added by the marker "noise": clean pixels are <= 255


@keras.saving.register_keras_serializable(package="test_ssl_noisy_student")
class Spy(keras.layers.Layer):
    """Counts the examples it sees and the marked (noised) ones, in training and inference."""

    def build(self, input_shape):
        # [seen in training, marked in training, seen in inference, marked in inference]
        self.counts = self.add_weight(shape=(4,), initializer="zeros", trainable=False, name="counts")
        # [training batches, smallest training batch]
        self.batches = self.add_weight(shape=(2,), initializer=keras.initializers.Constant([0.0, 1e9]),
                                       trainable=False, name="batches")

    def call(self, x, training=None):
        seen = tf.cast(tf.shape(x)[0], "float32")
        marked = tf.reduce_sum(tf.cast(tf.reduce_max(x, axis=[1, 2, 3]) > 500.0, "float32"))
        update = tf.stack([seen, marked, 0.0, 0.0]) if training else tf.stack([0.0, 0.0, seen, marked])
        self.counts.assign_add(update)
        if training:
            self.batches.assign(tf.stack([self.batches[0] + 1.0, tf.minimum(self.batches[1], seen)]))
        return x


class Mark(keras.layers.Layer):
    """Input noise that is easy to detect downstream."""

    def call(self, x, training=None):
        return x + MARK


def _data():
    labeled, unlabeled, _ = ssl_datasets("digits_50")
    resize = lambda image: tf.image.resize(tf.cast(image, "float32"), (SIZE, SIZE))  # noqa: E731
    labeled = labeled.map(lambda image, label: (resize(image), label))
    _, test = load_digits(SIZE)
    return labeled, unlabeled.map(resize), test


def _builder(built):
    def build_student(k, dropout=0.0):
        keras.utils.set_random_seed(k)
        inputs = keras.Input((SIZE, SIZE, 3))
        x = Spy(name="spy")(inputs)
        x = keras.layers.Rescaling(1 / 255.0)(x)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dropout(dropout)(x)
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        built.append((k, dropout, model))
        return model

    return build_student


def test_two_rounds_clean_teacher_noised_student_and_resume(tmp_path):
    labeled, unlabeled, test = _data()
    noise = {"randaugment": (2, 9), "augment": [Mark()], "dropout": 0.25}
    built = []
    kwargs = dict(output_dir=str(tmp_path), epochs=1, batch_size=128, noise=noise, validation_data=test,
                  verbose=0)
    results = noisy_student(_builder(built), None, labeled, unlabeled, rounds=1, **kwargs)

    assert [r["round"] for r in results] == [0, 1] and not any(r["resumed"] for r in results)
    assert [(k, dropout) for k, dropout, _ in built] == [(0, 0.25), (1, 0.25)]  # model noise reached the builder
    n_u = int(unlabeled.cardinality())
    assert results[0]["num_pseudo_labeled"] == 0 and results[1]["num_pseudo_labeled"] == n_u
    for k in (0, 1):
        directory = round_dir(str(tmp_path), k)
        assert os.path.exists(os.path.join(directory, "model.keras"))
        with open(os.path.join(directory, "metrics.json")) as file:
            stored = json.load(file)
        # The stored accuracy is the round's saved model's on the test images.
        saved = keras.saving.load_model(os.path.join(directory, "model.keras"), compile=False)
        x_test, y_test = test
        predicted = np.asarray(saved.predict(x_test.astype("float32"), verbose=0)).argmax(-1)
        assert stored["round"] == k and stored["accuracy"] == pytest.approx(float(np.mean(predicted == y_test)))

    teacher_counts = np.array(built[0][2].get_layer("spy").counts)
    student_counts = np.array(built[1][2].get_layer("spy").counts)
    # Teacher (round 0 model) predicted the unlabeled images (and the test set) clean.
    assert teacher_counts[2] >= n_u and teacher_counts[3] == 0
    # Student: one epoch of ceil((50 labeled + 1797 pseudo-labeled) / 128) full batches, every
    # training example noised.
    assert student_counts[0] == student_counts[1] == steps_per_epoch(50 + n_u, 128) * 128
    assert np.array(built[1][2].get_layer("spy").batches).tolist() == [steps_per_epoch(50 + n_u, 128), 128]

    # A run "killed" after round 1 (round 2 half-written, no metrics.json) resumes at round 2.
    os.makedirs(round_dir(str(tmp_path), 2))
    mtime = os.path.getmtime(os.path.join(round_dir(str(tmp_path), 1), "model.keras"))
    built.clear()
    resumed = noisy_student(_builder(built), None, labeled, unlabeled, rounds=2, **kwargs)
    assert [r["round"] for r in resumed] == [0, 1, 2]
    assert [r["resumed"] for r in resumed] == [True, True, False]
    assert [k for k, _, _ in built] == [2]  # rounds 0 and 1 were not retrained
    assert os.path.getmtime(os.path.join(round_dir(str(tmp_path), 1), "model.keras")) == mtime
    assert os.path.exists(os.path.join(round_dir(str(tmp_path), 2), "metrics.json"))


def test_given_teacher_hard_balanced_pseudo_labels(tmp_path):
    rng = np.random.default_rng(0)
    x_u = rng.uniform(0, 255, size=(60, SIZE, SIZE, 3)).astype("float32")
    x_l, y_l = x_u[:10], np.arange(10) % 10
    built = []
    teacher = _builder([])(0)
    results = noisy_student(_builder(built), teacher, (x_l, y_l), x_u, rounds=1, output_dir=str(tmp_path),
                            epochs=1, batch_size=32, mode="hard", balance=True, per_class=7, noise={},
                            verbose=0)
    assert [r["round"] for r in results] == [1]
    predicted = np.unique(np.asarray(teacher.predict_on_batch(x_u)).argmax(-1))
    assert results[0]["num_pseudo_labeled"] == 7 * len(predicted)
    assert results[0]["accuracy"] is None
    assert not os.path.exists(round_dir(str(tmp_path), 0))


class _TargetRecorder:
    """compile_student that records the targets the student's loss sees and its steps_per_epoch."""

    def __init__(self):
        self.targets, self.steps = [], []

    def __call__(self, model, steps_per_epoch):
        self.steps.append(steps_per_epoch)

        def loss(y_true, y_pred):
            self.targets.append(np.asarray(y_true))
            return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)

        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss, run_eagerly=True)


def test_label_smoothing_only_on_one_hot_targets_and_schedule_from_the_trained_set(tmp_path):
    # The release smooths the labeled images' one-hot labels (and hard pseudo-labels), never soft
    # pseudo-labels; and a round's epoch is one pass over what it trains on after filtering.
    rng = np.random.default_rng(0)
    x_u = rng.uniform(0, 255, size=(40, SIZE, SIZE, 3)).astype("float32")
    x_l, y_l = x_u[:10], np.arange(10) % 10
    teacher = _builder([])(0)
    probs = tf.nn.softmax(teacher.predict_on_batch(x_u)).numpy()
    threshold = float(np.quantile(probs.max(-1), 0.5))  # keeps about half the unlabeled images
    kept = int(np.sum(probs.max(-1) >= threshold))
    recorder = _TargetRecorder()
    results = noisy_student(_builder([]), teacher, (x_l, y_l), x_u, rounds=1, output_dir=str(tmp_path), epochs=1,
                            batch_size=5, mode="soft", threshold=threshold, noise={}, label_smoothing=0.2,
                            compile_student=recorder, verbose=0)
    assert results[0]["num_pseudo_labeled"] == kept < 40
    assert recorder.steps == [steps_per_epoch(10 + kept, 5)] == [results[0]["steps_per_epoch"]]
    rows = np.concatenate(recorder.targets)
    smoothed = np.isclose(rows.max(-1), 0.8 + 0.02) & np.isclose(rows.min(-1), 0.02)
    soft = ~smoothed
    assert smoothed.sum() > 0 and soft.sum() > 0
    # Soft rows are the teacher's probabilities, untouched (no 0.02 floor, no 0.82 ceiling).
    teacher_rows = probs[probs.max(-1) >= threshold]
    for row in rows[soft]:
        assert np.abs(teacher_rows - row).max(-1).min() < 1e-5
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        noisy_student(_builder([]), teacher, (x_l, y_l), x_u, rounds=1, output_dir=str(tmp_path / "b"), epochs=1,
                      batch_size=5, label_smoothing=1.0)


def test_each_model_sees_its_own_input_size(tmp_path):
    # A student built at 24 px from a 16 px teacher and 16 px arrays: the teacher labels 16 px
    # images, the student trains (and is evaluated) on 24 px ones.
    rng = np.random.default_rng(2)
    x_u = rng.uniform(0, 255, size=(12, SIZE, SIZE, 3)).astype("float32")
    x_l, y_l = x_u[:10], np.arange(10) % 10
    sizes = {0: SIZE, 1: 24}

    def build(k, **noise):
        inputs = keras.Input((sizes[k], sizes[k], 3))
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, keras.layers.Dense(10)(x))

    results = noisy_student(build, None, (x_l, y_l), x_u, rounds=1, output_dir=str(tmp_path), epochs=1,
                            batch_size=4, noise={}, validation_data=(x_l, y_l), verbose=0)
    assert [r["image_size"] for r in results] == [[SIZE, SIZE], [24, 24]]
    assert results[1]["accuracy"] is not None


def test_every_training_batch_is_full(tmp_path):
    # Regression: each epoch used to end with a runt batch (10 labeled at batch 4: 4 + 4 + 2, and
    # 100 digits at batch 32: 3 x 32 + 4), a quarter of the few-label teacher's steps.
    rng = np.random.default_rng(0)
    x_u = rng.uniform(0, 255, size=(23, SIZE, SIZE, 3)).astype("float32")
    x_l, y_l = x_u[:10], np.arange(10) % 10
    built = []
    noisy_student(_builder(built), None, (x_l, y_l), x_u, rounds=1, output_dir=str(tmp_path), epochs=[3, 2],
                  batch_size=4, noise={}, verbose=0)
    (_, _, teacher), (_, _, student) = built
    assert np.array(teacher.get_layer("spy").batches).tolist() == [3 * 3, 4]  # 3 epochs of ceil(10 / 4)
    assert np.array(student.get_layer("spy").batches).tolist() == [2 * 9, 4]  # 2 epochs of ceil(33 / 4)


def test_teacher_noise_applies_to_round_0_only(tmp_path):
    rng = np.random.default_rng(1)
    x_u = rng.uniform(0, 255, size=(12, SIZE, SIZE, 3)).astype("float32")
    x_l, y_l = x_u[:10], np.arange(10) % 10
    built = []
    noisy_student(_builder(built), None, (x_l, y_l), x_u, rounds=1, output_dir=str(tmp_path), epochs=1,
                  batch_size=4, noise={"augment": [Mark()], "dropout": 0.25}, teacher_noise={}, verbose=0)
    assert [(k, dropout) for k, dropout, _ in built] == [(0, 0.0), (1, 0.25)]
    teacher_counts = np.array(built[0][2].get_layer("spy").counts)
    student_counts = np.array(built[1][2].get_layer("spy").counts)
    assert teacher_counts[0] > 0 and teacher_counts[1] == 0  # the teacher trained on clean images
    assert student_counts[0] == student_counts[1] > 0  # the student on noised ones


@pytest.mark.parametrize("kwargs,name", [({"rounds": 0}, "rounds"), ({"mode": "x"}, "mode"),
                                         ({"epochs": 0}, "epochs"), ({"teacher": "t"}, "teacher"),
                                         ({"batch_size": -1}, "batch_size"),
                                         ({"teacher_noise": "clean"}, "teacher_noise")])
def test_noisy_student_rejects_bad_arguments(tmp_path, kwargs, name):
    args = {"build_student": _builder([]), "teacher": None, "labeled": (np.zeros((1, SIZE, SIZE, 3)), np.zeros(1)),
            "unlabeled": np.zeros((1, SIZE, SIZE, 3)), "rounds": 1, "output_dir": str(tmp_path), "epochs": 1,
            "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        noisy_student(**args)
