"""Fashion-MNIST, read offline from its four IDX files.

Xiao, Rasul and Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms" (arXiv:1708.07747): 60,000 training and 10,000 test images of 28x28 grey
Zalando product photos in 10 balanced classes, the drop-in replacement for MNIST. The files are
those of github.com/zalandoresearch/fashion-mnist (and of `keras.datasets.fashion_mnist`), which
Debian/Ubuntu ship as the package `dataset-fashion-mnist` under `/usr/share/datasets/fashion-mnist`,
so the dataset needs no network. `load_fashion_mnist` parses the IDX format itself (no tfds, no
download) and serves the images in the shape every keras_cnn pipeline takes: uint8 RGB, the grey
channel replicated three times, as `load_digits` does.
"""

import gzip
import os
import threading
import zlib

import numpy as np

from keras_cnn.data.class_names import FASHION_MNIST_CLASSES
from keras_cnn.data.tfds import DatasetUnavailableError

__all__ = [
    "DEFAULT_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR_ENV",
    "FASHION_MNIST_FILES",
    "fashion_mnist_dir",
    "load_fashion_mnist",
]

FASHION_MNIST_DIR_ENV = "KERAS_CNN_FASHION_MNIST_DIR"
# Where Debian's `dataset-fashion-mnist` installs the files.
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# The distribution's file names; each is accepted gzipped (as shipped) or decompressed.
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX magic numbers: 0x0000 (zero), 0x08 (unsigned byte), then the number of dimensions.
_IMAGES_MAGIC = 0x0803  # 2051
_LABELS_MAGIC = 0x0801  # 2049
_SIDE = 28
_NUM_CLASSES = len(FASHION_MNIST_CLASSES)

# Parsed arrays per resolved directory: {directory: (file signature, arrays)}. The signature
# (paths, sizes, modification times) makes a replaced file be parsed again.
_CACHE = {}
_CACHE_LOCK = threading.Lock()


def fashion_mnist_dir(data_dir=None):
    """The directory `load_fashion_mnist` reads: `data_dir`, else `$KERAS_CNN_FASHION_MNIST_DIR`,
    else `/usr/share/datasets/fashion-mnist`.

    Args:
        data_dir: A directory (str or path-like) holding the four files, or `None`.

    Returns:
        The absolute directory path (user `~` expanded).
    """
    if data_dir is None:
        data_dir = os.environ.get(FASHION_MNIST_DIR_ENV) or DEFAULT_FASHION_MNIST_DIR
    elif not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir):
        raise ValueError(
            f"`data_dir` must be None or a directory path, received data_dir={data_dir!r}")
    return os.path.abspath(os.path.expanduser(os.fspath(data_dir)))


def _origin(data_dir):
    if data_dir is not None:
        return "data_dir"
    return f"${FASHION_MNIST_DIR_ENV}" if os.environ.get(FASHION_MNIST_DIR_ENV) else "the default directory"


def _find_files(directory, origin):
    """`{key: path}` of the four files in `directory`, the gzipped one first when both exist."""
    found, missing = {}, []
    for key, stem in FASHION_MNIST_FILES.items():
        # The .gz first: it is what the distribution ships, and its CRC catches corruption.
        candidates = [os.path.join(directory, stem + ".gz"), os.path.join(directory, stem)]
        path = next((candidate for candidate in candidates if os.path.isfile(candidate)), None)
        if path is None:
            missing.append(stem + ".gz")
        else:
            found[key] = path
    if missing:
        names = ", ".join(stem + ".gz" for stem in FASHION_MNIST_FILES.values())
        raise DatasetUnavailableError(
            f"Fashion-MNIST is not available in {directory!r} ({origin}): missing {', '.join(missing)} "
            "(gzipped or not). Get it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu: the "
            f"files go to {DEFAULT_FASHION_MNIST_DIR}), or put the four files of "
            f"https://github.com/zalandoresearch/fashion-mnist ({names}) in a directory and pass it: "
            f"load_fashion_mnist(data_dir=DIR), `keras-cnn train ... --data-dir DIR`, or "
            f"${FASHION_MNIST_DIR_ENV}=DIR. keras_cnn does not download it.")
    return found


