"""Semi-supervised splits: N labels per class, balanced and deterministic per seed.

The named splits are the benchmarks of the semi-supervised papers (MixMatch, UDA, FixMatch,
Meta Pseudo Labels): CIFAR-10-4K (400 labels per class), SVHN-1K (100 per class) and
ImageNet-10% (10% of each class's training images, ~128 per class). The offline datasets have
`"digits_<N>"` and `"fashion_mnist_<N>"`: N labels in total, N / 10 per class. `ssl_datasets`
returns the labeled subset and the unlabeled stream. Following UDA and MPL, the unlabeled stream
is *all* training images (the labeled ones included) with their labels dropped.
"""

import dataclasses
import numbers
import re

import numpy as np
import tensorflow as tf

from keras_cnn.data.tfds import DATASETS, get_dataset_info, load, local_arrays, train_labels
from keras_cnn.validation import check_positive_int

__all__ = ["SSL_SPLITS", "SSLSplit", "get_ssl_split", "labeled_indices", "ssl_datasets"]


@dataclasses.dataclass(frozen=True)
class SSLSplit:
    """A named semi-supervised split.

    Attributes:
        name: The split's name (`"cifar10_4k"`).
        dataset: The `DATASETS` row it draws from.
        per_class: Labeled examples per class: an int, or a float in (0, 1) for a fraction
            of each class.
        reference: Where the split is used.
    """

    name: str
    dataset: str
    per_class: float
    reference: str = ""


SSL_SPLITS = {
    row.name: row
    for row in (
        SSLSplit("cifar10_4k", "cifar10", 400, "MixMatch / UDA / FixMatch / MPL: 4,000 labels"),
        SSLSplit("svhn_1k", "svhn", 100, "MixMatch / UDA / MPL: 1,000 labels"),
        SSLSplit("imagenet_10pct", "imagenet", 0.1, "UDA / MPL / SimCLR: 10% of the labels of each class"),
    )
}
# "<dataset>_<N>" for the in-memory rows ("digits_100", "fashion_mnist_1000"): N labels in total,
# N / num_classes per class; the offline stand-ins of the above.
_LOCAL_DATASETS = tuple(name for name, row in DATASETS.items() if row.local_loader is not None)
_TOTAL_SPLIT = re.compile(rf"^({'|'.join(map(re.escape, _LOCAL_DATASETS))})_(\d+)$")
_TOTAL_SPLIT_NAMES = " or ".join(f"'{name}_<N>'" for name in _LOCAL_DATASETS)


def _check_per_class(per_class):
    if isinstance(per_class, bool) or not isinstance(per_class, numbers.Real):
        ok = False
    elif isinstance(per_class, numbers.Integral):
        ok = per_class >= 1
    else:
        ok = 0 < per_class < 1
    if not ok:
        raise ValueError(
            "`per_class` must be an integer >= 1 (labels per class) or a fraction in (0, 1), "
            f"received per_class={per_class!r}")


def labeled_indices(labels, per_class, *, seed=0):
    """Indices of a class-balanced labeled subset, deterministic per seed, sorted.

    Args:
        labels: Integer class ids of the whole training set (any shape that flattens to `[N]`).
        per_class: Labeled examples per class (int), or a fraction in (0, 1) of each class
            (rounded, at least one).
        seed: Integer seed: the same labels and seed always give the same subset.

    Returns:
        Sorted int64 indices into `labels`.

    Raises:
        ValueError: A class has fewer than `per_class` examples.
    """
    _check_per_class(per_class)
    check_positive_int("seed", seed, minimum=0)
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        wanted = per_class if isinstance(per_class, numbers.Integral) else max(1, int(round(per_class * len(members))))
        if len(members) < wanted:
            raise ValueError(
                f"Class {label} has {len(members)} examples, fewer than per_class={per_class!r}")
        chosen.append(rng.choice(members, size=wanted, replace=False))
    return np.sort(np.concatenate(chosen)).astype("int64") if chosen else np.zeros([0], "int64")


