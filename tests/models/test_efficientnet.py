"""EfficientNet: compound scaling, rounding rules, block structure, arguments and the
keras.applications ports. Parameter counts of the registered names are checked by
`tests/models/test_param_counts.py` against timm's `tf_efficientnet_*`."""

import math
import re

import keras
import numpy as np
import pytest
from conftest import assert_port_matches, random_images, randomize_weights

import keras_cnn
from keras_cnn.models import efficientnet as effnet
from keras_cnn.weights import WeightsUnavailableError
from keras_cnn.weights.families import efficientnet as effnet_weights

B0_REPEATS = [1, 2, 2, 3, 3, 4, 1]
SMALL = 64


def _b0(**kwargs):
    kwargs.setdefault("input_shape", (SMALL, SMALL, 3))
    return keras_cnn.EfficientNetB0(**kwargs)


def _blocks(model):
    """Block names in order (`block1a`, `block2a`, ...), read off the depthwise convs."""
    return [layer.name[: -len("_dwconv")] for layer in model.layers
            if isinstance(layer, keras.layers.DepthwiseConv2D)]


def _block_input_channels(model, block):
    first = "expand_conv" if f"{block}_expand_conv" in [layer.name for layer in model.layers] else "dwconv"
    layer = model.get_layer(f"{block}_{first}")
    return layer.input.shape[-1]


# --- compound scaling -------------------------------------------------------------------


def test_compound_scaling_constants_double_the_flops_per_phi():
    # Paper Eq. 3: alpha * beta^2 * gamma^2 ~ 2 (1.92 with the grid-searched values).
    assert effnet.ALPHA * effnet.BETA**2 * effnet.GAMMA**2 == pytest.approx(2.0, rel=0.05)
    base = effnet.compound_scaling(0)
    assert base == (1.0, 1.0, effnet.BASE_RESOLUTION)
    for phi in (1, 2.5, 7):
        depth, width, resolution = effnet.compound_scaling(phi)
        assert (depth, width) == pytest.approx((effnet.ALPHA**phi, effnet.BETA**phi))
        assert resolution == pytest.approx(effnet.GAMMA**phi * 224)
        flops_ratio = depth * width**2 * (resolution / 224) ** 2
        assert flops_ratio == pytest.approx((effnet.ALPHA * effnet.BETA**2 * effnet.GAMMA**2) ** phi)
    assert effnet.compound_scaling(1, base_resolution=300).resolution == pytest.approx(345.0)


@pytest.mark.parametrize("phi", range(1, 8))
def test_published_rows_are_hand_rounded_compound_scaling(phi):
    """B1-B7 follow the formula loosely: widths and resolutions within ~15 % (B4-B7 within
    5 %), depths up to ~20 % below it (they lag about one phi)."""
    row = effnet.SCALING[f"b{phi}"]
    formula = effnet.compound_scaling(phi)
    assert 0.85 <= row.width / formula.width <= 1.05
    assert 0.85 <= row.resolution / formula.resolution <= 1.05
    assert 0.8 <= row.depth / formula.depth <= 1.0
    if phi >= 4:
        assert row.width == pytest.approx(formula.width, rel=0.05)
        assert row.resolution == pytest.approx(formula.resolution, rel=0.05)
    previous = effnet.SCALING[f"b{phi - 1}"]
    assert row.width >= previous.width and row.depth > previous.depth
    assert row.resolution > previous.resolution and row.dropout >= previous.dropout


def test_scaling_rows_are_the_registered_configs():
    expected = {
        "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
        "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
        "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5), "l2": (4.3, 5.3, 800, 0.5),
        "b6_wide": (5.0, 2.6, 800, 0.5),
    }
    assert {k: tuple(v) for k, v in effnet.SCALING.items()} == expected
    for key, (width, depth, size, dropout) in expected.items():
        info = keras_cnn.get_model_info(f"efficientnet_{key}")
        assert info.config == {"width_coefficient": width, "depth_coefficient": depth,
                               "default_size": size, "dropout": dropout}
        assert info.default_size == size
    assert keras_cnn.list_models(family="efficientnet", pretrained=True) == [
        *(f"efficientnet_b{i}" for i in range(8)), "efficientnet_l2"  # L2: Noisy Student's timm tags
    ]
    assert "imagenet" not in keras_cnn.get_model_info("efficientnet_l2").pretrained


