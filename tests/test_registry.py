"""Registry-wide tests: every registered model, whatever its family."""

import inspect
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import LARGE_MODELS, SLOW_IN_REGISTRY, accepts, load_tool, small_input_size

import keras_cnn
from keras_cnn.registry import get_model_info

ALL_MODELS = keras_cnn.list_models()
TEST_CLASSES = 7


def test_registry_is_populated_and_names_are_unique():
    assert len(ALL_MODELS) == len(set(ALL_MODELS)) >= 35
    builder_names = [keras_cnn.get_model_info(n).builder_name for n in ALL_MODELS]
    assert len(builder_names) == len(set(builder_names))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_camelcase_builder_is_the_registry_builder(name):
    info = keras_cnn.get_model_info(name)
    assert getattr(keras_cnn, info.builder_name) is info.builder
    assert info.builder_name in keras_cnn.__all__
    assert info.variant and info.paper and info.reference
    assert name in (info.builder.__doc__ or "")


@pytest.mark.parametrize("family", keras_cnn.models.FAMILIES, ids=lambda f: f.__name__)
def test_every_name_is_spelled_out_in_its_family_module(family):
    # grep, an IDE's text search and a reader find a name where it is defined: each row of
    # VARIANTS writes its registry name and CamelCase builder name as literals.
    source = pathlib.Path(family.__file__).read_text()
    for name in keras_cnn.list_models(family=family.__name__.rsplit(".", 1)[-1]):
        info = keras_cnn.get_model_info(name)
        assert f'"name": "{name}"' in source
        assert f'"builder_name": "{info.builder_name}"' in source


def test_stub_lists_every_builder_and_is_current():
    gen_stubs = load_tool("gen_stubs")
    stub = gen_stubs.STUB.read_text()
    assert stub == gen_stubs.render(), (
        f"{gen_stubs.STUB} is stale (a builder, row or signature changed); regenerate it with: "
        f"{gen_stubs.COMMAND}"
    )
    for name in ALL_MODELS:
        assert f"\ndef {keras_cnn.get_model_info(name).builder_name}(" in stub
    compile(stub, str(gen_stubs.STUB), "exec")  # valid Python syntax


def test_builder_signatures_are_informative():
    variant = inspect.signature(keras_cnn.ResNet50D).parameters
    assert variant["avg_down"].default is True and variant["name"].default == "resnet50d"
    assert all(p.kind is p.KEYWORD_ONLY for p in variant.values())
    family = inspect.signature(keras_cnn.models.resnet.ResNet).parameters
    assert list(family)[:2] == ["depths", "block"]
    for argument in ("include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
                     "classifier_activation", "input_normalization", "name"):
        assert argument in variant and argument in family
        assert f"        {argument}: " in keras_cnn.models.resnet.ResNet.__doc__
    assert inspect.signature(keras_cnn.LeNet5).parameters["classes"].default == 10
    with pytest.raises(TypeError, match="no_such_argument"):
        keras_cnn.models.resnet.ResNet((1, 1), no_such_argument=1)
    with pytest.raises(TypeError, match="no_such_argument"):
        keras_cnn.ResNet18(no_such_argument=1)


def test_list_models_filters():
    assert keras_cnn.list_models("seresnext*") == ["seresnext101_32x4d", "seresnext50_32x4d"]
    assert "resnet50d" in keras_cnn.list_models(family="resnet")
    assert keras_cnn.list_models(family="no-such-family") == []
    assert set(keras_cnn.list_models(pretrained=True)) >= {"resnet50_v1", "resnet50v2"}


def test_unknown_name_is_a_value_error_with_suggestions():
    with pytest.raises(ValueError, match=r"name='resnet05'.*resnet50"):
        keras_cnn.create_model("resnet05")


# All VGGs are large: the smallest plain and batch-norm rows stand for them in the round trip.
LARGE_ROUND_TRIPPED = {"vgg11", "vgg11_bn"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in LARGE_MODELS | SLOW_IN_REGISTRY else n
          for n in ALL_MODELS]


def keras_paths_with_a_faster_twin(model):
    """Layers of `model` built with Keras' own batch norm, grouped conv or SiLU, where
    keras_cnn.layers has a same-result, faster-training version (README "Benchmark")."""
    slow = []
    for layer in model._flatten_layers(include_self=False):
        if type(layer) is keras.layers.BatchNormalization or (
                type(layer) is keras.layers.Conv2D and layer.groups > 1) or (
                getattr(layer, "activation", None) is keras.activations.silu):
            slow.append(layer.name)
    return slow


