"""keras.applications -> keras_cnn ports give the same outputs, for any weights."""

import keras
import numpy as np
import pytest
from conftest import assert_port_matches, random_images, randomize_weights

import keras_cnn
from keras_cnn.weights import WeightsUnavailableError

PREPROCESS = {
    "ResNet50": keras.applications.resnet.preprocess_input,
    "ResNet101": keras.applications.resnet.preprocess_input,
    "ResNet152": keras.applications.resnet.preprocess_input,
    "ResNet50V2": keras.applications.resnet_v2.preprocess_input,
    "ResNet101V2": keras.applications.resnet_v2.preprocess_input,
    "ResNet152V2": keras.applications.resnet_v2.preprocess_input,
}
FAST = {"ResNet50", "ResNet50V2"}
CTORS = [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in PREPROCESS]


@pytest.mark.parametrize("ctor", CTORS)
def test_port_with_top_matches_outputs(ctor, rng):
    ka_model = getattr(keras.applications, ctor)(weights=None, input_shape=(64, 64, 3),
                                                  classifier_activation=None)
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    assert model.name == keras_cnn.weights.keras_applications_ports()[ctor][0].name
    assert keras_cnn.utils.count_params(model) <= keras_cnn.utils.count_params(ka_model)
    assert_port_matches(ka_model, model, random_images(rng, 64), PREPROCESS[ctor])


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_port_feature_extractor(pooling, rng):
    ka_model = keras.applications.ResNet50(weights=None, include_top=False, pooling=pooling,
                                           input_shape=(96, 96, 3))
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    x = random_images(rng, 96)
    expected = np.asarray(ka_model(PREPROCESS["ResNet50"](x.copy())))
    assert expected.shape == tuple(model(x).shape)
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_port_refuses_other_models():
    with pytest.raises(ValueError, match="ka_model"):
        keras_cnn.weights.from_keras_applications(keras.Sequential(name="mine"))


def test_transfer_names_the_first_mismatching_tensor(rng):
    ka_model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    other = keras_cnn.ResNet50V1(input_shape=(64, 64, 3), classes=10)
    port, layer_map = keras_cnn.weights.keras_applications_ports()["ResNet50"]
    with pytest.raises(ValueError, match="predictions/kernel"):
        keras_cnn.weights.transfer_weights(ka_model, other, layer_map)
    with pytest.raises(ValueError, match="no counterpart"):
        keras_cnn.weights.transfer_weights(ka_model, keras_cnn.ResNet50D(), layer_map)


def test_imagenet_weights_go_through_the_port(monkeypatch, rng):
    made = {}
    original = keras.applications.ResNet50

    def fake_resnet50(weights, include_top):
        assert weights == "imagenet"
        made["model"] = original(weights=None, include_top=include_top)
        randomize_weights(made["model"], rng)
        return made["model"]

    monkeypatch.setattr(keras.applications, "ResNet50", fake_resnet50)
    model = keras_cnn.ResNet50V1(weights="imagenet")
    x = random_images(rng, 224, n=1)
    expected = np.asarray(made["model"](PREPROCESS["ResNet50"](x.copy())))
    np.testing.assert_allclose(model(x), expected, atol=1e-5, rtol=1e-3)


def test_imagenet_offline_is_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: no network")

    monkeypatch.setattr(keras.applications, "ResNet50V2", offline)
    with pytest.raises(WeightsUnavailableError, match=r"ResNet50V2.*~/.keras/models"):
        keras_cnn.ResNet50V2(weights="imagenet")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": 10}, "classes=10"),
        ({"classifier_activation": "sigmoid"}, "classifier_activation='sigmoid'"),
        ({"input_shape": (64, 64, 1)}, "input_shape"),
        ({"depths": (1, 1, 1, 1)}, "depths"),
        ({"input_normalization": "imagenet"}, "input_normalization"),
    ],
)
def test_imagenet_weights_refuse_incompatible_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_cnn.ResNet50V1(weights="imagenet", **kwargs)


def test_models_without_named_weights_refuse_imagenet():
    with pytest.raises(ValueError, match="weights='imagenet'"):
        keras_cnn.ResNet50(weights="imagenet")


def test_each_family_declares_its_weights_in_one_spec():
    """A port gives `weights="imagenet"` to a name of the spec's own family, and only a port does."""
    from keras_cnn.weights.families import FAMILY_WEIGHTS

    ported = set()
    for family, spec in FAMILY_WEIGHTS.items():
        assert spec.family == family
        for port in spec.keras_applications.values():
            assert keras_cnn.get_model_info(port.name).family == family, port.name
            ported.add(port.name)
        for name in {*spec.sources, *(tag.model for tag in spec.tags)}:
            assert keras_cnn.get_model_info(name).family == family, name
    with_imagenet = {name for name in keras_cnn.list_models(pretrained=True)
                     if "imagenet" in keras_cnn.get_model_info(name).pretrained}
    assert with_imagenet == ported
    for name in keras_cnn.list_models():
        assert keras_cnn.get_model_info(name).pretrained == keras_cnn.weights.named_weights(name), name


def test_model_modules_hold_no_weights_tables():
    for family in keras_cnn.models.FAMILIES:
        assert not hasattr(family, "KERAS_APPLICATIONS"), family.__name__
        assert not hasattr(family, "keras_applications_layer_name"), family.__name__