# --- rounding rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters, width, divisor, expected",
    [
        (32, 1.0, 8, 32),
        (32, 1.1, 8, 32),  # 35.2 rounds down to 32 (within 10 %)
        (1280, 1.1, 8, 1408),
        (1280, 2.0, 8, 2560),
        (24, 4.3, 8, 104),  # 103.2
        (16, 1.8, 8, 32),  # 28.8 -> 32
        (8, 0.5, 8, 8),  # never below the divisor
        (90, 1.0, 64, 128),  # 64 would cut 90 by more than 10 %
        (140, 1.0, 64, 128),  # 128 cuts it by less
    ],
)
def test_round_filters(filters, width, divisor, expected):
    assert effnet.round_filters(filters, width, divisor) == expected


@pytest.mark.parametrize(
    "repeats, depth, expected",
    [(1, 1.0, 1), (3, 1.1, 4), (2, 1.2, 3), (4, 1.8, 8), (1, 3.1, 4), (4, 3.1, 13), (4, 5.3, 22)],
)
def test_round_repeats_rounds_up(repeats, depth, expected):
    assert effnet.round_repeats(repeats, depth) == expected


def test_block_letters_continue_past_z():
    assert [effnet._block_letters(i) for i in (0, 1, 25, 26, 27, 51, 52)] == [
        "a", "b", "z", "aa", "ab", "az", "ba"
    ]


# --- structure --------------------------------------------------------------------------


def test_b0_blocks_se_widths_and_skips():
    model = _b0(drop_path_rate=0.2)
    blocks = _blocks(model)
    letters = "abcd"
    assert blocks == [f"block{s + 1}{letters[j]}" for s, r in enumerate(B0_REPEATS) for j in range(r)]
    names = {layer.name for layer in model.layers}
    assert "block1a_expand_conv" not in names  # expand ratio 1: no expansion
    assert all(f"{b}_expand_conv" in names for b in blocks[1:])
    for block in blocks:
        filters_in = _block_input_channels(model, block)
        dwconv = model.get_layer(f"{block}_dwconv")
        # SE squeezes to a quarter of the block's input width, then re-expands.
        assert model.get_layer(f"{block}_se_reduce").filters == max(1, int(filters_in * 0.25))
        assert model.get_layer(f"{block}_se_expand").filters == dwconv.output.shape[-1]
        filters_out = model.get_layer(f"{block}_project_conv").filters
        has_skip = dwconv.strides == (1, 1) and filters_in == filters_out
        assert (f"{block}_add" in names) == has_skip, block
        assert (f"{block}_drop" in names) == (has_skip and block != "block1a"), block
    skips = sorted(n[: -len("_add")] for n in names if n.endswith("_add"))
    assert skips == ["block2b", "block3b", "block4b", "block4c", "block5b", "block5c",
                     "block6b", "block6c", "block6d"]
    assert model.get_layer("block2a_se_reduce").filters == 4  # 16 input channels
    assert model.get_layer("block2a_expand_conv").filters == 96
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("top_conv").filters == 1280


def test_drop_path_rates_increase_linearly_with_the_block_index():
    model = _b0(drop_path_rate=0.2)
    blocks = _blocks(model)
    rates = {layer.name[: -len("_drop")]: layer.rate for layer in model.layers
             if isinstance(layer, keras_cnn.layers.DropPath)}
    assert rates  # the residual blocks
    for block, rate in rates.items():
        assert rate == pytest.approx(0.2 * blocks.index(block) / len(blocks))
    ordered = [rates[b] for b in blocks if b in rates]
    assert ordered == sorted(ordered) and ordered[0] > 0 and ordered[-1] < 0.2
    plain = _b0(drop_path_rate=0.0)
    assert not any(isinstance(layer, keras_cnn.layers.DropPath) for layer in plain.layers)