def _read_bytes(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as file:
                return file.read()
        with open(path, "rb") as file:
            return file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        # A truncated download ends the gzip stream early (EOFError); a wrong file is no gzip.
        raise ValueError(f"Fashion-MNIST file {path!r} is corrupt: cannot decompress it ({error})") from None


def _parse_idx(path, magic, ndim):
    """The uint8 array of an IDX file whose header must carry `magic` and `ndim` dimensions."""
    data = _read_bytes(path)
    kind = "images" if magic == _IMAGES_MAGIC else "labels"
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise ValueError(
            f"Fashion-MNIST file {path!r} is truncated: {len(data)} bytes, shorter than the "
            f"{header}-byte IDX {kind} header")
    received = int.from_bytes(data[:4], "big")
    if received != magic:
        raise ValueError(
            f"Fashion-MNIST file {path!r} is not an IDX {kind} file: magic number {received}, "
            f"expected {magic}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected, actual = int(np.prod(dims)), len(data) - header
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing data"
        raise ValueError(
            f"Fashion-MNIST file {path!r} {problem}: its header gives dimensions {dims} "
            f"({expected} bytes of data) but the file holds {actual} bytes after the header")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _load_split(images_path, labels_path):
    grey = _parse_idx(images_path, _IMAGES_MAGIC, 3)
    if grey.shape[1:] != (_SIDE, _SIDE):
        raise ValueError(
            f"Fashion-MNIST file {images_path!r} has images of {grey.shape[1]}x{grey.shape[2]} pixels, "
            f"expected {_SIDE}x{_SIDE}")
    labels = _parse_idx(labels_path, _LABELS_MAGIC, 1)
    if len(labels) != len(grey):
        raise ValueError(
            f"Fashion-MNIST file {labels_path!r} has {len(labels)} labels but {images_path!r} has "
            f"{len(grey)} images")
    if len(labels) and labels.max() >= _NUM_CLASSES:
        raise ValueError(
            f"Fashion-MNIST file {labels_path!r} has label {int(labels.max())}, expected class ids "
            f"0..{_NUM_CLASSES - 1}")
    images = np.repeat(grey[..., None], 3, axis=-1)  # a new, contiguous array
    labels = labels.astype("int32")
    for array in (images, labels):
        # Shared by every caller through the cache: make writes fail instead of corrupting it.
        array.flags.writeable = False
    return images, labels


def load_fashion_mnist(data_dir=None):
    """Fashion-MNIST's training and test sets as uint8 RGB arrays, read from the IDX files.

    The files are looked up in `data_dir`, else `$KERAS_CNN_FASHION_MNIST_DIR`, else
    `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`), each as
    `<name>.gz` or decompressed `<name>`. Parsed arrays are cached per directory for the
    process (until a file changes), so repeated calls are free; they are therefore returned
    read-only (`np.array(x)` gives a writable copy).

    Args:
        data_dir: Directory holding `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
            `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`, or `None`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: read-only uint8 images of shape
        `(n, 28, 28, 3)` (the grey channel replicated) and int32 labels of shape `(n,)` in
        0..9 (names in `FASHION_MNIST_CLASSES`); n is 60,000 and 10,000 for the real files.

    Raises:
        DatasetUnavailableError: A file is missing (the message says how to get them).
        ValueError: A file is corrupt: wrong magic number, wrong image size, truncated,
            trailing bytes, label and image counts that differ, or a broken gzip stream.
    """
    origin = _origin(data_dir)
    directory = fashion_mnist_dir(data_dir)
    paths = _find_files(directory, origin)
    stats = {path: os.stat(path) for path in paths.values()}
    signature = tuple((path, stat.st_size, stat.st_mtime_ns) for path, stat in stats.items())
    with _CACHE_LOCK:
        cached = _CACHE.get(directory)
        if cached is not None and cached[0] == signature:
            return cached[1]
        arrays = (_load_split(paths["train_images"], paths["train_labels"]),
                  _load_split(paths["test_images"], paths["test_labels"]))
        _CACHE[directory] = (signature, arrays)
        return arrays