def get_ssl_split(name):
    """The `SSLSplit` named `name`: a key of `SSL_SPLITS`, or `"digits_<N>"` /
    `"fashion_mnist_<N>"` (N labels in total, N / 10 per class)."""
    match = _TOTAL_SPLIT.match(name) if isinstance(name, str) else None
    if match:
        dataset, total = match.group(1), int(match.group(2))
        classes = get_dataset_info(dataset).num_classes
        if total < classes or total % classes:
            raise ValueError(
                f"`name` {dataset}_<N> needs N a positive multiple of {classes}, received name={name!r}")
        per_class = total // classes
        reference = "embedded digits" if dataset == "digits" else f"{dataset}: {total} labels, {per_class} per class"
        return SSLSplit(name, dataset, per_class, reference)
    if not isinstance(name, str) or name not in SSL_SPLITS:
        raise ValueError(
            f"`name` must be one of {sorted(SSL_SPLITS)} or {_TOTAL_SPLIT_NAMES}, received name={name!r}")
    return SSL_SPLITS[name]


def ssl_datasets(name_or_split, *, seed=0, data_dir=None, per_class=None, download=False):
    """The labeled subset and the unlabeled stream of a semi-supervised split.

    Args:
        name_or_split: A key of `SSL_SPLITS`, `"digits_<N>"`, `"fashion_mnist_<N>"`, or a
            `DATASETS` name (then `per_class` is required).
        seed: Seed of the labeled subset (`labeled_indices`).
        data_dir: tfds data directory, or Fashion-MNIST's directory (as for `load`).
        per_class: Labels per class (or fraction), overriding the named split's.
        download: As for `load`.

    Returns:
        `(labeled, unlabeled, info)`: an unbatched `tf.data.Dataset` of `(uint8 image, int32
        label)` with the balanced labeled subset, one of uint8 images with *all* training images
        (labels dropped: the UDA / MPL convention), and the dataset's `DatasetInfo`. Feed them
        to `make_pipeline`.
    """
    if isinstance(name_or_split, str) and (name_or_split in SSL_SPLITS or _TOTAL_SPLIT.match(name_or_split)):
        split = get_ssl_split(name_or_split)
        dataset_name, per_class = split.dataset, split.per_class if per_class is None else per_class
    else:
        info = get_dataset_info(name_or_split) if isinstance(name_or_split, str) else None
        if info is None:
            get_ssl_split(name_or_split)  # raises the ValueError listing valid names
        if per_class is None:
            raise ValueError(f"`per_class` is required for dataset {name_or_split!r}, received per_class=None")
        dataset_name = name_or_split
    info = get_dataset_info(dataset_name)

    if info.local_loader is not None:
        # The arrays are in memory: index them instead of filtering a tf.data stream.
        (images, labels), _ = local_arrays(dataset_name, data_dir=data_dir)
        indices = labeled_indices(labels, per_class, seed=seed)
        labeled = tf.data.Dataset.from_tensor_slices((images[indices], labels[indices]))
        return labeled, tf.data.Dataset.from_tensor_slices(images), info

    indices = labeled_indices(train_labels(dataset_name, data_dir=data_dir, download=download), per_class, seed=seed)
    mask = np.zeros([int(indices.max()) + 1 if len(indices) else 0], bool)
    mask[indices] = True
    mask = tf.constant(mask)
    last = tf.size(mask, out_type=tf.int64) - 1

    def is_labeled(index, example):
        return tf.logical_and(index <= last, tf.gather(mask, tf.minimum(index, last)))

    source = load(dataset_name, "train", data_dir=data_dir, download=download)
    labeled = source.enumerate().filter(is_labeled).map(lambda index, example: example)
    unlabeled = source.map(lambda image, label: image)
    return labeled, unlabeled, info