def test_tf_batch_norm_and_bias_free_convs():
    model = _b0()
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == 0.99 and bn.epsilon == 1e-3 for bn in bns)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            # Only the SE convs (no BN after them) have a bias.
            assert layer.use_bias == ("_se_" in layer.name), layer.name
    # SiLU ("swish"), as keras_cnn.layers.activations.silu: same values, one-pass gradient on TF.
    assert model.get_layer("stem_swish").activation is keras_cnn.layers.activations.silu


@pytest.mark.slow
def test_scaled_stage_widths_and_depths_of_b7():
    model = keras_cnn.EfficientNetB7(input_shape=(SMALL, SMALL, 3))
    blocks = _blocks(model)
    per_stage = [sum(b.startswith(f"block{s}") and b[len(f"block{s}")].isalpha() for b in blocks)
                 for s in range(1, 8)]
    assert per_stage == [effnet.round_repeats(r, 3.1) for r in B0_REPEATS] == [4, 7, 7, 10, 10, 13, 4]
    widths = [model.get_layer(f"block{s}a_project_conv").filters for s in range(1, 8)]
    assert widths == [32, 48, 80, 160, 224, 384, 640]  # timm tf_efficientnet_b7's
    assert model.get_layer("stem_conv").filters == 64
    assert model.get_layer("top_conv").filters == 2560


def test_padding_modes():
    same = _b0(include_top=False)
    assert not any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in same.layers)
    symmetric = _b0(include_top=False, padding="symmetric")
    pads = {layer.name: layer.padding for layer in symmetric.layers
            if isinstance(layer, keras.layers.ZeroPadding2D)}
    # PyTorch pads k // 2 on every side of each strided conv.
    assert pads == {"stem_pad": ((1, 1), (1, 1)), "block2a_dwconv_pad": ((1, 1), (1, 1)),
                    "block3a_dwconv_pad": ((2, 2), (2, 2)), "block4a_dwconv_pad": ((1, 1), (1, 1)),
                    "block6a_dwconv_pad": ((2, 2), (2, 2))}
    assert same.output.shape == symmetric.output.shape == (None, 2, 2, 1280)
    assert keras_cnn.utils.count_params(same) == keras_cnn.utils.count_params(symmetric)


