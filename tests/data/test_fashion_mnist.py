"""keras_cnn.data.fashion_mnist: the IDX parser on synthetic files, the table row, the SSL splits,
and (when Debian's dataset-fashion-mnist is installed, as in CI) the real files."""

import os

import numpy as np
import pytest
from conftest import fashion_mnist_idx as _idx
from conftest import synthetic_fashion_mnist as _synthetic
from conftest import write_fashion_mnist as _write

from keras_cnn import data
from keras_cnn.data import fashion_mnist

REAL_DIR = fashion_mnist.DEFAULT_FASHION_MNIST_DIR
NUM_TRAIN, NUM_TEST = 20, 10  # write_fashion_mnist's default: two training and one test image per class


@pytest.fixture
def fashion_dir(tmp_path):
    directory = tmp_path / "fashion"
    expected = _write(directory)
    return str(directory), expected


# --------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_parses_idx_files_into_rgb_uint8(tmp_path, gz):
    (x_train, y_train), (x_test, y_test) = _write(tmp_path, gz=gz)
    (images, labels), (test_images, test_labels) = data.load_fashion_mnist(data_dir=str(tmp_path))
    assert images.shape == (NUM_TRAIN, 28, 28, 3) and test_images.shape == (NUM_TEST, 28, 28, 3)
    assert images.dtype == np.uint8 and labels.dtype == np.int32 and test_labels.dtype == np.int32
    for channel in range(3):  # the grey file replicated into R, G and B
        np.testing.assert_array_equal(images[..., channel], x_train)
        np.testing.assert_array_equal(test_images[..., channel], x_test)
    np.testing.assert_array_equal(labels, y_train)
    np.testing.assert_array_equal(test_labels, y_test)
    assert images[3, 0, 0, 0] == 21 and images[3, 1, 2, 1] == (30 + 21) % 256


def test_gz_preferred_and_plain_accepted_per_file(tmp_path):
    _write(tmp_path, gz=True)
    # A stale decompressed copy next to the .gz is ignored; a lone plain file is used.
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(_synthetic(NUM_TEST, 1000)[1], 2049))
    (_, labels), (_, test_labels) = data.load_fashion_mnist(data_dir=tmp_path)  # a Path works too
    np.testing.assert_array_equal(labels, np.arange(NUM_TRAIN) % 10)
    np.testing.assert_array_equal(test_labels, np.arange(NUM_TEST) % 10)


def test_cached_per_directory_read_only_and_refreshed_when_a_file_changes(fashion_dir):
    directory, _ = fashion_dir
    first = data.load_fashion_mnist(data_dir=directory)
    again = data.load_fashion_mnist(data_dir=directory + "/")  # same resolved directory
    assert again[0][0] is first[0][0] and again[1][1] is first[1][1]
    for array in (first[0][0], first[0][1], first[1][0], first[1][1]):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    _write(directory, num_train=30)  # different sizes: the cache must notice
    (images, labels), _ = data.load_fashion_mnist(data_dir=directory)
    assert len(images) == 30 and len(labels) == 30


def test_directory_resolution_argument_then_env_then_default(tmp_path, monkeypatch):
    by_argument, by_env = tmp_path / "argument", tmp_path / "env"
    _write(by_argument, num_train=10)
    _write(by_env, num_train=30)
    monkeypatch.setenv("KERAS_CNN_FASHION_MNIST_DIR", str(by_env))
    assert len(data.load_fashion_mnist()[0][0]) == 30
    assert len(data.load_fashion_mnist(data_dir=str(by_argument))[0][0]) == 10
    assert fashion_mnist.fashion_mnist_dir() == str(by_env)
    monkeypatch.delenv("KERAS_CNN_FASHION_MNIST_DIR")
    assert fashion_mnist.fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist"
    monkeypatch.setenv("KERAS_CNN_FASHION_MNIST_DIR", "")  # empty: unset
    assert fashion_mnist.fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist"
    with pytest.raises(ValueError, match="data_dir=3"):
        data.load_fashion_mnist(data_dir=3)


