"""Trainable parameters and MACs against the reference implementations.

`tests/fixtures/param_counts.csv` is `../shared/reference/param_counts.csv` (torchvision 0.29.1
/ timm 1.0.31). keras.applications counts are computed here from keras itself.
"""

import csv
import pathlib

import keras
import pytest

import keras_cnn
from keras_cnn.utils.model_stats_table import STATS
from keras_cnn.utils.model_table import model_stats

TABLE = pathlib.Path(__file__).parents[1] / "fixtures" / "param_counts.csv"


def _reference_rows():
    lines = [line for line in TABLE.read_text().splitlines() if not line.startswith("#")]
    params, gmacs = {}, {}
    for row in csv.DictReader(lines):
        # googlenet / inception_v3 have two rows: with aux heads (the registered default,
        # the training configuration) and without (the family tests check that one, and
        # only it carries torchvision's GMACs).
        if "aux_logits=False" not in row["source"]:
            params[row["name"]] = int(row["params"])
        if row["gmacs"]:
            gmacs[row["name"]] = float(row["gmacs"])
    return params, gmacs


REFERENCE, REFERENCE_GMACS = _reference_rows()


# Reference rows for architectures the zoo does not have yet.
NOT_YET_REGISTERED = {"mobilenet_v2"}


def test_every_reference_row_is_registered():
    missing = sorted(set(REFERENCE) - set(keras_cnn.list_models()) - NOT_YET_REGISTERED)
    assert not missing, f"reference names without a registered model: {missing}"


@pytest.mark.parametrize("name", keras_cnn.list_models())
def test_params_and_macs_equal_reference_and_stored_counts(name):
    """One build per model: its counts equal the reference's (where the table has the model) and
    the stored counts that `keras-cnn models` and the README table show."""
    params, macs = model_stats(name)
    if name in REFERENCE:
        assert params == REFERENCE[name]
    if name in REFERENCE_GMACS:
        # Auxiliary heads add < 1 % to GoogLeNet / Inception-v3, inside the tolerance.
        assert macs / 1e9 == pytest.approx(REFERENCE_GMACS[name], rel=0.02)
    assert STATS.get(name) == (params, macs), "stored counts are stale: run python tools/update_readme.py"


def test_every_stored_count_is_a_registered_model():
    assert sorted(STATS) == keras_cnn.list_models(), "run python tools/update_readme.py"


@pytest.mark.parametrize(
    "name, ctor",
    [(port.name, ctor) for ctor, (port, _) in keras_cnn.weights.keras_applications_ports().items()],
)
def test_keras_applications_namesakes_have_equal_trainable_params(name, ctor):
    """keras_cnn drops the redundant conv biases before BN and gives every BN a gamma
    (keras.applications InceptionV3 has none); all else is equal."""
    ka_model = getattr(keras.applications, ctor)(weights=None)
    redundant_biases = sum(
        layer.filters for layer in ka_model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias
        and any(n.operation.__class__ is keras.layers.BatchNormalization
                for n in _consumers(ka_model, layer))
    )
    missing_gammas = sum(
        layer.moving_mean.shape[0] for layer in ka_model.layers
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.scale
    )
    port, _ = keras_cnn.weights.keras_applications_ports()[ctor]
    model = keras_cnn.create_model(name, **port.builder_args)
    expected = keras_cnn.utils.count_params(ka_model) - redundant_biases + missing_gammas
    assert keras_cnn.utils.count_params(model) == expected


def _consumers(model, layer):
    out = layer.output
    return [
        node for other in model.layers for node in other._inbound_nodes
        if any(t is out for t in node.input_tensors)
    ]


# Figures published by torchvision/timm/the papers for names outside the shared table.
EXTRA_REFERENCE = {
    "resnext101_64x4d": 83455272,  # torchvision
    "wide_resnet101_2": 126886696,  # torchvision
    "resnext101_32x4d": 44177704,  # timm
    "resnet152d": 60212040,  # timm
    "resnet200d": 64693064,  # timm
    "resnet34d": 21816904,  # timm
    "resnet200": 64673832,  # timm
    "wrn_28_2": 1467610,  # Meta Pseudo Labels / FixMatch WRN-28-2, 10 classes
    "vgg11_bn": 132868840,  # torchvision
    "vgg13_bn": 133053736,  # torchvision
    "vgg19_bn": 143678248,  # torchvision
    "alexnet_paper": 60965224,  # Caffe bvlc_alexnet (grouped conv2/4/5)
    "squeezenet1_0_bypass": 1248424,  # torchvision squeezenet1_0: identity bypasses add nothing
    "mobilenetv1_125": 6270840,  # timm mobilenetv1_125 (model card: 6.27 M)
    "mobilenetv1_075": 2585560,  # keras.applications MobileNet(alpha=0.75); paper: 2.6 M
    "mobilenetv1_050": 1331592,  # keras.applications MobileNet(alpha=0.5); paper: 1.3 M
    "densenet264": 33337704,  # lucid densenet_264; Paddle's 33.74 M includes BN statistics
    "densenet_bc_100_12": 769162,  # osmr/imgclsmob CIFAR-10 DenseNet-BC-100 (k=12); paper 0.8 M
    "densenet_bc_250_24": 15324406,  # osmr/imgclsmob CIFAR-10 DenseNet-BC-250 (k=24); paper 15.3 M
}


@pytest.mark.parametrize("name", sorted(EXTRA_REFERENCE))
def test_trainable_params_equal_published_figures(name):
    params, _ = model_stats(name)
    assert params == EXTRA_REFERENCE[name]
