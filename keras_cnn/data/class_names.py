"""Class names of the datasets in `keras_cnn.data.DATASETS`, in label order, offline.

The names follow each dataset's TensorFlow Datasets label order (the order of the class ids
the pipelines yield and the models are trained on). ImageNet's 1000 names are package data
(`imagenet_classes.txt`: one `synset<TAB>WordNet lemmas` line per class, in the sorted-synset
order of ILSVRC-2012, tfds' `imagenet2012` and every pretrained weight), so prediction never
downloads anything (Keras' `decode_predictions` fetches a JSON at run time).
"""

import functools
from importlib import resources

__all__ = [
    "CIFAR100_CLASSES",
    "CIFAR10_CLASSES",
    "CLASS_NAMES",
    "DIGITS_CLASSES",
    "IMAGENETTE_CLASSES",
    "SVHN_CLASSES",
    "class_names",
    "imagenet_class_names",
    "imagenet_synsets",
]

DIGITS_CLASSES = tuple(str(digit) for digit in range(10))
# tfds svhn_cropped maps the original label 10 (digit "0") to class 0.
SVHN_CLASSES = DIGITS_CLASSES
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The fine labels, alphabetical (tfds' `label` feature of cifar100).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
# imagenette's ten ImageNet classes in sorted-synset order (n01440764 ... n03888605).
IMAGENETTE_CLASSES = ("tench", "English springer", "cassette player", "chain saw", "church", "French horn",
                      "garbage truck", "gas pump", "golf ball", "parachute")


@functools.lru_cache(maxsize=1)
def _imagenet_rows():
    text = resources.files("keras_cnn.data").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(tuple(line.split("\t", 1)) for line in text.splitlines() if line.strip())


def imagenet_synsets():
    """The 1000 ILSVRC-2012 WordNet ids (`"n01440764"`, ...) in class-id order."""
    return tuple(synset for synset, _ in _imagenet_rows())


def imagenet_class_names(short=True):
    """The 1000 ImageNet class names in class-id order, from the package (no download).

    Args:
        short: The first WordNet lemma (`"tench"`) if True, else every lemma
            (`"tench, Tinca tinca"`).

    Returns:
        A tuple of 1000 strings.
    """
    return tuple(lemmas.split(", ")[0] if short else lemmas for _, lemmas in _imagenet_rows())


# Dataset name (a key of `DATASETS`) -> a callable returning its class names.
CLASS_NAMES = {
    "digits": lambda: DIGITS_CLASSES,
    "fashion_mnist": lambda: FASHION_MNIST_CLASSES,
    "cifar10": lambda: CIFAR10_CLASSES,
    "cifar100": lambda: CIFAR100_CLASSES,
    "svhn": lambda: SVHN_CLASSES,
    "imagenet": imagenet_class_names,
    "imagenette": lambda: IMAGENETTE_CLASSES,
}


def class_names(dataset):
    """The class names of a dataset of `keras_cnn.data.DATASETS`, in label order.

    Args:
        dataset: A dataset name (`"fashion_mnist"`, `"cifar10"`, `"imagenet"`, ...).

    Returns:
        A tuple of strings, one per class.
    """
    if not isinstance(dataset, str) or dataset not in CLASS_NAMES:
        raise ValueError(f"`dataset` must be one of {sorted(CLASS_NAMES)}, received dataset={dataset!r}")
    return tuple(CLASS_NAMES[dataset]())
