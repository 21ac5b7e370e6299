"""Inception-v3 specifics: builder names, torchvision's layout, the auxiliary head (its pooling
layer: test_layers.py), SE, the keras.applications port."""

import keras
import numpy as np
import pytest
from conftest import assert_port_matches, random_images, randomize_weights

import keras_cnn
from keras_cnn.models import inception_v3 as iv3
from keras_cnn.models.base import AuxiliaryOutputsModel

SIZE = iv3.MIN_SIZE  # the smallest input the network takes (75 px): cheap and exercises the edges
CLASSES = 5
# torchvision 0.29.1 inception_v3 (tests/fixtures/param_counts.csv).
TORCHVISION_PARAMS = {True: 27161264, False: 23834568}
# (module, output channels, grid at 299 px): torchvision's shape comments.
MODULE_SHAPES = [
    ("mixed_5b", 256, 35), ("mixed_5c", 288, 35), ("mixed_5d", 288, 35),
    ("mixed_6a", 768, 17), ("mixed_6b", 768, 17), ("mixed_6c", 768, 17), ("mixed_6d", 768, 17),
    ("mixed_6e", 768, 17), ("mixed_7a", 1280, 8), ("mixed_7b", 2048, 8), ("mixed_7c", 2048, 8),
]


@pytest.fixture(scope="module")
def model():
    """The registered default (aux head, 1000 classes) at the smallest input."""
    return keras_cnn.InceptionV3(input_shape=(SIZE, SIZE, 3))


@pytest.fixture(scope="module")
def model_299():
    """Built, never run: shapes at the reference resolution."""
    return keras_cnn.InceptionV3()


def test_builder_names_follow_the_registry():
    """The `inception_v3` row keeps the plain name; the generic builder is `InceptionV3Family`."""
    info = keras_cnn.get_model_info("inception_v3")
    assert info.builder is keras_cnn.InceptionV3
    assert info.builder_name == keras_cnn.InceptionV3.__name__ == "InceptionV3"
    assert keras_cnn.InceptionV3.__wrapped__ is keras_cnn.InceptionV3Family is iv3.InceptionV3Family
    assert iv3.__all__ == ["InceptionV3Family", "InceptionV3", "SEInceptionV3"]
    assert "InceptionV3Family" in keras_cnn.__all__


def test_params_equal_torchvision_with_and_without_aux(model):
    assert keras_cnn.utils.count_params(model) == TORCHVISION_PARAMS[True]
    without = keras_cnn.InceptionV3(input_shape=(SIZE, SIZE, 3), aux_logits=False)
    assert keras_cnn.utils.count_params(without) == TORCHVISION_PARAMS[False]
    assert not isinstance(without, AuxiliaryOutputsModel)
    assert not any(layer.name.startswith("aux_") for layer in without.layers)