def test_se_ratio_override_and_custom_blocks():
    no_se = _b0(se_ratio=0.0)
    assert not any("_se_" in layer.name for layer in no_se.layers)
    stages = [effnet.MBConvStage(kernel_size=3, repeats=1, filters_in=8, filters_out=8,
                                 expand_ratio=1, strides=1),
              {"kernel_size": 5, "repeats": 2, "filters_in": 8, "filters_out": 16,
               "expand_ratio": 4, "strides": 2, "se_ratio": 0.5}]
    model = effnet.EfficientNet(1.0, 1.5, blocks_args=stages, head_filters=32,
                                input_shape=(32, 32, 3), classes=3)
    assert _blocks(model) == ["block1a", "block1b", "block2a", "block2b", "block2c"]
    assert model.get_layer("block2a_se_reduce").filters == 4  # 8 * 0.5
    assert model.get_layer("block2b_se_reduce").filters == 8  # 16 * 0.5
    assert model.get_layer("block1b_add") is not None
    assert model.output.shape == (None, 3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert np.all(np.isfinite(model(x)))


def test_b6_wide_is_b6_depth_with_width_five():
    info = keras_cnn.get_model_info("efficientnet_b6_wide")
    b6 = keras_cnn.get_model_info("efficientnet_b6")
    assert info.config["depth_coefficient"] == b6.config["depth_coefficient"]
    assert info.config["width_coefficient"] == 5.0
    assert "Meta Pseudo Labels" in info.paper


# --- argument validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"width_coefficient": 0}, "width_coefficient"),
        ({"width_coefficient": "wide"}, "width_coefficient"),
        ({"depth_coefficient": -1.0}, "depth_coefficient"),
        ({"depth_coefficient": True}, "depth_coefficient"),
        ({"blocks_args": []}, "blocks_args"),
        ({"blocks_args": [(3, 1, 32, 16, 1, 3, 0.25)]}, "blocks_args"),  # stride 3
        ({"blocks_args": [(3, 1, 32, 16, 1, 1, 1.5)]}, "blocks_args"),  # se_ratio
        ({"blocks_args": [(3, 0, 32, 16, 1, 1)]}, "blocks_args"),  # no repeats
        ({"blocks_args": [(3, 1, 32, 16, 1, 1), (3, 1, 24, 24, 6, 1)]}, "blocks_args"),
        ({"blocks_args": [{"kernel": 3}]}, "blocks_args"),
        ({"blocks_args": "default"}, "blocks_args"),
        ({"depth_divisor": 0}, "depth_divisor"),
        ({"activation": "nope"}, "activation"),
        ({"activation": None}, "activation"),
        ({"se_ratio": 1.0}, "se_ratio"),
        ({"head_filters": 0}, "head_filters"),
        ({"padding": "valid"}, "padding"),
        ({"bn_momentum": 1.0}, "bn_momentum"),
        ({"bn_epsilon": 0.0}, "bn_epsilon"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
        ({"dropout": -0.1}, "dropout"),
        ({"default_size": 0}, "default_size"),
        ({"input_shape": (16, 16, 3)}, "input_shape"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    args = {"width_coefficient": 1.0, "depth_coefficient": 1.0, **kwargs}
    with pytest.raises(ValueError, match=f"`{argument}`.*{argument}="):
        effnet.EfficientNet(**args)


def test_registered_builder_refuses_bad_arguments():
    with pytest.raises(ValueError, match="padding='torch'"):
        keras_cnn.EfficientNetB0(padding="torch")
    with pytest.raises(ValueError, match="phi"):
        effnet.compound_scaling("b7")
    with pytest.raises(ValueError, match="base_resolution"):
        effnet.compound_scaling(1, base_resolution=0)


# --- keras.applications ports -----------------------------------------------------------


def _ka_model(ctor, rng, **kwargs):
    ka_model = getattr(keras.applications, ctor)(weights=None, **kwargs)
    randomize_weights(ka_model, rng)
    # The in-model Normalization holds ImageNet-like statistics of [0, 1] pixels.
    norm = next(layer for layer in ka_model.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_mean.assign(rng.uniform(0.35, 0.55, 3).astype("float32"))
    norm.adapt_variance.assign(rng.uniform(0.04, 0.08, 3).astype("float32"))
    norm.finalize_state()
    return ka_model


def _check_port_with_top(ctor, rng, size):
    ka_model = _ka_model(ctor, rng, input_shape=(size, size, 3), classifier_activation=None)
    model = keras_cnn.weights.from_keras_applications(ka_model)
    assert model.name == f"efficientnet_b{ctor[-1]}"
    assert keras_cnn.utils.count_params(model) == keras_cnn.utils.count_params(ka_model)
    # keras.applications EfficientNet normalises inside the model: same [0, 255] input.
    assert_port_matches(ka_model, model, random_images(rng, size))
    return ka_model


def test_b0_port_with_top_matches_outputs(rng):
    # 72 px: the 9x9 map before block6a is odd, so TF's asymmetric padding is exercised.
    keras.layers.Normalization()  # takes the name "normalization" if it is still free
    ka_model = _check_port_with_top("EfficientNetB0", rng, 72)
    # Keras numbers unnamed layers per session; the port finds them under any number.
    norm = next(layer for layer in ka_model.layers if isinstance(layer, keras.layers.Normalization))
    assert re.fullmatch(r"normalization_\d+", norm.name)


@pytest.mark.slow
@pytest.mark.parametrize("ctor", [f"EfficientNetB{i}" for i in range(1, 8)])
def test_bigger_ports_with_top_match_outputs(ctor, rng):
    _check_port_with_top(ctor, rng, SMALL)


@pytest.mark.parametrize("pooling", ["avg", pytest.param(None, marks=pytest.mark.slow),
                                     pytest.param("max", marks=pytest.mark.slow)])
def test_b0_port_feature_extractor(pooling, rng):
    ka_model = _ka_model("EfficientNetB0", rng, include_top=False, pooling=pooling,
                         input_shape=(80, 80, 3))
    model = keras_cnn.weights.from_keras_applications(ka_model)
    x = random_images(rng, 80)
    expected = np.asarray(ka_model(x))
    assert expected.shape == tuple(model(x).shape)
    assert np.std(expected) > 1e-3
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_port_normalization_reads_the_imagenet_fix_up_rescaling():
    """With ImageNet weights keras.applications adds a per-channel Rescaling after its
    Normalization; the (mean, std) must reproduce the whole chain."""
    mean, variance = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # as stored in the weights
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Normalization(mean=mean, variance=variance)(x)
    x = keras.layers.Rescaling([1.0 / math.sqrt(s) for s in variance])(x)
    chain = keras.Model(inputs, x)
    ours_mean, ours_std = effnet_weights.keras_applications_normalization(chain)
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype("float32")
    expected = np.asarray(chain(pixels))
    np.testing.assert_allclose((pixels - np.array(ours_mean)) / np.array(ours_std), expected,
                               rtol=1e-5, atol=1e-5)
    # The fixed-up chain is the standard ImageNet normalisation.
    np.testing.assert_allclose(ours_mean, np.array(mean) * 255, rtol=1e-6)
    np.testing.assert_allclose(ours_std, np.array(variance) * 255, rtol=1e-6)


def test_port_skips_auto_numbered_preprocessing_layers():
    from keras_cnn.weights.keras_applications import _skipped

    port, layer_map = keras_cnn.weights.keras_applications_ports()["EfficientNetB0"]
    assert _skipped("normalization", port.skip_source_layers)
    assert _skipped("normalization_12", port.skip_source_layers)
    assert not _skipped("stem_conv", port.skip_source_layers)
    assert not _skipped("block1a_bn", port.skip_source_layers)
    assert layer_map("block1a_se_reduce") == "block1a_se_reduce"
    # Another model built first shifts the auto-numbering; the port still finds its layers.
    keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3))
    ka_model = keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3))
    assert keras_cnn.weights.from_keras_applications(ka_model).name == "efficientnet_b0"


