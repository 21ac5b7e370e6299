"""Multi-scale feature extraction (`keras_cnn.feature_extractor`)."""

import math

import keras
import numpy as np
import pytest
from conftest import LARGE_MODELS, small_input_size

import keras_cnn

# One variant per distinct block design: stems, strides in 1x1 vs 3x3 (v1 / v1.5), pre-activation,
# avg-down shortcuts, grouped and SE blocks, inverted residuals, inception concatenations, fire
# modules, dense blocks and transitions, plain conv stacks. The rest of the registry is in the slow test.
REPRESENTATIVES = (
    "alexnet", "alexnet_paper", "densenet121", "densenet_bc_100_12", "efficientnet_b0", "googlenet",
    "googlenet_paper", "se_googlenet", "inception_v3", "lenet5", "mobilenetv1_050", "resnet18", "resnet50",
    "resnet50_v1", "resnet50c", "resnet50d", "resnet50v2", "resnext50_32x4d", "seresnext50_32x4d",
    "squeezenet1_0", "squeezenet1_0_bypass", "squeezenet1_1", "vgg11", "vgg11_bn", "wrn_28_2",
)
OTHERS = [
    pytest.param(n, marks=pytest.mark.slow)
    for n in keras_cnn.list_models()
    if n not in REPRESENTATIVES and n not in LARGE_MODELS
]

# The strides each design reaches at its test size: SqueezeNet ends at stride 16; the 32 px CIFAR
# networks and LeNet-5 stop at stride 4.
REACHED = {"squeezenet": (4, 8, 16), "lenet5": (2, 4)}
VALID_PADDED = ("alexnet", "inception_v3", "se_inception_v3", "lenet5", "squeezenet")


def expected_strides(name):
    for prefix, strides in REACHED.items():
        if name.startswith(prefix):
            return strides
    return (2, 4) if small_input_size(name) == 32 else (4, 8, 16, 32)


def check_pyramid(name):
    size = small_input_size(name)
    strides = expected_strides(name)
    model = keras_cnn.create_model(name, include_top=False, input_shape=(size, size, 3))
    extractor = keras_cnn.feature_extractor(model, strides)
    assert list(extractor.output) == [f"P{int(math.log2(s))}" for s in strides]
    previous = size + 1
    for stride in strides:
        height, width, channels = extractor.output[f"P{int(math.log2(stride))}"].shape[1:]
        assert height == width and channels > 0
        assert height < previous, f"{name}: stride {stride} map {height} px not smaller than {previous} px"
        if name.startswith(VALID_PADDED):  # valid convolutions and floor-mode pools shrink maps further
            assert height <= math.ceil(size / stride)
        else:
            assert height == math.ceil(size / stride), f"{name}: stride {stride} map is {height} px"
        previous = height
    # Sharing: the extractor's layers are the backbone's own (fine-tuning trains the backbone).
    for layer in extractor.layers:
        assert model.get_layer(layer.name) is layer


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_every_block_design_gives_its_pyramid(name):
    check_pyramid(name)


@pytest.mark.parametrize("name", OTHERS)
def test_every_registered_model_gives_its_pyramid(name):
    check_pyramid(name)