def test_se_adds_one_squeeze_excite_per_module_with_reduction_16():
    model = keras_cnn.SEInceptionV3(input_shape=(SIZE, SIZE, 3))
    # Reduce (C -> C/16, with bias) and expand (C/16 -> C, with bias) per module.
    expected_se = sum(2 * c * (c // 16) + c // 16 + c for _, c, _ in MODULE_SHAPES)
    assert expected_se == 1661620
    assert keras_cnn.utils.count_params(model) == TORCHVISION_PARAMS[True] + expected_se
    for module, channels, _ in MODULE_SHAPES:
        assert model.get_layer(f"{module}_se_reduce").filters == channels // 16
        assert model.get_layer(f"{module}_se_expand").filters == channels
    # The aux head sits on the SE-recalibrated Mixed_6e output.
    assert model.get_layer("aux_pool").input is model.get_layer("mixed_6e_se_excite").output


def test_module_widths_and_grids_at_299(model_299):
    for module, channels, grid in MODULE_SHAPES:
        assert tuple(model_299.get_layer(f"{module}_concat").output.shape[1:]) == (grid, grid, channels)
    # The factorised 7x7 widths of Mixed_6b..e.
    widths = [model_299.get_layer(f"mixed_6{m}_branch7x7dbl_1_conv").filters for m in "bcde"]
    assert widths == [128, 160, 160, 192]
    assert model_299.get_layer("mixed_6b_branch7x7_2_conv").kernel_size == (1, 7)
    assert model_299.get_layer("mixed_6b_branch7x7dbl_2_conv").kernel_size == (7, 1)
    assert model_299.get_layer("mixed_7b_branch3x3_2a_conv").kernel_size == (1, 3)
    assert model_299.get_layer("mixed_7b_branch3x3dbl_3b_conv").kernel_size == (3, 1)


def test_convs_are_bias_free_and_bns_use_tf_slim_epsilon(model_299):
    convs = [layer for layer in model_299.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model_299.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convs) == len(bns) == 94 + 2  # keras.applications' conv2d_bn count + the aux head
    assert not any(layer.use_bias for layer in convs)
    assert all(layer.epsilon == 1e-3 and layer.momentum == 0.9 for layer in bns)


def test_valid_padding_where_torchvision_has_none(model_299):
    valid = {"stem_1a", "stem_2a", "stem_4a", "mixed_6a_branch3x3", "mixed_6a_branch3x3dbl_3",
             "mixed_7a_branch3x3_2", "mixed_7a_branch7x7x3_4", "aux_conv1"}
    spatial = [layer for layer in model_299.layers
               if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size != (1, 1)]
    assert {layer.name[: -len("_conv")] for layer in spatial if layer.padding == "valid"} == valid
    strided = {layer.name[: -len("_conv")] for layer in spatial if layer.strides == (2, 2)}
    assert strided == valid - {"stem_2a", "stem_4a", "aux_conv1"}


def test_aux_output_only_in_training(model, rng):
    assert isinstance(model, AuxiliaryOutputsModel)
    assert model.aux_loss_weights == (0.4,)
    classes = model.get_layer("predictions").units
    assert model.get_layer("aux_predictions").units == classes
    x = random_images(rng, SIZE, n=3)
    main, aux = model(x, training=True)
    assert main.shape == aux.shape == (3, classes)
    np.testing.assert_allclose(np.sum(aux, -1), 1.0, rtol=1e-5)
    inference = model(x)
    assert not isinstance(inference, (tuple, list)) and inference.shape == (3, classes)


def test_no_aux_head_in_a_feature_extractor():
    model = keras_cnn.InceptionV3(input_shape=(SIZE, SIZE, 3), include_top=False, pooling="avg")
    assert not isinstance(model, AuxiliaryOutputsModel)
    assert not any(layer.name.startswith("aux_") for layer in model.layers)
    assert model.output.shape == (None, 2048)


def test_aux_head_is_torchvisions_at_299(model_299, rng):
    pool = model_299.get_layer("aux_pool")
    assert isinstance(pool, keras_cnn.layers.GridAveragePooling2D)
    assert (pool.grid_size, pool.windows) == (5, "overlapping")
    assert tuple(pool.input.shape[1:]) == (17, 17, 768) and tuple(pool.output.shape[1:]) == (5, 5, 768)
    # At 17x17 the windows are exactly torchvision's avg_pool2d(kernel_size=5, stride=3).
    x = rng.normal(size=(1, 17, 17, 768)).astype("float32")
    np.testing.assert_allclose(pool(x), keras.layers.AveragePooling2D(5, 3)(x), atol=1e-6)
    assert tuple(model_299.get_layer("aux_conv1_relu").output.shape[1:]) == (1, 1, 768)
    assert model_299.get_layer("aux_conv0_conv").filters == 128
    assert model_299.get_layer("aux_conv1_conv").kernel_size == (5, 5)
    assert model_299.get_layer("aux_conv1_bn").epsilon == 1e-3


def test_aux_head_works_with_free_spatial_sizes(rng):
    model = keras_cnn.InceptionV3(input_shape=(None, None, 3), classes=CLASSES)
    for height, width in ((SIZE, SIZE), (SIZE + 32, SIZE + 48)):
        main, aux = model(random_images(rng, height, width=width), training=True)
        assert main.shape == aux.shape == (2, CLASSES)
        assert np.all(np.isfinite(aux))


def test_minimum_input_size_is_75(model):
    assert model.get_layer("mixed_7c_concat").output.shape[1:3] == (1, 1)
    with pytest.raises(ValueError, match="input_shape"):
        keras_cnn.InceptionV3(input_shape=(SIZE - 1, SIZE, 3))


@pytest.mark.slow
def test_fit_lowers_the_loss(rng):
    # `fit` trains the main and (weight 0.4) aux classifiers together. Eager: tracing the
    # training step of this graph costs minutes on a small CPU, a step a few seconds.
    model = keras_cnn.InceptionV3(input_shape=(SIZE, SIZE, 3), classes=3, dropout=0.0)
    x = random_images(rng, SIZE, n=6)
    y = np.arange(6) % 3
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True)
    history = model.fit(x, y, batch_size=6, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    assert min(history[1:]) < history[0]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"aux_logits": "yes"}, "aux_logits"),
        ({"aux_logits": 1}, "aux_logits"),
        ({"se_ratio": 1.5}, "se_ratio"),
        ({"se_ratio": -0.1}, "se_ratio"),
        ({"se_ratio": "16"}, "se_ratio"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_shape": (64, 64, 3)}, "input_shape"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"{argument}="):
        keras_cnn.InceptionV3(**kwargs)


def test_registry_rows():
    info = keras_cnn.get_model_info("inception_v3")
    assert info.default_size == 299 and info.pretrained == ("imagenet", "torchvision:inception_v3.IMAGENET1K_V1")
    assert keras_cnn.weights.keras_applications_name("inception_v3") == "InceptionV3"
    assert keras_cnn.get_model_info("se_inception_v3").config["se_ratio"] == 1 / 16


PREPROCESS = keras.applications.inception_v3.preprocess_input

# keras.applications port: random weights (BN statistics included), RGB [0, 255] input.

@pytest.mark.parametrize("size", [SIZE, pytest.param(299, marks=pytest.mark.slow)])
def test_port_with_top_matches_outputs(size, rng):
    ka_model = keras.applications.InceptionV3(weights=None, input_shape=(size, size, 3),
                                              classifier_activation=None)
    randomize_weights(ka_model, rng)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    assert model.name == "inception_v3" and not isinstance(model, AuxiliaryOutputsModel)
    assert_port_matches(ka_model, model, random_images(rng, size), PREPROCESS)


@pytest.mark.parametrize("pooling", ["avg", pytest.param(None, marks=pytest.mark.slow),
                                     pytest.param("max", marks=pytest.mark.slow)])
def test_port_feature_extractor(pooling, rng):
    height, width = SIZE + 8, SIZE + 24
    ka_model = keras.applications.InceptionV3(weights=None, include_top=False, pooling=pooling,
                                              input_shape=(height, width, 3))
    randomize_weights(ka_model, rng)
    # keras.applications leaves its feature pooling layer unnamed: pass the pooling on.
    model = keras_cnn.weights.from_keras_applications(ka_model, pooling=pooling)
    assert_port_matches(ka_model, model, random_images(rng, height, width=width), PREPROCESS)


@pytest.mark.slow
def test_port_refuses_a_model_with_aux_head(rng):
    ka_model = keras.applications.InceptionV3(weights=None, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="architectures differ"):
        keras_cnn.weights.from_keras_applications(ka_model, aux_logits=True)


@pytest.mark.slow
def test_imagenet_weights_go_through_the_port(monkeypatch, rng):
    made = {}
    original = keras.applications.InceptionV3

    def fake_inception_v3(weights, include_top):
        assert weights == "imagenet"
        made["model"] = original(weights=None, include_top=include_top)
        randomize_weights(made["model"], rng)
        return made["model"]

    monkeypatch.setattr(keras.applications, "InceptionV3", fake_inception_v3)
    model = keras_cnn.InceptionV3(weights="imagenet")
    assert not isinstance(model, AuxiliaryOutputsModel)
    x = random_images(rng, 299, n=1)
    expected = np.asarray(made["model"](keras.applications.inception_v3.preprocess_input(x.copy())))
    np.testing.assert_allclose(model(x), expected, atol=1e-5, rtol=1e-3)
