"""Bad arguments give a ValueError naming the argument; nothing else escapes."""

import pathlib
import re

import keras
import numpy as np
import pytest
from conftest import LARGE_MODELS, accepts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_cnn
from keras_cnn import validation

ALL_MODELS = keras_cnn.list_models()
# Building is the expensive part of a valid draw; the fuzz targets the contract, which
# every family shares, so valid draws use the cheaper names.
CHEAP = [n for n in ALL_MODELS if n in ("resnet18", "resnet18d", "seresnet18", "wrn_28_2")]
AFFORDABLE = [n for n in ALL_MODELS if n not in LARGE_MODELS]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"classes": 0}, "classes"),
        ({"classes": 2.5}, "classes"),
        ({"pooling": "mean"}, "pooling"),
        ({"include_top": "yes"}, "include_top"),
        ({"input_shape": (16, 16, 3)}, "input_shape"),
        ({"input_shape": (64, 64)}, "input_shape"),
        ({"input_shape": (64, 64, 0)}, "input_shape"),
        ({"dropout": 1.0}, "dropout"),
        ({"drop_path_rate": -0.1}, "drop_path_rate"),
        ({"classifier_activation": "nope"}, "classifier_activation"),
        ({"weights": "no/such/file.weights.h5"}, "weights"),
        ({"weights": 3}, "weights"),
        ({"input_tensor": np.zeros((1, 64, 64, 3))}, "input_tensor"),
        ({"input_normalization": (1.0, 0.0)}, "input_normalization"),
        ({"input_normalization": "bgr"}, "input_normalization"),
        ({"block": "triple"}, "block"),
        ({"depths": (2, 0, 2, 2)}, "depths"),
        ({"groups": 3}, "groups"),
        ({"stem": "huge"}, "stem"),
        ({"zero_gamma": 1}, "zero_gamma"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`?{argument}`?"):
        keras_cnn.ResNet18(**kwargs)


def test_preact_refuses_zero_gamma():
    with pytest.raises(ValueError, match="zero_gamma"):
        keras_cnn.ResNet50V2(zero_gamma=True)


def test_input_tensor_is_used_and_shape_checked():
    inputs = keras.Input((64, 64, 3))
    model = keras_cnn.ResNet18(input_tensor=inputs, classes=3)
    assert model.inputs[0] is inputs
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.ResNet18(input_tensor=inputs, input_shape=(96, 96, 3))


@pytest.mark.parametrize("channels", [3, 1])
def test_weights_file_round_trip_and_mismatch(tmp_path, channels):
    shape = (64, 64, channels)
    model = keras_cnn.ResNet18(input_shape=shape, classes=5)
    path = tmp_path / "r18.weights.h5"
    model.save_weights(path)
    again = keras_cnn.ResNet18(input_shape=shape, classes=5, weights=str(path))
    x = np.random.default_rng(0).uniform(0, 255, (1, *shape)).astype("float32")
    np.testing.assert_array_equal(model(x), again(x))
    with pytest.raises(ValueError, match="weights"):
        keras_cnn.ResNet18(input_shape=shape, classes=7, weights=str(path))
    with pytest.raises(ValueError, match="weights"):
        keras_cnn.ResNet34(input_shape=shape, classes=5, weights=str(path))


def test_grey_input_gets_a_scalar_normalisation():
    model = keras_cnn.ResNet18(input_shape=(64, 64, 1), classes=3)
    assert model.get_layer("input_norm").get_config()["mean"] == pytest.approx([0.449 * 255])


sizes = st.one_of(st.none(), st.integers(-4, 300))
values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2000), st.floats(-1, 2), st.just(float("nan")),
    st.text(max_size=6), st.sampled_from(["avg", "max", "softmax", "imagenet", "relu"]),
)
KEYS = ["include_top", "weights", "input_shape", "pooling", "classes", "classifier_activation",
        "dropout", "drop_path_rate", "zero_gamma", "input_normalization", "stem", "block",
        "se_ratio", "groups", "avg_down", "base_width", "no_such_argument"]


@st.composite
def argument_sets(draw):
    name = draw(st.sampled_from(AFFORDABLE if draw(st.integers(0, 9)) == 0 else CHEAP))
    kwargs = {}
    keys = [k for k in KEYS if k == "no_such_argument" or accepts(name, k)]
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        if key == "input_shape":
            kwargs[key] = draw(st.one_of(
                st.tuples(sizes, sizes, st.integers(-1, 4)), st.tuples(sizes, sizes), values))
        elif key in ("include_top", "zero_gamma", "avg_down"):
            kwargs[key] = draw(st.one_of(st.booleans(), values))
        elif key == "pooling":
            kwargs[key] = draw(st.sampled_from([None, "avg", "max", "min", 1]))
        else:
            kwargs[key] = draw(values)
    return name, kwargs


@pytest.mark.slow  # 300 model builds: about 35 s
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(argument_sets())
def test_random_arguments_give_a_model_or_a_named_value_error(case):
    name, kwargs = case
    if "no_such_argument" in kwargs:
        with pytest.raises(TypeError, match="no_such_argument"):
            keras_cnn.create_model(name, **kwargs)
        return
    try:
        model = keras_cnn.create_model(name, **kwargs)
    except keras_cnn.weights.WeightsUnavailableError:
        assert kwargs.get("weights") == "imagenet"  # offline: a named error, not a traceback
        return
    except ValueError as err:
        message = str(err)
        assert any(f"{key}" in message for key in [*kwargs, "name"]), message
        return
    assert isinstance(model, keras.Model)
    shape = [d or 64 for d in model.input_shape[1:3]] + [model.input_shape[-1]]
    if shape[0] * shape[1] > 320 * 320:
        return  # a valid model; running it at this size is a benchmark, not a contract test
    out = model(np.zeros([1, *shape], "float32"))
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


@pytest.mark.parametrize(
    "check, argument, value, message",
    [
        (validation.check_bool, "train_bn", "yes", "`train_bn` must be a bool (True or False), received train_bn='yes'"),
        (validation.check_bool, "flag", 1, "received flag=1"),
        (validation.check_non_negative, "alpha", -0.5, "`alpha` must be a number >= 0, received alpha=-0.5"),
        (validation.check_non_negative, "alpha", True, "received alpha=True"),
        (validation.check_non_negative, "alpha", float("nan"), "received alpha=nan"),
        (validation.check_non_negative_int, "steps", 1.5, "`steps` must be an integer >= 0, received steps=1.5"),
        (validation.check_non_negative_int, "steps", -1, "received steps=-1"),
    ],
)
def test_shared_checks_name_the_argument_and_value(check, argument, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check(argument, value)


def test_shared_checks_accept_good_values():
    validation.check_bool("flag", False)
    validation.check_bool("override", None, allow_none=True)
    with pytest.raises(ValueError, match=re.escape("`override` must be True, False or None")):
        validation.check_bool("override", "on", allow_none=True)
    validation.check_non_negative("alpha", 0)
    validation.check_non_negative("alpha", 0.25)
    validation.check_non_negative_int("steps", 0)


def test_no_private_copies_of_the_shared_checks():
    # One definition each, in keras_cnn/validation.py (issue 14).
    root = pathlib.Path(keras_cnn.__file__).parent
    pattern = re.compile(r"def _check_(bool|non_negative|non_negative_int)\(")
    copies = [str(p.relative_to(root)) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert copies == []
