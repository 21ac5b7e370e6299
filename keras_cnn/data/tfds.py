"""The dataset table and the loaders: TensorFlow Datasets rows and the in-memory rows.

`DATASETS` is row-oriented: one `DatasetInfo` per dataset keras_cnn trains on, with its tfds
name (or the in-memory loader that serves it: the embedded digits, Fashion-MNIST's local files),
classes, training resolution, the preprocessing of its papers and its splits. `load(name, split)`
returns a `tf.data.Dataset` of `(uint8 image HxWx3, int32 label)` for any row. A dataset that
is not on disk (and may not or cannot be downloaded) raises one `DatasetUnavailableError` that
says what was searched and how to get the data, not a tfds traceback.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from keras_cnn.data import class_names as names
from keras_cnn.data.digits import load_digits

__all__ = [
    "DATASETS",
    "LOCAL_LOADERS",
    "DatasetInfo",
    "DatasetUnavailableError",
    "get_dataset_info",
    "load",
    "local_arrays",
    "train_labels",
]

PREPROCESSING_KINDS = ("cifar", "imagenet", "none")


class DatasetUnavailableError(ValueError):
    """A dataset is not in `data_dir` and was not (or could not be) downloaded."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """One dataset: where it comes from and how the papers train on it.

    Attributes:
        name: keras_cnn's name (`"cifar10"`, `"imagenet"`, ...).
        tfds_name: The TensorFlow Datasets name (with config), `None` for a row served from
            memory by `local_loader`.
        num_classes: Number of classes.
        image_size: Training resolution (native for the 32 px sets, 224 for ImageNet-like).
        preprocessing: `"cifar"` (pad-4 crop + flip), `"imagenet"` (Inception crop + flip;
            eval: resize to size / 0.875 + center crop) or `"none"` (resize only).
        train_split: tfds split used for training.
        eval_split: tfds split used for evaluation.
        train_examples: Examples in `train_split`.
        eval_examples: Examples in `eval_split`.
        manual_download: How to get the data when tfds cannot download it (ImageNet), else `""`.
        local_loader: For rows without `tfds_name`, the key of `LOCAL_LOADERS` that returns the
            whole dataset as numpy arrays (`"digits"`, `"fashion_mnist"`), else `None`.
        directory: For `dataset="folder"` (`keras_cnn.data.folder`), the user's image folder
            the info was read from, else `None`.
        class_names: The class names in label order (`results.json` records them for
            `keras-cnn predict`), `()` where the table does not know them.
    """

    name: str
    tfds_name: str | None
    num_classes: int
    image_size: int
    preprocessing: str
    train_split: str
    eval_split: str
    train_examples: int
    eval_examples: int
    manual_download: str = ""
    local_loader: str | None = None
    directory: str | None = None
    class_names: tuple = ()

    def __post_init__(self):
        # Exactly one source: a tfds name, an in-memory loader or an image folder.
        if sum(source is not None for source in (self.tfds_name, self.local_loader, self.directory)) != 1:
            raise ValueError(
                f"DatasetInfo {self.name!r} needs exactly one of `tfds_name` and `local_loader` (or `directory`, "
                f"an image folder), received tfds_name={self.tfds_name!r}, local_loader={self.local_loader!r}, "
                f"directory={self.directory!r}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"DatasetInfo {self.name!r}: {len(self.class_names)} class_names for "
                             f"num_classes={self.num_classes}")
        if self.local_loader is not None and self.local_loader not in LOCAL_LOADERS:
            raise ValueError(
                f"`local_loader` must be one of {sorted(LOCAL_LOADERS)}, received local_loader={self.local_loader!r}")


def _digits_arrays(info, *, data_dir, image_size):
    # Embedded in scikit-learn: no directory; served at `image_size` (upscaled from 8x8).
    del data_dir
    return load_digits(image_size or info.image_size)


def _fashion_mnist_arrays(info, *, data_dir, image_size):
    # Imported here: fashion_mnist imports this module's DatasetUnavailableError. Served at
    # the native 28 px whatever `image_size` (the pipelines resize).
    from keras_cnn.data.fashion_mnist import load_fashion_mnist

    del info, image_size
    return load_fashion_mnist(data_dir)


# In-memory rows: `loader(info, *, data_dir, image_size)` returns the whole dataset as
# `((x_train, y_train), (x_test, y_test))`, uint8 `[n, H, W, 3]` and int32 `[n]` numpy arrays.
LOCAL_LOADERS = {
    "digits": _digits_arrays,
    "fashion_mnist": _fashion_mnist_arrays,
}

_IMAGENET_MANUAL = (
    "ImageNet cannot be downloaded automatically: get ILSVRC2012_img_train.tar and "
    "ILSVRC2012_img_val.tar from https://image-net.org/ and put them in "
    "<data_dir>/downloads/manual/, then load with download=True once to prepare it"
)

DATASETS = {
    row.name: row
    for row in (
        # Served at 32 px by load_digits (the 8x8 originals upscaled), split 80/20.
        DatasetInfo("digits", None, 10, 32, "none", "train", "test", 1437, 360, local_loader="digits",
                    class_names=names.DIGITS_CLASSES),
        # Read from its IDX files (Debian's dataset-fashion-mnist, or `data_dir`). "cifar" (pad-4
        # crop + flip) is the usual Fashion-MNIST augmentation: clothes are close enough to
        # left-right symmetric that a flip keeps the class, and the best entries of the zalando
        # benchmark train with random crop + flip.
        DatasetInfo("fashion_mnist", None, 10, 28, "cifar", "train", "test", 60_000, 10_000,
                    local_loader="fashion_mnist", class_names=names.FASHION_MNIST_CLASSES),
        DatasetInfo("cifar10", "cifar10", 10, 32, "cifar", "train", "test", 50_000, 10_000,
                    class_names=names.CIFAR10_CLASSES),
        DatasetInfo("cifar100", "cifar100", 100, 32, "cifar", "train", "test", 50_000, 10_000,
                    class_names=names.CIFAR100_CLASSES),
        # SVHN's papers (WRN, MPL) do not flip digits; "cifar" here is the pad-crop + flip of
        # the CIFAR recipes, which a recipe may replace.
        DatasetInfo("svhn", "svhn_cropped", 10, 32, "cifar", "train", "test", 73_257, 26_032,
                    class_names=names.SVHN_CLASSES),
        DatasetInfo("imagenet", "imagenet2012", 1000, 224, "imagenet", "train", "validation",
                    1_281_167, 50_000, manual_download=_IMAGENET_MANUAL),
        DatasetInfo("imagenette", "imagenette/full-size-v2", 10, 224, "imagenet", "train", "validation",
                    9_469, 3_925),
    )
}


def get_dataset_info(name, *, data_dir=None):
    """The `DatasetInfo` row named `name`, or the info of the image folder `data_dir` for `"folder"`.

    Args:
        name: A key of `DATASETS`, or `"folder"` (a user's image folder, `keras_cnn.data.folder`).
        data_dir: For `"folder"`, the folder (its classes and counts are read from it);
            ignored otherwise.

    Returns:
        The `DatasetInfo`.
    """
    from keras_cnn.data.folder import FOLDER, folder_info

    if name == FOLDER:
        return folder_info(data_dir)
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"`name` must be one of {sorted(DATASETS) + [FOLDER]}, received name={name!r}")
    return DATASETS[name]


def _resolve_split(info, split):
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be 'train', 'test', 'eval' or a tfds split string, received split={split!r}")
    if split == "train":
        return info.train_split
    if split in ("test", "eval"):
        return info.eval_split
    return split


def _default_data_dir(data_dir):
    # tfds' own default, so the error names the directory it actually searched.
    return data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _unavailable(info, data_dir, reason):
    how = info.manual_download or (
        f"run once with download=True (or `keras-cnn train ... --data-dir DIR` on a machine with internet "
        f"access) to download and prepare it, or copy a prepared `{info.tfds_name}` directory into {data_dir}"
    )
    return DatasetUnavailableError(
        f"Dataset {info.name!r} (tfds {info.tfds_name!r}) is not available in data_dir={data_dir!r}: {reason}. {how}."
    )


def local_arrays(name, *, data_dir=None, image_size=None):
    """The whole dataset of an in-memory row (`local_loader`) as numpy arrays.

    Args:
        name: A key of `DATASETS` whose row has a `local_loader`.
        data_dir: For Fashion-MNIST the directory holding its four files (see
            `load_fashion_mnist`); ignored for the digits.
        image_size: Side of the digits images (default the row's); ignored otherwise.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 `[n, H, W, 3]` images (possibly
        read-only, shared with a cache) and int32 `[n]` labels.
    """
    info = get_dataset_info(name)
    if info.local_loader is None:
        raise ValueError(
            f"`name` must be a dataset served from memory ({sorted(n for n, r in DATASETS.items() if r.local_loader)}), "
            f"received name={name!r} (tfds {info.tfds_name!r})")
    return LOCAL_LOADERS[info.local_loader](info, data_dir=data_dir, image_size=image_size)


def _load_local(info, split, *, data_dir, image_size):
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train', 'test' or 'eval' for {info.name}, received split={split!r}")
    train, test = local_arrays(info.name, data_dir=data_dir, image_size=image_size)
    return tf.data.Dataset.from_tensor_slices(train if split == "train" else test)


def load(name, split, *, data_dir=None, download=False, image_size=None, shuffle_files=False):
    """A `tf.data.Dataset` of `(uint8 image HxWx3, int32 label)` for a row of `DATASETS`.

    Images keep their stored size (the pipelines resize and crop); digits are served at
    `image_size` (default the row's 32). Every image has 3 channels: the grey rows (digits,
    Fashion-MNIST) are replicated to RGB.

    Args:
        name: A key of `DATASETS`, or `"folder"`: the image folder `data_dir` (class
            subfolders; splits and their defaults in `keras_cnn.data.folder`).
        split: `"train"`, `"test"` / `"eval"` (the row's evaluation split) or any tfds split
            string such as `"train[:10%]"`.
        data_dir: tfds data directory (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`);
            for `"folder"` the image folder;
            for `"fashion_mnist"` the directory holding its four IDX files (default:
            `$KERAS_CNN_FASHION_MNIST_DIR` or `/usr/share/datasets/fashion-mnist`); ignored
            for the digits.
        download: Download and prepare the dataset if it is not in `data_dir` (tfds rows;
            the in-memory rows are never downloaded).
        image_size: Side of the digits images; ignored for the other rows.
        shuffle_files: Passed to tfds (False keeps the file order deterministic).

    Returns:
        The unbatched `tf.data.Dataset`.

    Raises:
        DatasetUnavailableError: The dataset is not in `data_dir` and `download` is False, or
            the download failed (offline, or ImageNet's manual files are missing), or
            Fashion-MNIST's files are missing.
    """
    from keras_cnn.data.folder import FOLDER, load_folder

    if name == FOLDER:
        return load_folder(data_dir, split)
    info = get_dataset_info(name)
    resolved = _resolve_split(info, split)
    if info.local_loader is not None:
        return _load_local(info, resolved, data_dir=data_dir, image_size=image_size)

    dataset = _tfds_dataset(info, resolved, data_dir=data_dir, download=download, shuffle_files=shuffle_files)
    return dataset.map(_cast_example, num_parallel_calls=tf.data.AUTOTUNE)


def _tfds_dataset(info, split, *, data_dir, download, shuffle_files=False, decoders=None):
    """tfds' supervised `(image, label)` dataset, with tfds' failures turned into one clear error."""
    import tensorflow_datasets as tfds

    searched = _default_data_dir(data_dir)
    builder = tfds.builder(info.tfds_name, data_dir=data_dir)
    if download:
        try:
            builder.download_and_prepare()
        except Exception as error:  # noqa: BLE001  (network, checksum or manual-download errors)
            # `from None`: the user needs what to do, not tfds' internal traceback.
            message = str(error).strip()
            first_line = message.splitlines()[0][:300] if message else type(error).__name__
            raise _unavailable(info, searched, f"download failed ({first_line})") from None
    try:
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle_files, decoders=decoders)
    except AssertionError:
        # tfds' "could not find data in ..." (an AssertionError) when nothing is prepared.
        raise _unavailable(info, searched, "it has not been downloaded and download=False") from None
    except ValueError as error:
        if re.search(r"split", str(error), re.IGNORECASE):
            raise ValueError(f"Unknown split for {info.name!r}: received split={split!r} ({error})") from None
        raise


def train_labels(name, *, data_dir=None, download=False):
    """All labels of a dataset's training split, in `load(name, "train")` order (int32 numpy).

    For tfds rows the images are not decoded (`tfds.decode.SkipDecoding`), but the records are
    still read once: for ImageNet that is a full pass over the training files. In-memory rows
    return a copy of their label array (`data_dir` as for `load`).
    """
    info = get_dataset_info(name, data_dir=data_dir)
    if info.local_loader is not None:
        return np.array(local_arrays(name, data_dir=data_dir)[0][1], dtype="int32")
    if info.directory is not None:
        from keras_cnn.data.folder import folder_labels

        return folder_labels(data_dir, "train")
    import tensorflow_datasets as tfds

    dataset = _tfds_dataset(info, info.train_split, data_dir=data_dir, download=download,
                            decoders={"image": tfds.decode.SkipDecoding()})
    batches = dataset.map(lambda image, label: tf.cast(label, tf.int32)).batch(65_536)
    return np.concatenate([batch.numpy() for batch in batches] or [np.zeros([0], "int32")])


def _cast_example(image, label):
    return image, tf.cast(label, tf.int32)

