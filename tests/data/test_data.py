"""keras_cnn.data: datasets (tfds mock and embedded digits), preprocessing, pipelines, SSL splits."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_cnn import data
from keras_cnn.data.randaugment import RandAugment

TFDS_ROWS = [name for name, row in data.DATASETS.items() if row.tfds_name]


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _mock(num_examples):
    # USE_CODE: examples generated from the builder's feature spec, no metadata download.
    return tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE)


def _batches(dataset, n=None):
    out = []
    for element in dataset.take(n) if n else dataset:
        out.append(tuple(np.asarray(part) for part in element) if isinstance(element, tuple) else np.asarray(element))
    return out


# --------------------------------------------------------------------------------------------- table / tfds


def test_table_rows_are_consistent():
    assert set(data.DATASETS) == {"digits", "fashion_mnist", "cifar10", "cifar100", "svhn", "imagenet", "imagenette"}
    for name, row in data.DATASETS.items():
        assert row.name == name and row.preprocessing in ("cifar", "imagenet", "none")
        assert row.train_examples > row.eval_examples > 0
    with pytest.raises(ValueError, match="cifar10.*name='mnist'"):
        data.get_dataset_info("mnist")


@pytest.mark.parametrize("name", TFDS_ROWS)
def test_tfds_rows_load_and_pipeline_through_mock(name, tmp_path):
    info = data.get_dataset_info(name)
    with _mock(6):
        raw = data.load(name, "train", data_dir=str(tmp_path))
        eval_raw = data.load(name, "eval", data_dir=str(tmp_path))
        examples = _batches(raw)
        assert len(examples) == 6 and len(_batches(eval_raw)) == 6
        for image, label in examples:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
            assert label.dtype == np.int32 and 0 <= label < info.num_classes
        size = 32 if info.image_size == 32 else 48  # small stand-in for 224
        for training in (True, False):
            pipeline = data.make_pipeline(raw, training=training, batch_size=4, image_size=size,
                                          num_classes=info.num_classes, preprocessing=info.preprocessing)
            images, labels = _batches(pipeline, 1)[0]
            assert images.shape == (4, size, size, 3) and images.dtype == np.float32
            assert 0 <= images.min() and images.max() <= 255 and labels.dtype == np.int32


def test_not_downloaded_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load("cifar10", "train", data_dir=str(empty))
    message = str(caught.value)
    assert "cifar10" in message and str(empty) in message and "download=True" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no tfds traceback chained
    assert isinstance(caught.value, ValueError)
    with pytest.raises(data.DatasetUnavailableError, match="downloads/manual"):
        data.load("imagenet", "train", data_dir=str(empty))


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'\nlong tfds traceback text")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(data.DatasetUnavailableError, match="download failed.*toronto") as caught:
        data.load("cifar100", "train", data_dir=str(tmp_path), download=True)
    assert "cifar100" in str(caught.value) and "long tfds traceback" not in str(caught.value)


# --------------------------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_range_split(digits):
    (x_train, y_train), (x_test, y_test) = digits
    assert x_train.shape == (1437, 32, 32, 3) and x_test.shape == (360, 32, 32, 3)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int32
    assert x_train.min() == 0 and x_train.max() == 255
    # Grey replicated to RGB.
    assert np.array_equal(x_train[..., 0], x_train[..., 2])
    # Stratified: each class's share equal in both parts within one example.
    train_counts, test_counts = np.bincount(y_train, minlength=10), np.bincount(y_test, minlength=10)
    assert np.all(np.abs(test_counts - (train_counts + test_counts) * 0.2) <= 1)
    small = data.load_digits(16, test_fraction=0.5)
    assert small[0][0].shape == (898, 16, 16, 3) and len(small[1][0]) == 899


def test_digits_split_is_deterministic_per_seed(digits):
    again = data.load_digits()
    assert np.array_equal(again[0][0], digits[0][0]) and np.array_equal(again[1][1], digits[1][1])
    other = data.load_digits(seed=1)
    assert not np.array_equal(other[1][1], digits[1][1])
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        data.load_digits(test_fraction=1.5)
    with pytest.raises(ValueError, match="image_size=4"):
        data.load_digits(4)


def test_digits_labels_are_the_real_digits(digits):
    from sklearn.neighbors import KNeighborsClassifier

    (x_train, y_train), (x_test, y_test) = digits
    features = lambda x: x[:, ::4, ::4, 0].reshape(len(x), -1) / 255.0  # noqa: E731
    classifier = KNeighborsClassifier(3).fit(features(x_train), y_train)
    assert classifier.score(features(x_test), y_test) > 0.9


# --------------------------------------------------------------------------------------------- preprocessing


def test_preprocess_shapes_and_kinds():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (40, 60, 3)), tf.uint8)
    for kind in ("cifar", "imagenet", "none"):
        train = data.preprocess_train(image, size=24, kind=kind, seed=1)
        evaluated = data.preprocess_eval(image, size=24, kind=kind)
        assert train.shape == (24, 24, 3) == evaluated.shape and train.dtype == tf.float32
        assert float(tf.reduce_min(train)) >= 0 and float(tf.reduce_max(train)) <= 255
    with pytest.raises(ValueError, match="kind='auto'"):
        data.preprocess_train(image, size=24, kind="auto")


def test_inception_crop_area_and_aspect_statistics():
    shape = tf.constant([200, 300, 3])
    areas, aspects = [], []
    for i in range(300):
        _, size = data.inception_crop_box(shape, seed=tf.constant([i, 7]))
        h, w = int(size[0]), int(size[1])
        areas.append(h * w / (200 * 300))
        aspects.append(w / h)
    areas, aspects = np.array(areas), np.array(aspects)
    # Integer rounding of the box moves the bounds slightly.
    assert areas.min() >= 0.08 * 0.9 and areas.max() <= 1.0
    assert aspects.min() >= 0.75 * 0.93 and aspects.max() <= 4 / 3 * 1.07
    # Spread over the range, not stuck at the fallback (the whole image).
    assert np.mean(areas > 0.99) < 0.2 and areas.std() > 0.15 and np.median(areas) < 0.7
    assert aspects.min() < 0.85 and aspects.max() > 1.2


def test_center_crop_equals_hand_computed_crop():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    # size 28 / 0.875 = 32: no resize, the central 28x28 is rows/cols 2..29.
    out = data.center_crop_resize(tf.constant(image), 28).numpy()
    np.testing.assert_array_equal(out, image[2:30, 2:30].astype(np.float32))
    # Non-square: the shorter side goes to 32, the longer scales with it (64x48 -> 43x32).
    rect = data.center_crop_resize(tf.zeros([64, 48, 3], tf.uint8), 28)
    assert rect.shape == (28, 28, 3)


def test_pad_crop_is_a_shifted_copy_with_zero_borders():
    image = np.random.default_rng(0).integers(1, 256, (16, 16, 3)).astype(np.uint8)  # no zeros inside
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    offsets = set()
    for i in range(40):
        out = data.pad_crop(tf.constant(image), 4, seed=tf.constant([i, 0])).numpy()
        match = [(dy, dx) for dy in range(9) for dx in range(9)
                 if np.array_equal(out, padded[dy:dy + 16, dx:dx + 16])]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 10


def test_eval_preprocessing_is_deterministic():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (50, 70, 3)), tf.uint8)
    first = data.preprocess_eval(image, size=32, kind="imagenet")
    np.testing.assert_array_equal(first, data.preprocess_eval(image, size=32, kind="imagenet"))


# --------------------------------------------------------------------------------------------- pipelines


def _pipeline(digits, **kwargs):
    (x_train, y_train), _ = digits
    settings = dict(training=True, batch_size=32, image_size=32, num_classes=10, preprocessing="cifar")
    settings.update(kwargs)
    return data.make_pipeline((x_train[:256], y_train[:256]), **settings)


def test_deterministic_mode_same_seed_same_batches(digits):
    def run(seed):
        return _batches(_pipeline(digits, seed=seed, deterministic=True, one_hot=True, mixup_alpha=0.2,
                                  augment=data.augment_layers(randaugment=(2, 9), random_erasing=0.5, seed=seed)), 3)

    first, again, other = run(1), run(1), run(2)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])


def test_epochs_differ_and_eval_is_in_order(digits):
    pipeline = _pipeline(digits, seed=0, deterministic=True)
    epoch1, epoch2 = _batches(pipeline, 1), _batches(pipeline, 1)
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])
    (_, _), (x_test, y_test) = digits
    evaluation = data.make_pipeline((x_test, y_test), training=False, batch_size=100, image_size=32, num_classes=10)
    batches = _batches(evaluation)
    assert [len(b[1]) for b in batches] == [100, 100, 100, 60]  # remainder kept
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y_test)
    np.testing.assert_array_equal(batches[0][0], x_test[:100].astype(np.float32))


def test_epoch_keyed_randomness_for_resumed_runs(digits):
    def batches(epoch):
        return _batches(_pipeline(digits, seed=5, epoch=epoch, preprocessing="cifar"))

    first, second = batches(0), batches(1)
    assert len(first) == 8 and not np.array_equal(first[0][0], second[0][0])
    variable, callback = data.epoch_variable()
    pipeline = _pipeline(digits, seed=5, epoch=variable)
    for epoch, expected in ((0, first), (1, second), (0, first)):
        callback.on_epoch_begin(epoch)  # what fit does, after BackupAndRestore restored the epoch
        for (x1, y1), (x2, y2) in zip(_batches(pipeline), expected):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    # repeat: consecutive passes are consecutive epochs.
    repeated = _batches(_pipeline(digits, seed=5, epoch=0, repeat=True), 16)
    np.testing.assert_array_equal(repeated[8][0], second[0][0])
    assert int(_pipeline(digits, seed=5, epoch=0).cardinality()) == 8


def test_epoch_variable_with_fit_resumes_on_the_same_data(digits):
    import keras

    (x_train, y_train), _ = digits

    def run(epochs, initial_epoch=0, repeat=True):
        keras.utils.set_random_seed(0)
        variable, callback = data.epoch_variable()
        seen = []
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        # Record the labels of every batch the model trains on.
        model.train_step = _recording(model.train_step, seen)
        pipeline = data.make_pipeline((x_train[:40], y_train[:40]), training=True, batch_size=16, image_size=8,
                                      num_classes=10, seed=1, epoch=variable, repeat=repeat)
        model.fit(pipeline, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=2 if repeat else None,
                  callbacks=[callback], verbose=0)
        return seen

    for repeat in (True, False):
        full = run(3, repeat=repeat)
        resumed = run(3, initial_epoch=2, repeat=repeat)
        assert len(full) == 6 and len(resumed) == 2
        np.testing.assert_array_equal(np.stack(resumed), np.stack(full[4:]))
        assert not np.array_equal(full[0], full[2])


def _recording(train_step, seen):
    def step(batch):
        tf.py_function(lambda labels: seen.append(labels.numpy()) or 0, [batch[1]], tf.int64)
        return train_step(batch)

    return step


def test_one_hot_labels(digits):
    images, labels = _batches(_pipeline(digits, one_hot=True, seed=0), 1)[0]
    assert labels.shape == (32, 10) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.sum(axis=1), 1.0)
    assert set(np.unique(labels)) == {0.0, 1.0}


@pytest.mark.parametrize("mixing", [{"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.2, "cutmix_alpha": 1.0}])
def test_mixing_labels_sum_to_one_and_images_are_convex_mixes(digits, mixing):
    (x_train, y_train), _ = digits
    x, y = x_train[:64].astype(np.float32), y_train[:64]
    pipeline = data.make_pipeline((x, y), training=True, batch_size=64, image_size=32, num_classes=10,
                                  one_hot=True, shuffle_buffer=1, seed=0, **mixing)
    images, labels = _batches(pipeline, 1)[0]
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(labels.max(axis=1) < 1.0) > 0.5  # labels are actually mixed
    # Each output image is lam * x_i + (1 - lam) * x_j (MixUp) or a patchwork of x_i and x_j
    # (CutMix) for the two classes carrying its label weight: every pixel lies between them.
    for image, label in zip(images, labels):
        classes = np.flatnonzero(label > 1e-6)
        assert 1 <= len(classes) <= 2
        low, high = np.full(image.shape, np.inf), np.full(image.shape, -np.inf)
        for c in classes:
            low, high = np.minimum(low, x[y == c].min(axis=0)), np.maximum(high, x[y == c].max(axis=0))
        assert np.all(image >= low - 1e-3) and np.all(image <= high + 1e-3)
    assert images.min() >= 0 and images.max() <= 255


def test_mixing_needs_one_hot(digits):
    with pytest.raises(ValueError, match="one_hot=False"):
        _pipeline(digits, mixup_alpha=0.2)
    with pytest.raises(ValueError, match="cutmix_alpha=2"):
        _pipeline(digits, one_hot=True, cutmix_alpha=2)


def test_augment_layers_keep_dtype_and_range(digits):
    layers = data.augment_layers(randaugment=(2, 9), random_erasing=1.0, seed=0)
    assert [type(layer).__name__ for layer in layers] == ["RandAugment", "RandomErasing"]
    # keras_cnn's reference-code RandAugment, not Keras' layer of the same name.
    assert type(layers[0]) is RandAugment and not isinstance(layers[0], keras.layers.RandAugment)
    assert layers[0].num_ops == 2 and layers[0].magnitude == 9 and layers[0].ops is None
    assert layers[1].factor[1] == pytest.approx(1.0)
    plain, augmented = (_batches(_pipeline(digits, seed=0, deterministic=True, augment=a), 1)[0][0]
                        for a in (None, layers))
    assert augmented.dtype == np.float32 and augmented.min() >= 0 and augmented.max() <= 255
    assert not np.array_equal(plain, augmented)
    with pytest.raises(ValueError, match="randaugment=\\(2, 30\\)"):
        data.augment_layers(randaugment=(2, 30))


def test_augment_layers_bag_of_tricks_colour(digits):
    # Bag of Tricks §2.1 order: colour jitter, then PCA lighting (then RandAugment, erasing).
    layers = data.augment_layers(color_jitter=0.4, pca_lighting=0.1, randaugment=(1, 5), seed=3)
    assert [type(layer).__name__ for layer in layers] == ["ColorJitter", "PCALighting", "RandAugment"]
    jitter, lighting = layers[0], layers[1]
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == (0.4, 0.4, 0.4)
    assert lighting.alphastd == pytest.approx(0.1)
    images = _batches(_pipeline(digits, seed=0, deterministic=True, augment=layers[:2]), 1)[0][0]
    plain = _batches(_pipeline(digits, seed=0, deterministic=True), 1)[0][0]
    assert images.min() >= 0 and images.max() <= 255 and not np.array_equal(images, plain)
    assert data.augment_layers(color_jitter=0.0, pca_lighting=0.0) == []
    for bad, match in (({"color_jitter": 1.5}, "color_jitter=1.5"), ({"pca_lighting": -0.1}, "pca_lighting=-0.1")):
        with pytest.raises(ValueError, match=match):
            data.augment_layers(**bad)


def test_keras_cv_layers_plug_into_augment(digits):
    keras_cv = pytest.importorskip("keras_cv")
    layers = [keras_cv.layers.RandAugment(value_range=(0, 255), augmentations_per_image=2, magnitude=0.5, seed=0),
              keras_cv.layers.RandomCutout(0.5, 0.5, seed=0)]
    images, labels = _batches(_pipeline(digits, seed=0, augment=layers), 1)[0]
    assert images.shape == (32, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255 and labels.dtype == np.int32


def test_images_only_dataset_and_bad_arguments(digits):
    (x_train, _), _ = digits
    images = data.make_pipeline(tf.data.Dataset.from_tensor_slices(x_train[:64]), training=True, batch_size=16,
                                image_size=24, num_classes=10, seed=0)
    batch = _batches(images, 1)[0]
    assert batch.shape == (16, 24, 24, 3) and batch.dtype == np.float32
    with pytest.raises(ValueError, match="batch_size=0"):
        _pipeline(digits, batch_size=0)
    with pytest.raises(ValueError, match="preprocessing='inception'"):
        _pipeline(digits, preprocessing="inception")
    with pytest.raises(ValueError, match="dataset of type str"):
        data.make_pipeline("cifar10", training=True, batch_size=8, image_size=32, num_classes=10)


def _has_cache(pipeline):
    graph = tf.raw_ops.DatasetToGraphV2(input_dataset=pipeline._variant_tensor).numpy()
    return b"CacheDataset" in graph


def test_cache_is_automatic_for_small_tf_data(digits):
    (x_train, y_train), _ = digits
    source = tf.data.Dataset.from_tensor_slices((x_train[:64], y_train[:64]))
    settings = dict(training=False, batch_size=64, image_size=32, num_classes=10)
    assert _has_cache(data.make_pipeline(source, **settings))
    assert not _has_cache(data.make_pipeline(source, cache=False, **settings))
    # Unknown image sizes (ImageNet-like): no estimate, no automatic cache.
    spec = (tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32))
    ragged = tf.data.Dataset.from_generator(lambda: zip(x_train[:64], y_train[:64]), output_signature=spec)
    ragged = ragged.apply(tf.data.experimental.assert_cardinality(64))
    assert not _has_cache(data.make_pipeline(ragged, **settings))
    assert not _has_cache(data.make_pipeline((x_train, y_train), **settings))  # numpy: in memory already


# --------------------------------------------------------------------------------------------- SSL


def test_labeled_indices_balanced_deterministic_sorted():
    labels = np.repeat(np.arange(5), 30)
    np.random.default_rng(0).shuffle(labels)
    first = data.labeled_indices(labels, 4, seed=3)
    assert np.array_equal(first, data.labeled_indices(labels, 4, seed=3))
    assert not np.array_equal(first, data.labeled_indices(labels, 4, seed=4))
    assert np.all(np.diff(first) > 0) and np.array_equal(np.bincount(labels[first]), [4] * 5)
    fraction = data.labeled_indices(labels, 0.1, seed=0)
    assert np.array_equal(np.bincount(labels[fraction]), [3] * 5)
    with pytest.raises(ValueError, match="fewer than per_class=31"):
        data.labeled_indices(labels, 31)
    with pytest.raises(ValueError, match="per_class=0"):
        data.labeled_indices(labels, 0)


def test_ssl_digits_split():
    labeled, unlabeled, info = data.ssl_datasets("digits_50", seed=0)
    examples = _batches(labeled)
    labels = np.array([label for _, label in examples])
    assert info.name == "digits" and np.array_equal(np.bincount(labels), [5] * 10)
    assert len(_batches(unlabeled)) == 1437  # all training images, labels dropped
    # Disjoint across classes: no labeled image appears under two labels.
    keys = {}
    for image, label in examples:
        assert keys.setdefault(image.tobytes(), label) == label
    again = np.array([label for _, label in _batches(data.ssl_datasets("digits", per_class=5, seed=0)[0])])
    np.testing.assert_array_equal(again, labels)
    with pytest.raises(ValueError, match="per_class"):
        data.ssl_datasets("digits")
    with pytest.raises(ValueError, match="fewer than"):
        data.ssl_datasets("digits", per_class=1000)


def test_named_ssl_splits_resolve(tmp_path):
    assert {name: (s.dataset, s.per_class) for name, s in data.SSL_SPLITS.items()} == {
        "cifar10_4k": ("cifar10", 400), "svhn_1k": ("svhn", 100), "imagenet_10pct": ("imagenet", 0.1)}
    for split in data.SSL_SPLITS.values():
        assert data.get_ssl_split(split.name).dataset in data.DATASETS
    with pytest.raises(ValueError, match="cifar10_4k"):
        data.get_ssl_split("cifar10_250x")
    with _mock(60):
        labeled, unlabeled, info = data.ssl_datasets("cifar10_4k", per_class=1, seed=0, data_dir=str(tmp_path))
        labels = [int(label) for _, label in _batches(labeled)]
        assert info.name == "cifar10" and len(_batches(unlabeled)) == 60
        all_labels = data.train_labels("cifar10", data_dir=str(tmp_path))
        assert sorted(labels) == sorted(set(all_labels.tolist()))  # one per present class
