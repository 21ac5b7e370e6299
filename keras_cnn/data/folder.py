"""A user's own image folder as a dataset: `keras-cnn train RECIPE --data-dir ROOT --set dataset=folder`.

The layout is `keras.utils.image_dataset_from_directory`'s: one subfolder per class, the class
names are the subfolder names in sorted order (label `i` is `class_names[i]`), and the images
are `.jpg`/`.jpeg`/`.png`/`.bmp`/`.gif` files directly inside a class folder. Two layouts:

- **split folders**: `ROOT/train/<class>/...` plus `ROOT/test/<class>/...` and/or
  `ROOT/val/` (or `ROOT/validation/`). The classes are `ROOT/train`'s; split `"train"` is
  `ROOT/train`, `"test"` is `ROOT/test`, `"val"` / `"validation"` the validation folder, and
  `"eval"` (the config's default `eval_split`) is `ROOT/test` when present, else the validation
  folder.
- **one folder**: `ROOT/<class>/...` (no `train` subfolder). The files of each class are sorted
  by name and shuffled with a fixed seed (0), and the splits are slices of that order taken per
  class, so every class keeps its share: `"train"` is `"all[:80%]"`, `"eval"` / `"test"` /
  `"val"` / `"validation"` are `"all[80%:]"`, and any `NAME[a%:b%]` slice of a split (`"all"`:
  every file) sets other fractions from the config, e.g.
  `--set train_split="all[:90%]" --set eval_split="all[90%:]"`. The split depends on the file
  names only, not on the run's seed, so runs with different seeds are tested on the same images.

Images keep their stored size and are decoded to uint8 RGB (grey replicated, alpha dropped) as
`keras_cnn.data.load` serves every dataset; the pipelines resize them to the config's
`image_size` (default `FOLDER_IMAGE_SIZE`) with the config's preprocessing (default
`"imagenet"`: random-resized crop + flip for training, resize + center crop for evaluation).
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

__all__ = [
    "FOLDER",
    "FOLDER_HOLDOUT",
    "FOLDER_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "folder_info",
    "folder_labels",
    "load_folder",
    "scan_folder",
]

FOLDER = "folder"  # the `dataset` name
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # image_dataset_from_directory's
FOLDER_IMAGE_SIZE = 224  # when the config's image_size is None
FOLDER_HOLDOUT = 0.2  # one-folder layout: the share of each class held out for evaluation
_SPLIT_SEED = 0
_TRAIN_DIR = "train"
_TEST_DIR = "test"
_VALIDATION_DIRS = ("val", "validation")
_SPLIT = re.compile(r"^(?P<name>[a-z]+)(?:\[(?P<start>\d+(?:\.\d+)?)?%?:(?P<end>\d+(?:\.\d+)?)?%?\])?$")
_NAMES = ("train", "eval", "test", "val", "validation", "all")


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """What `scan_folder` found.

    Attributes:
        root: The folder (`data_dir`).
        class_names: Sorted class folder names; label `i` is `class_names[i]`.
        split_dirs: `{"train": path, "test": path, "validation": path}` for the split-folder
            layout (only the folders present), `{}` for the one-folder layout.
    """

    root: str
    class_names: tuple
    split_dirs: dict

    @property
    def layout(self):
        """`"split folders"` or `"one folder"`."""
        return "split folders" if self.split_dirs else "one folder"


def _is_dir(path):
    return tf.io.gfile.isdir(path)


def _subdirs(path):
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path) if _is_dir(os.path.join(path, name)))


def _images(path):
    names = [name for name in tf.io.gfile.listdir(path) if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(os.path.join(path, name) for name in names if not _is_dir(os.path.join(path, name)))


def _check_classes(where, classes, root):
    if not classes:
        raise ValueError(
            f"data_dir (--data-dir) {root!r} for dataset='folder' has no class subfolders in {where!r}: expected "
            f"{where}/<class name>/<image files> (keras.utils.image_dataset_from_directory's layout)")
    if len(classes) < 2:
        raise ValueError(
            f"data_dir (--data-dir) {root!r} for dataset='folder' has a single class folder {classes[0]!r} in "
            f"{where!r}: a classifier needs at least 2 classes (one subfolder per class)")


def scan_folder(data_dir):
    """The layout and class names of an image folder (module docstring).

    Args:
        data_dir: The folder (the CLI's `--data-dir`).

    Returns:
        An `ImageFolder`.

    Raises:
        ValueError: `data_dir` is missing, not a folder, has no class subfolders, a single
            class, or a training class folder without images.
    """
    if data_dir is None or not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir):
        raise ValueError(
            "dataset='folder' reads the image folder given as data_dir (keras-cnn train --data-dir PATH; "
            f"supervised recipes only), received data_dir={data_dir!r}")
    root = os.fspath(data_dir)
    if not tf.io.gfile.exists(root):
        raise ValueError(f"data_dir (--data-dir) for dataset='folder' does not exist: {root!r}")
    if not _is_dir(root):
        raise ValueError(f"data_dir (--data-dir) for dataset='folder' must be a folder, received the file {root!r}")
    subdirs = _subdirs(root)
    split_dirs = {}
    if _TRAIN_DIR in subdirs:
        split_dirs["train"] = os.path.join(root, _TRAIN_DIR)
        if _TEST_DIR in subdirs:
            split_dirs["test"] = os.path.join(root, _TEST_DIR)
        validation = [name for name in _VALIDATION_DIRS if name in subdirs]
        if len(validation) > 1:
            raise ValueError(f"data_dir (--data-dir) {root!r} has both {validation[0]!r} and {validation[1]!r}: "
                             "keep one validation folder")
        if validation:
            split_dirs["validation"] = os.path.join(root, validation[0])
        class_dir = split_dirs["train"]
    else:
        class_dir = root
    classes = _subdirs(class_dir)
    _check_classes(class_dir, classes, root)
    empty = [name for name in classes if not _images(os.path.join(class_dir, name))]
    if empty:
        raise ValueError(
            f"data_dir (--data-dir) {root!r} for dataset='folder': class folders without images "
            f"({', '.join(IMAGE_EXTENSIONS)}) in {class_dir!r}: {empty}")
    for split, path in split_dirs.items():
        extra = sorted(set(_subdirs(path)) - set(classes))
        if extra:
            raise ValueError(f"data_dir (--data-dir) {root!r}: the {split} folder {path!r} has classes that "
                             f"{class_dir!r} lacks: {extra}")
    return ImageFolder(root=root, class_names=tuple(classes), split_dirs=split_dirs)


def folder_info(data_dir):
    """The `DatasetInfo` of an image folder: its classes, counts and the folder defaults.

    Args:
        data_dir: The folder.

    Returns:
        A `keras_cnn.data.DatasetInfo` named `"folder"` with `directory=data_dir` and
        `class_names` set.
    """
    from keras_cnn.data.tfds import DatasetInfo

    folder = scan_folder(data_dir)
    train_examples = len(_split_files(folder, "train")[0])
    eval_split = "test" if "test" in folder.split_dirs or not folder.split_dirs else "validation"
    eval_examples = len(_split_files(folder, "eval")[0]) if _has_eval(folder) else 0
    return DatasetInfo(FOLDER, None, len(folder.class_names), FOLDER_IMAGE_SIZE, "imagenet", "train", eval_split,
                       train_examples, eval_examples, directory=folder.root, class_names=folder.class_names)


def _has_eval(folder):
    return not folder.split_dirs or "test" in folder.split_dirs or "validation" in folder.split_dirs


def _parse_split(split):
    match = _SPLIT.match(split) if isinstance(split, str) else None
    if match is None or match["name"] not in _NAMES:
        raise ValueError(
            f"split for dataset='folder' must be one of {list(_NAMES)}, optionally sliced as NAME[a%:b%] "
            f"(e.g. 'all[:90%]'), received split={split!r}")
    start = float(match["start"]) / 100 if match["start"] else 0.0
    end = float(match["end"]) / 100 if match["end"] else 1.0
    if not 0 <= start < end <= 1:
        raise ValueError(f"split {split!r} for dataset='folder' needs 0 <= a < b <= 100 in NAME[a%:b%]")
    return match["name"], start, end


def _class_files(class_dir, classes):
    return [_images(os.path.join(class_dir, name)) if _is_dir(os.path.join(class_dir, name)) else []
            for name in classes]


def _slice(files, start, end):
    # Per-class rounding keeps every class in both parts of a complementary pair of slices.
    count = len(files)
    return files[int(round(start * count)):int(round(end * count))]


def _split_files(folder, split):
    """`(paths, labels)` of a split (module docstring for the rules)."""
    name, start, end = _parse_split(split)
    if folder.split_dirs:
        if name == "eval":
            name = "test" if "test" in folder.split_dirs else "validation"
        elif name == "val":
            name = "validation"
        if name == "all":
            raise ValueError(f"split {split!r}: 'all' is for a folder without {_TRAIN_DIR}/; {folder.root!r} has "
                             f"split folders {sorted(folder.split_dirs)}")
        if name not in folder.split_dirs:
            wanted = "test/ or val/ (validation/)" if split.startswith("eval") else f"{name}/"
            raise ValueError(f"split {split!r} for dataset='folder' needs {wanted} in data_dir (--data-dir) "
                             f"{folder.root!r}, which has {sorted(folder.split_dirs)}")
        per_class = _class_files(folder.split_dirs[name], folder.class_names)
    else:
        if name == "train":
            start, end = start * (1 - FOLDER_HOLDOUT), end * (1 - FOLDER_HOLDOUT)
        elif name != "all":  # eval / test / val / validation: the held-out share
            start, end = 1 - FOLDER_HOLDOUT + start * FOLDER_HOLDOUT, 1 - FOLDER_HOLDOUT + end * FOLDER_HOLDOUT
        rng = np.random.default_rng(_SPLIT_SEED)
        per_class = [[files[i] for i in rng.permutation(len(files))]
                     for files in _class_files(folder.root, folder.class_names)]
    paths, labels = [], []
    for label, files in enumerate(per_class):
        chosen = _slice(files, start, end)
        paths += chosen
        labels += [label] * len(chosen)
    if not paths:
        raise ValueError(f"split {split!r} of dataset='folder' in data_dir (--data-dir) {folder.root!r} has no images")
    return paths, np.asarray(labels, "int32")


def _decode(path, label):
    # channels=3: grey is replicated and alpha dropped; expand_animations=False: a GIF's first frame.
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image, label


def load_folder(data_dir, split):
    """A `tf.data.Dataset` of `(uint8 image HxWx3, int32 label)` of one split of an image folder.

    Args:
        data_dir: The folder.
        split: `"train"`, `"eval"`, `"test"`, `"val"` / `"validation"` or `"all"`, optionally
            sliced `NAME[a%:b%]` (module docstring).

    Returns:
        The unbatched dataset, in a fixed order (class by class), decoded lazily.
    """
    folder = scan_folder(data_dir)
    paths, labels = _split_files(folder, split)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return dataset.map(_decode, num_parallel_calls=tf.data.AUTOTUNE)


def folder_labels(data_dir, split):
    """The int32 labels of a split of an image folder, in `load_folder` order (no image is read).

    Args:
        data_dir: The folder.
        split: As for `load_folder`.

    Returns:
        An int32 numpy array.
    """
    return _split_files(scan_folder(data_dir), split)[1]