def test_missing_files_say_what_and_how(tmp_path, monkeypatch):
    _write(tmp_path)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.remove(tmp_path / f"{stem}.gz")
    with pytest.raises(data.DatasetUnavailableError) as error:
        data.load_fashion_mnist(data_dir=str(tmp_path))
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert str(tmp_path) in message and "(data_dir)" in message
    assert "missing t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (" in message
    assert "apt-get install dataset-fashion-mnist" in message and "/usr/share/datasets/fashion-mnist" in message
    assert "github.com/zalandoresearch/fashion-mnist" in message
    assert "--data-dir" in message and "KERAS_CNN_FASHION_MNIST_DIR" in message

    monkeypatch.setenv("KERAS_CNN_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(data.DatasetUnavailableError, match=r"nowhere.*KERAS_CNN_FASHION_MNIST_DIR.*missing train-images"):
        data.load_fashion_mnist()


def _corrupt(tmp_path, stem, payload, gz=False):
    _write(tmp_path, gz=gz, replace={stem: payload})
    with pytest.raises(ValueError) as error:
        data.load_fashion_mnist(data_dir=str(tmp_path))
    assert not isinstance(error.value, data.DatasetUnavailableError)
    assert stem in str(error.value)
    return str(error.value)


def test_wrong_magic_number(tmp_path):
    labels = _synthetic(NUM_TRAIN, 0)[1]
    message = _corrupt(tmp_path, "train-images-idx3-ubyte", _idx(labels, 2049))
    assert "magic number 2049, expected 2051" in message


def test_labels_file_with_images_magic(tmp_path):
    message = _corrupt(tmp_path, "t10k-labels-idx1-ubyte", _idx(_synthetic(NUM_TEST, 0)[1], 2051))
    assert "magic number 2051, expected 2049" in message


def test_truncated_plain_file(tmp_path):
    images = _synthetic(NUM_TRAIN, 0)[0]
    message = _corrupt(tmp_path, "train-images-idx3-ubyte", _idx(images, 2051)[:-100])
    assert "is truncated" in message and "(20, 28, 28)" in message


def test_truncated_header(tmp_path):
    assert "is truncated" in _corrupt(tmp_path, "t10k-labels-idx1-ubyte", b"\x00\x00\x08")


def test_trailing_bytes(tmp_path):
    labels = _synthetic(NUM_TEST, 0)[1]
    assert "trailing data" in _corrupt(tmp_path, "t10k-labels-idx1-ubyte", _idx(labels, 2049) + b"\x00")


def test_truncated_gzip_stream(tmp_path):
    _write(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*corrupt"):
        data.load_fashion_mnist(data_dir=str(tmp_path))


def test_label_and_image_counts_must_match(tmp_path):
    labels = (np.arange(NUM_TRAIN - 1) % 10).astype(np.uint8)
    message = _corrupt(tmp_path, "train-labels-idx1-ubyte", _idx(labels, 2049))
    assert "19 labels" in message and "20 images" in message


def test_wrong_image_size_and_label_range(tmp_path):
    small = np.zeros((NUM_TRAIN, 32, 32), np.uint8)
    assert "32x32 pixels, expected 28x28" in _corrupt(tmp_path, "train-images-idx3-ubyte", _idx(small, 2051))
    labels = np.full(NUM_TEST, 10, np.uint8)
    assert "label 10" in _corrupt(tmp_path / "labels", "t10k-labels-idx1-ubyte", _idx(labels, 2049))


# ------------------------------------------------------------------------------ table and pipelines


def test_table_row():
    info = data.get_dataset_info("fashion_mnist")
    assert (info.num_classes, info.image_size, info.preprocessing) == (10, 28, "cifar")
    assert (info.train_examples, info.eval_examples) == (60_000, 10_000)
    assert info.tfds_name is None and info.local_loader == "fashion_mnist"
    assert data.DATASETS["digits"].local_loader == "digits"
    assert len(data.FASHION_MNIST_CLASSES) == 10 and data.FASHION_MNIST_CLASSES[9] == "Ankle boot"
    with pytest.raises(ValueError, match="exactly one of `tfds_name` and `local_loader`"):
        data.DatasetInfo("x", None, 10, 28, "none", "train", "test", 2, 1)
    with pytest.raises(ValueError, match="local_loader='mnist'"):
        data.DatasetInfo("x", None, 10, 28, "none", "train", "test", 2, 1, local_loader="mnist")


def test_load_and_train_labels_through_the_table(fashion_dir):
    directory, ((x_train, y_train), (x_test, y_test)) = fashion_dir
    train = data.load("fashion_mnist", "train", data_dir=directory)
    image_spec, label_spec = train.element_spec
    assert image_spec.shape == (28, 28, 3) and image_spec.dtype.name == "uint8" and label_spec.dtype.name == "int32"
    examples = list(train.as_numpy_iterator())
    assert len(examples) == NUM_TRAIN
    np.testing.assert_array_equal(np.stack([image for image, _ in examples])[..., 1], x_train)
    np.testing.assert_array_equal([label for _, label in examples], y_train)
    for split in ("test", "eval"):
        labels = [label for _, label in data.load("fashion_mnist", split, data_dir=directory).as_numpy_iterator()]
        np.testing.assert_array_equal(labels, y_test)
    with pytest.raises(ValueError, match="split='train\\[:10%\\]'"):
        data.load("fashion_mnist", "train[:10%]", data_dir=directory)

    labels = data.train_labels("fashion_mnist", data_dir=directory)
    np.testing.assert_array_equal(labels, y_train)
    labels[0] = 5  # a copy: the cached array is untouched
    assert data.load_fashion_mnist(data_dir=directory)[0][1][0] == 0

    pipeline = data.make_pipeline(train, training=True, batch_size=4, image_size=28, num_classes=10,
                                  preprocessing=data.get_dataset_info("fashion_mnist").preprocessing, seed=0)
    images, batch_labels = next(iter(pipeline))
    assert images.shape == (4, 28, 28, 3) and images.dtype.name == "float32" and batch_labels.dtype.name == "int32"


def test_load_without_files_raises_unavailable(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="dataset-fashion-mnist"):
        data.load("fashion_mnist", "train", data_dir=str(tmp_path))
    with pytest.raises(data.DatasetUnavailableError, match="dataset-fashion-mnist"):
        data.train_labels("fashion_mnist", data_dir=str(tmp_path))


def test_ssl_splits(fashion_dir):
    directory, ((x_train, _), _) = fashion_dir
    split = data.get_ssl_split("fashion_mnist_10")
    assert (split.dataset, split.per_class) == ("fashion_mnist", 1)
    assert data.get_ssl_split("fashion_mnist_1000").per_class == 100
    assert data.get_ssl_split("digits_50").dataset == "digits"  # unchanged
    with pytest.raises(ValueError, match="fashion_mnist_<N> needs N a positive multiple of 10.*fashion_mnist_15"):
        data.get_ssl_split("fashion_mnist_15")
    with pytest.raises(ValueError, match="'fashion_mnist_<N>'"):
        data.get_ssl_split("fashion_mnist")

    labeled, unlabeled, info = data.ssl_datasets("fashion_mnist_10", seed=0, data_dir=directory)
    assert info.name == "fashion_mnist"
    examples = list(labeled.as_numpy_iterator())
    labels = np.array([label for _, label in examples])
    assert np.array_equal(np.bincount(labels, minlength=10), [1] * 10)
    train_keys = {image.tobytes(): index for index, image in enumerate(x_train)}
    for image, label in examples:  # each labeled example is a training image with its label
        assert np.array_equal(image[..., 0], image[..., 2])
        assert train_keys[image[..., 0].tobytes()] % 10 == label
    unlabeled_images = list(unlabeled.as_numpy_iterator())
    assert len(unlabeled_images) == NUM_TRAIN  # all training images, labels dropped
    np.testing.assert_array_equal(np.stack(unlabeled_images)[..., 0], x_train)

    chosen = {train_keys[image[..., 0].tobytes()] for image, _ in examples}
    again = data.ssl_datasets("fashion_mnist", per_class=1, seed=0, data_dir=directory)[0]
    assert {train_keys[image[..., 0].tobytes()] for image, _ in again.as_numpy_iterator()} == chosen
    two = data.ssl_datasets("fashion_mnist_20", seed=0, data_dir=directory)[0]
    assert len(list(two.as_numpy_iterator())) == 20
    with pytest.raises(ValueError, match="fewer than"):
        data.ssl_datasets("fashion_mnist_30", data_dir=directory)


# ------------------------------------------------------------------------------------ the real files


@pytest.fixture(scope="module")
def real():
    if not os.path.isdir(REAL_DIR):
        pytest.skip(f"{REAL_DIR} is absent: install the Debian package dataset-fashion-mnist")
    return data.load_fashion_mnist(data_dir=REAL_DIR)


def test_real_counts_balance_and_pixels(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60_000, 28, 28, 3) and x_test.shape == (10_000, 28, 28, 3)
    assert y_train.shape == (60_000,) and y_test.shape == (10_000,)
    np.testing.assert_array_equal(np.bincount(y_train), [6_000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1_000] * 10)
    for images in (x_train, x_test):
        assert images.dtype == np.uint8 and images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(x_train[:100, ..., 0], x_train[:100, ..., 2])
    # The files' order is kept: the first training images are an ankle boot and two T-shirts.
    np.testing.assert_array_equal(y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(y_test[:5], [9, 2, 1, 1, 6])


def test_real_files_through_the_table(real):
    assert int(data.load("fashion_mnist", "train", data_dir=REAL_DIR).cardinality()) == 60_000
    assert int(data.load("fashion_mnist", "test", data_dir=REAL_DIR).cardinality()) == 10_000
    np.testing.assert_array_equal(data.train_labels("fashion_mnist", data_dir=REAL_DIR), real[0][1])
    labeled, unlabeled, _ = data.ssl_datasets("fashion_mnist_400", seed=0, data_dir=REAL_DIR)
    assert int(labeled.cardinality()) == 400 and int(unlabeled.cardinality()) == 60_000
    labels = np.array([label for _, label in labeled.as_numpy_iterator()])
    np.testing.assert_array_equal(np.bincount(labels), [40] * 10)
