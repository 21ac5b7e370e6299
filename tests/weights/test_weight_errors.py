"""`weights=` mistakes: a missing file, a tag the model lacks, a timm/torchvision checkpoint; channels-first input."""

import os

import keras
import numpy as np
import pytest

import keras_cnn
from keras_cnn.registry import UnknownArgumentError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "weights")
# The reduced torchvision ResNet-18 of tests/fixtures/weights (manifest.json: its architecture).
TV_RESNET18 = dict(input_shape=(67, 64, 3), classes=10, depths=[2, 1, 1, 1], planes=[8, 16, 32, 64],
                   classifier_activation=None)


def test_missing_weights_file_says_it_does_not_exist():
    # Before: "`weights` must be None, a path or one of the named weights of 'resnet50' ([...])".
    with pytest.raises(ValueError, match=r"^`weights` file does not exist, received weights='/nonexistent\.h5'$"):
        keras_cnn.ResNet50(weights="/nonexistent.h5")
    with pytest.raises(ValueError, match=r"`weights` file does not exist.*'missing\.weights\.h5'"):
        keras_cnn.ResNet18(weights="missing.weights.h5")


def test_imagenet_on_a_torchvision_name_points_to_the_keras_applications_port():
    # Before: the same message as for a missing file, then 21 names with ImageNet weights.
    with pytest.raises(ValueError) as error:
        keras_cnn.ResNet50(weights="imagenet")
    message = str(error.value)
    assert message.startswith("ResNet50 ('resnet50') has no weights='imagenet'; pass one of its named weights "
                              "explicitly: ['torchvision:resnet50.IMAGENET1K_V1'")
    assert "'resnet50_v1' (ResNet50V1(weights='imagenet'))" in message


def test_safetensors_file_goes_to_the_family_converter():
    path = os.path.join(FIXTURES, "tv_resnet18.safetensors")
    model = keras_cnn.ResNet18(weights=path, **TV_RESNET18)
    data = np.load(os.path.join(FIXTURES, "tv_resnet18.npz"))
    logits = np.asarray(model(data["images"].astype("float32"), training=False))
    np.testing.assert_allclose(logits, data["logits"], atol=1e-4)


def test_safetensors_file_for_a_family_without_converter_says_what_to_pass():
    path = os.path.join(FIXTURES, "tv_resnet18.safetensors")
    with pytest.raises(ValueError, match=r"converts for the families \['alexnet', .*'lenet5' is a 'lenet' model.*"
                                         r"\.weights\.h5 or \.keras"):
        keras_cnn.LeNet5(weights=path)


def test_unknown_builder_argument_lists_close_matches():
    with pytest.raises(UnknownArgumentError, match=r"ResNet18\(\) got an unexpected keyword argument 'zero_gama'; "
                                                   r"did you mean 'zero_gamma'\?"):
        keras_cnn.ResNet18(zero_gama=True)
    assert issubclass(UnknownArgumentError, TypeError) and issubclass(UnknownArgumentError, ValueError)


def test_models_are_channels_last_only():
    with pytest.raises(ValueError, match=r"channels-last.*input_shape=\(3, 64, 64\), which looks channels-first "
                                         r"\(use \(64, 64, 3\)\)"):
        keras_cnn.ResNet18(input_shape=(3, 64, 64))
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="keras_cnn builds channels-last models; received "
                                             "image_data_format='channels_first'"):
            keras_cnn.ResNet18(input_shape=(64, 64, 3))
    finally:
        keras.config.set_image_data_format(previous)
