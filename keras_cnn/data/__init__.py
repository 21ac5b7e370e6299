"""keras_cnn.data: datasets and `tf.data` input pipelines (TensorFlow-specific).

This package uses TensorFlow directly (`tf.data`, `tf.image`, TensorFlow Datasets); the model
builders and layers stay backend-agnostic. Every pipeline yields float32 RGB images in
[0, 255] (the models normalise inside, see the README's preprocessing contract) and int32
class ids, or float32 one-hot labels with `one_hot=True`.

    from keras_cnn import data
    (x_train, y_train), (x_test, y_test) = data.load_digits()          # offline, embedded
    fashion = data.load_fashion_mnist()     # offline: apt-get install dataset-fashion-mnist
    mine = data.load("folder", "train", data_dir="photos/")   # photos/<class>/*.jpg (data.folder)
    train = data.make_pipeline((x_train, y_train), training=True, batch_size=64, image_size=32,
                               num_classes=10, augment=data.augment_layers(randaugment=(2, 9)))
    cifar = data.make_pipeline(data.load("cifar10", "train", download=True), training=True,
                               batch_size=128, image_size=32, num_classes=10, preprocessing="cifar",
                               one_hot=True, mixup_alpha=0.2)
"""

from keras_cnn.data import corruptions
from keras_cnn.data.augment import RANDAUGMENT_MAX_MAGNITUDE, augment_layers, mixing_layers
from keras_cnn.data.color import IMAGENET_EIGVAL, IMAGENET_EIGVEC, ColorJitter, PCALighting
from keras_cnn.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from keras_cnn.data.digits import load_digits
from keras_cnn.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from keras_cnn.data.folder import FOLDER, load_folder, scan_folder
from keras_cnn.data.pipeline import epoch_variable, make_pipeline
from keras_cnn.data.preprocessing import (
    center_crop_resize,
    inception_crop,
    inception_crop_box,
    pad_crop,
    preprocess_eval,
    preprocess_train,
    random_flip,
)
from keras_cnn.data.randaugment import RandAugment
from keras_cnn.data.ssl import SSL_SPLITS, SSLSplit, get_ssl_split, labeled_indices, ssl_datasets
from keras_cnn.data.tfds import (
    DATASETS,
    DatasetInfo,
    DatasetUnavailableError,
    get_dataset_info,
    load,
    train_labels,
)

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "corrupt",
    "corruptions",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FOLDER",
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "RANDAUGMENT_MAX_MAGNITUDE",
    "SSL_SPLITS",
    "ColorJitter",
    "RandAugment",
    "DatasetInfo",
    "DatasetUnavailableError",
    "PCALighting",
    "SSLSplit",
    "augment_layers",
    "center_crop_resize",
    "epoch_variable",
    "get_dataset_info",
    "get_ssl_split",
    "inception_crop",
    "inception_crop_box",
    "labeled_indices",
    "load",
    "load_digits",
    "load_fashion_mnist",
    "load_folder",
    "make_pipeline",
    "mixing_layers",
    "pad_crop",
    "preprocess_eval",
    "preprocess_train",
    "random_flip",
    "scan_folder",
    "ssl_datasets",
    "train_labels",
]