@pytest.mark.parametrize("name", MODELS)
def test_forward_gradients_and_keras_round_trip(name, tmp_path):
    """Output shape, finite outputs, a gradient for every weight, and a `.keras` file that
    loads with `safe_mode=True` and gives identical outputs."""
    size = small_input_size(name)
    # Stochastic depth is on wherever the family has it (residual families).
    extra = {"drop_path_rate": 0.1} if accepts(name, "drop_path_rate") else {}
    model = keras_cnn.create_model(name, input_shape=(size, size, 3), classes=TEST_CLASSES, **extra)
    assert not keras_paths_with_a_faster_twin(model)
    # Six samples: DropPath (rate <= 0.1) then drops a block for all of them with
    # probability <= 1e-6, so every weight really gets a gradient.
    batch = 6
    x = tf.random.stateless_uniform((batch, size, size, 3), seed=(1, 2), maxval=255.0)
    y = tf.one_hot(np.arange(batch) % TEST_CLASSES, TEST_CLASSES)
    with tf.GradientTape() as tape:
        outputs = model(x, training=True)
        # Contract: in training a model may also return auxiliary classifier outputs,
        # `(main, *aux)`, each with the same shape; every one must train.
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        loss = sum(keras.losses.categorical_crossentropy(y, out) for out in outputs)
    probs = outputs[0]
    assert all(tuple(out.shape) == (batch, TEST_CLASSES) for out in outputs)
    assert np.all(np.isfinite(probs.numpy()))
    np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)
    grads = tape.gradient(loss, model.trainable_weights)
    missing = [w.path for w, g in zip(model.trainable_weights, grads) if g is None]
    assert not missing, f"weights without gradient: {missing[:5]}"
    bad = [w.path for w, g in zip(model.trainable_weights, grads)
           if not np.all(np.isfinite(g.numpy()))]
    assert not bad
    zero = [w.path for w, g in zip(model.trainable_weights, grads) if not np.any(g.numpy())]
    assert not zero, f"weights whose gradient is exactly zero: {zero[:5]}"

    expected = model(x, training=False).numpy()
    np.testing.assert_array_equal(expected, model(x, training=False))  # no randomness
    if name in LARGE_MODELS - LARGE_ROUND_TRIPPED:
        # Their layers and blocks are those of smaller rows of the same builder, whose files
        # round-trip below (test_large_models_have_a_round_tripped_sibling); writing and reading
        # 0.3-1.9 GB files costs 10-30 s each and tests nothing new.
        return
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(expected, loaded(x, training=False))
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]


def test_large_models_have_a_round_tripped_sibling():
    """Every large model's family has a model whose `.keras` file is round-tripped."""
    round_tripped = (set(ALL_MODELS) - LARGE_MODELS) | LARGE_ROUND_TRIPPED
    for name in sorted(LARGE_MODELS - LARGE_ROUND_TRIPPED):
        family = get_model_info(name).family
        siblings = [other for other in round_tripped if get_model_info(other).family == family]
        assert siblings, f"{name}: no smaller {family} model has its .keras file round-tripped"


# Free input sizes and `pooling` are the family's and `build_classifier`'s: a large model's
# smaller siblings (and its own row in the forward/gradient test) cover it at a fraction of
# the cost of building it twice more.
FEATURE_MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in LARGE_ROUND_TRIPPED | SLOW_IN_REGISTRY else n
                  for n in ALL_MODELS if n not in LARGE_MODELS - LARGE_ROUND_TRIPPED]


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_feature_extractor_with_free_spatial_sizes(name):
    size = small_input_size(name)
    model = keras_cnn.create_model(name, include_top=False, pooling="avg", input_shape=(None, None, 3))
    assert not any(layer.name == "predictions" for layer in model.layers)
    features = model(np.zeros((1, size, size, 3), "float32"))
    bigger = model(np.zeros((1, size + 32, size + 48, 3), "float32"))
    assert features.shape.rank == 2 and features.shape == bigger.shape
    unpooled = keras_cnn.create_model(name, include_top=False, input_shape=(size, size, 3))
    assert len(unpooled.output.shape) == 4
    assert unpooled.output.shape[-1] == features.shape[-1]