def test_imagenet_weights_go_through_the_port(monkeypatch, rng):
    made = {}
    original = keras.applications.EfficientNetB0

    def fake_b0(weights, include_top):
        assert weights == "imagenet"
        made["model"] = original(weights=None, include_top=include_top)
        randomize_weights(made["model"], rng)
        norm = next(layer for layer in made["model"].layers
                    if isinstance(layer, keras.layers.Normalization))
        norm.adapt_mean.assign([0.485, 0.456, 0.406])
        norm.adapt_variance.assign([0.052, 0.050, 0.051])
        norm.finalize_state()
        return made["model"]

    monkeypatch.setattr(keras.applications, "EfficientNetB0", fake_b0)
    model = keras_cnn.EfficientNetB0(weights="imagenet", include_top=False, pooling="avg",
                                     input_shape=(SMALL, SMALL, 3))
    x = random_images(rng, SMALL, n=1)
    expected = np.asarray(made["model"](x)).mean(axis=(1, 2))
    assert model.output.shape == (None, 1280)
    np.testing.assert_allclose(model(x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_imagenet_offline_is_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "EfficientNetB3", offline)
    with pytest.raises(WeightsUnavailableError, match=r"EfficientNetB3"):
        keras_cnn.EfficientNetB3(weights="imagenet")


def test_imagenet_weights_fix_the_architecture():
    with pytest.raises(ValueError, match="width_coefficient"):
        keras_cnn.EfficientNetB0(weights="imagenet", width_coefficient=1.1)
    with pytest.raises(ValueError, match="weights='imagenet'"):
        keras_cnn.EfficientNetL2(weights="imagenet")