# Stage outputs (what timm's `features_only` / keras-cv's pyramid levels return), as channels per
# stride at the default resolution; the layer names prove a stage's *output* is chosen, not the
# first layer of the next (strided) block.
PINNED = {
    "resnet50": ((256, 512, 1024, 2048), ("stage1_block3_out", "stage2_block4_out", "stage3_block6_out",
                                           "stage4_block3_out")),
    "resnet50v2": ((256, 512, 1024, 2048), ("stage1_block2_add", "stage2_block3_add", "stage3_block5_add",
                                             "post_relu")),
    "efficientnet_b0": ((24, 40, 112, 1280), ("block2b_add", "block3b_add", "block5c_add", "top_swish")),
    "mobilenetv1_100": ((128, 256, 512, 1024), ("block3_pw_relu6", "block5_pw_relu6", "block11_pw_relu6",
                                                "block13_pw_relu6")),
    "densenet121": ((128, 256, 512, 1024), ("pool2_conv", "pool3_conv", "pool4_conv", "relu")),
    "vgg16": ((256, 512, 512, 512), ("block3_conv3_relu", "block4_conv3_relu", "block5_conv3_relu",
                                      "block5_pool")),
    "googlenet": ((192, 480, 832, 1024), ("conv3_relu", "inception3b_concat", "inception4e_concat",
                                          "inception5b_concat")),
    "inception_v3": ((192, 288, 768, 2048), ("stem_4a_relu", "mixed_5d_concat", "mixed_6e_concat",
                                             "mixed_7c_concat")),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_features_are_the_stage_outputs(name):
    channels, layer_names = PINNED[name]
    size = 299 if name == "inception_v3" else 224
    model = keras_cnn.create_model(name, include_top=False, input_shape=(size, size, 3))
    assert tuple(keras_cnn.feature_layers(model).values()) == layer_names
    extractor = keras_cnn.feature_extractor(model)
    assert tuple(t.shape[-1] for t in extractor.output.values()) == channels


def test_cifar_network_features_skip_the_preactivation_of_the_strided_block():
    model = keras_cnn.create_model("wrn_28_2", include_top=False, input_shape=(32, 32, 3))
    assert keras_cnn.feature_layers(model, (2, 4)) == {2: "stage2_block4_add", 4: "post_relu"}


def test_dynamic_input_size_and_a_classifier_model():
    """Strides do not need a static input size; a classifier top (non-4-D layers) is ignored."""
    model = keras_cnn.create_model("resnet18", input_shape=(None, None, 3), classes=7, stem_width=8,
                                   planes=(8, 16, 32, 64))
    extractor = keras_cnn.feature_extractor(model)
    for size in (64, 96):
        pyramid = extractor(np.zeros((1, size, size, 3), "float32"))
        assert {k: tuple(v.shape[1:3]) for k, v in pyramid.items()} == {
            f"P{k}": (size // 2**k, size // 2**k) for k in (2, 3, 4, 5)
        }


def test_training_the_extractor_trains_the_backbone(rng):
    model = keras_cnn.create_model("resnet18", include_top=False, input_shape=(32, 32, 3), stem_width=8,
                                   planes=(8, 16, 32, 64))
    extractor = keras_cnn.feature_extractor(model, (8, 16))
    before = [w.numpy().copy() for w in model.trainable_weights]
    head_input = keras.Input((32, 32, 3))
    pyramid = extractor(head_input)
    score = keras.layers.Add()([keras.layers.GlobalAveragePooling2D()(pyramid["P4"])[:, :1],
                                keras.layers.GlobalAveragePooling2D()(pyramid["P3"])[:, :1]])
    detector = keras.Model(head_input, score)
    detector.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    detector.fit(rng.uniform(0, 255, (4, 32, 32, 3)), np.ones((4, 1)), verbose=0)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    # Stage 4 is past the deepest requested level (stride 16): only it stays untouched.
    untouched = {w.path for w, c in zip(model.trainable_weights, changed) if not c}
    assert untouched and all(path.startswith("stage4") for path in untouched)
    assert sum(changed) > 0


def test_extractor_round_trips_through_keras_file(tmp_path, rng):
    extractor = keras_cnn.feature_extractor("resnet18", (4, 8), input_shape=(32, 32, 3), stem_width=8,
                                            planes=(8, 16, 32, 64))
    path = str(tmp_path / "features.keras")
    extractor.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for key, value in extractor.predict(x, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(x, verbose=0)[key], value, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strides": (4, 6)}, r"`strides` must be powers of two, received strides=\(4, 6\)"),
        ({"strides": 8}, r"`strides` must be a non-empty sequence.*received strides=8"),
        ({"strides": (8, 8)}, r"must not repeat"),
        ({"strides": (4, 64)}, r"no feature map at strides \[64\] \(it has \[1, 2, 4, 8, 16, 32\]\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    model = keras_cnn.create_model("resnet18", include_top=False, input_shape=(64, 64, 3), stem_width=8,
                                   planes=(8, 16, 32, 64))
    with pytest.raises(ValueError, match=match):
        keras_cnn.feature_extractor(model, **kwargs)


def test_not_a_model_and_stray_builder_arguments_are_refused():
    with pytest.raises(ValueError, match="`model` must be a Keras functional model"):
        keras_cnn.feature_extractor(keras.layers.Dense(3))
    model = keras_cnn.create_model("lenet5")
    with pytest.raises(ValueError, match=r"only accepted with a registry name.*\['classes'\]"):
        keras_cnn.feature_extractor(model, (2,), classes=3)


def test_default_strides_are_the_levels_a_net_has():
    # SqueezeNet has no stride-32 level: by default it gives strides 4, 8 and 16 (as timm's
    # features_only gives a net's levels); asking for 32 is still an error listing the ones it has.
    model = keras_cnn.create_model("squeezenet1_1", include_top=False, input_shape=(64, 64, 3))
    assert list(keras_cnn.feature_layers(model)) == [4, 8, 16]
    assert list(keras_cnn.feature_extractor(model).output) == ["P2", "P3", "P4"]
    with pytest.raises(ValueError, match=r"no feature map at strides \[32\]"):
        keras_cnn.feature_extractor(model, (4, 8, 16, 32))
    lenet = keras_cnn.create_model("lenet5", include_top=False)
    assert list(keras_cnn.feature_layers(lenet)) == [4]
