"""keras_cnn.data.corruptions: contract (shape, dtype, range, determinism, errors) and that the
severities order the damage, on the embedded digits at 16 px (the size tools/robustness.py uses)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.data import corruptions, load_digits
from keras_cnn.data.corruptions import CORRUPTIONS, NUM_SEVERITIES, SEVERITIES, corrupt

NAMES = sorted(CORRUPTIONS)
RANDOM = {"gaussian_noise", "shot_noise", "fog", "rotation"}
# Severity orders the mean absolute change except: fog's severities 3 and 4 share the haze
# strength (2.5) and differ in roughness only (ImageNet-C's table); pixelating 16 px digits to
# 8 px (severity 2) is nearly lossless, they are 8x8 images upscaled 2x. Both still grow from
# severity 1 to 5.
NOT_MONOTONIC = {"fog": (3,), "pixelate": (1,)}


@pytest.fixture(scope="module")
def digits():
    _, (x_test, _) = load_digits(16)
    return x_test[:24].astype("float32")


@pytest.fixture(scope="module")
def distances(digits):
    """Mean |corrupted - clean| per corruption and severity."""
    return {name: [float(np.abs(corrupt(digits, name, s, seed=0).numpy() - digits).mean())
                   for s in range(1, NUM_SEVERITIES + 1)] for name in NAMES}


def test_table_has_five_severities_and_a_source_per_corruption():
    assert list(SEVERITIES) == list(CORRUPTIONS)
    for name, row in SEVERITIES.items():
        assert row.name == name and len(row.values) == NUM_SEVERITIES and row.source and row.meaning
        assert CORRUPTIONS[name].__name__ == name


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_and_determinism(name, digits):
    out = CORRUPTIONS[name](digits, 5, seed=3)
    assert out.shape == digits.shape and out.dtype == tf.float32
    values = out.numpy()
    assert values.min() >= 0.0 and values.max() <= 255.0 and np.isfinite(values).all()
    assert np.array_equal(values, corrupt(digits, name, 5, seed=3).numpy())
    if name in RANDOM:
        assert not np.array_equal(values, corrupt(digits, name, 5, seed=4).numpy())
    as_uint8 = corrupt(digits.astype("uint8"), name, 2, seed=0)
    assert as_uint8.dtype == tf.uint8 and as_uint8.shape == digits.shape


@pytest.mark.parametrize("name", NAMES)
def test_severity_orders_the_damage(name, distances):
    d = distances[name]
    assert d[0] > 0.5 and d[-1] > 1.15 * d[0], d  # every severity changes the image, 5 clearly more than 1
    for s in range(1, NUM_SEVERITIES):
        if s not in NOT_MONOTONIC.get(name, ()):
            assert d[s] > d[s - 1], (s + 1, d)


def test_single_channel_and_larger_images():
    rng = np.random.default_rng(0)
    grey = tf.image.resize(rng.uniform(0, 255, (2, 8, 8, 1)).astype("float32"), (64, 48)).numpy()
    for name in NAMES:
        out = corrupt(grey, name, 3, seed=0)
        assert out.shape == grey.shape and 0.0 <= float(tf.reduce_min(out)) <= float(tf.reduce_max(out)) <= 255.0


@pytest.mark.parametrize("name", ["gaussian_blur", "defocus_blur", "pixelate", "contrast", "jpeg_compression",
                                  "zoom_in"])
def test_constant_image_is_kept(name):
    grey = np.full((2, 16, 16, 3), 100.0, "float32")
    assert np.abs(corrupt(grey, name, 5).numpy() - grey).max() <= 1.0


def test_identities():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(corruptions._affine(tf.constant(x), zoom=1.0).numpy(), x, atol=1e-3)
    assert float(tf.reduce_max(corrupt(np.zeros_like(x), "shot_noise", 5))) == 0.0  # no light, no photons
    white = np.full_like(x, 255.0)
    assert np.array_equal(corrupt(white, "brightness", 5).numpy(), white)
    # A quarter turn maps the pixel grid onto itself (about the centre (5.5, 5.5)).
    turned = corruptions._affine(tf.constant(x), angle=tf.constant([np.pi / 2] * 2)).numpy()
    np.testing.assert_allclose(turned, np.rot90(x, k=1, axes=(1, 2)), atol=1e-2)


@pytest.mark.parametrize("kwargs, argument", [
    ({"name": "snow"}, "name"), ({"name": 3}, "name"),
    ({"severity": 0}, "severity"), ({"severity": 6}, "severity"), ({"severity": 2.0}, "severity"),
    ({"severity": True}, "severity"), ({"seed": -1}, "seed"),
    ({"images": np.zeros((16, 16, 3), "float32")}, "images"),
    ({"images": np.zeros((1, 16, 16, 4), "float32")}, "images"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    call = {"images": np.zeros((1, 16, 16, 3), "float32"), "name": "fog", "severity": 1, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=f"`{argument}`"):
        corrupt(**call)
