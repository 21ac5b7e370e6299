"""keras_cnn.data.color: GluonCV's ColorJitter and PCA lighting, checked by what each jitter must
leave invariant (and must change)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn import data
from keras_cnn.data.color import GREY_COEFFICIENTS

EIGVEC = np.array(data.IMAGENET_EIGVEC)
EIGVAL = np.array(data.IMAGENET_EIGVAL)


def _grey(images):
    return (np.asarray(images, np.float64) * np.array(GREY_COEFFICIENTS)).sum(-1)


@pytest.fixture
def images(rng):
    # Mid-range colour images: a 1.4x factor keeps every pixel inside [0, 255] (no clipping).
    return rng.uniform(40.0, 175.0, size=(32, 6, 6, 3)).astype(np.float32)


def test_brightness_multiplies_each_image_by_one_factor(images):
    out = data.ColorJitter(brightness=0.4, contrast=0, saturation=0, seed=0)(images).numpy()
    assert out.dtype == np.float32 and out.shape == images.shape
    ratios = (out / images).reshape(len(images), -1)
    # One factor per image (multiplicative, not an added delta) ...
    np.testing.assert_allclose(ratios, ratios[:, :1] * np.ones_like(ratios), rtol=1e-5)
    factors = ratios[:, 0]
    # ... within the paper's [0.6, 1.4], and different across the batch.
    assert factors.min() >= 0.6 - 1e-6 and factors.max() <= 1.4 + 1e-6
    assert factors.std() > 0.1 and len(np.unique(np.round(factors, 4))) == len(images)


def test_brightness_clips_to_the_value_range():
    white = np.full((16, 2, 2, 3), 250.0, np.float32)
    out = data.ColorJitter(brightness=0.4, contrast=0, saturation=0, seed=0)(white).numpy()
    assert out.max() == 255.0 and (out == 255.0).any() and (out < 250.0).any()


def test_contrast_blends_with_the_mean_grey(images):
    out = data.ColorJitter(brightness=0, contrast=0.4, saturation=0, seed=1)(images).numpy()
    grey_in, grey_out = _grey(images), _grey(out)
    # The image's mean grey is the fixed point ...
    np.testing.assert_allclose(grey_out.mean((1, 2)), grey_in.mean((1, 2)), atol=1e-3)
    # ... and every pixel and channel moves towards that one grey level by one factor a:
    # out - a * x = (1 - a) * mean is the same constant for all pixels and channels.
    deviation_in = grey_in - grey_in.mean((1, 2), keepdims=True)
    deviation_out = grey_out - grey_out.mean((1, 2), keepdims=True)
    factors = (deviation_out * deviation_in).sum((1, 2)) / (deviation_in**2).sum((1, 2))
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4 and factors.std() > 0.1
    residual = out - factors[:, None, None, None] * images
    np.testing.assert_allclose(residual, (1 - factors[:, None, None, None]) * grey_in.mean((1, 2))[:, None, None, None]
                               * np.ones_like(residual), atol=2e-3)


def test_saturation_blends_with_each_pixels_grey(images):
    out = data.ColorJitter(brightness=0, contrast=0, saturation=0.4, seed=2)(images).numpy()
    grey_in = _grey(images)
    np.testing.assert_allclose(_grey(out), grey_in, atol=1e-3)  # per-pixel grey preserved
    # Colour differences from grey are scaled by one factor per image.
    chroma_in = images - grey_in[..., None]
    chroma_out = out - grey_in[..., None]
    factors = (chroma_out * chroma_in).sum((1, 2, 3)) / (chroma_in**2).sum((1, 2, 3))
    np.testing.assert_allclose(chroma_out, factors[:, None, None, None] * chroma_in, atol=2e-3)
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4 and factors.std() > 0.1


def test_grey_images_are_fixed_by_saturation_and_hue(images):
    grey = np.repeat(images[..., :1], 3, axis=-1)  # grey replicated to RGB (digits, Fashion-MNIST)
    for layer in (data.ColorJitter(0, 0, 0.4, seed=0), data.ColorJitter(0, 0, 0, hue=0.5, seed=0)):
        np.testing.assert_allclose(layer(grey).numpy(), grey, atol=1e-3)
    # Brightness and contrast still act on them, and keep them grey.
    out = data.ColorJitter(0.4, 0.4, 0, seed=0)(grey).numpy()
    assert np.abs(out - grey).max() > 1.0
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-3)


def test_hue_turns_colours_keeping_each_pixels_extremes(images):
    out = data.ColorJitter(0, 0, 0, hue=0.5, seed=3)(images).numpy()
    # A hue rotation keeps max and min of the channels (HSV value, HLS lightness and chroma).
    np.testing.assert_allclose(out.max(-1), images.max(-1), atol=2e-3)
    np.testing.assert_allclose(out.min(-1), images.min(-1), atol=2e-3)
    assert np.abs(out - images).max() > 10.0


def test_default_is_the_bag_of_tricks_jitter(images):
    layer = data.ColorJitter()
    assert (layer.brightness, layer.contrast, layer.saturation, layer.hue) == (0.4, 0.4, 0.4, 0.0)
    assert layer.value_range == (0, 255)
    out = layer(images).numpy()
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 255.0 and np.abs(out - images).max() > 1.0


def test_value_range_is_only_a_scale(images):
    in_255 = data.ColorJitter(0.4, 0.4, 0.4, hue=0.1, seed=7)(images).numpy()
    in_unit = data.ColorJitter(0.4, 0.4, 0.4, hue=0.1, value_range=(0, 1), seed=7)(images / 255.0).numpy()
    np.testing.assert_allclose(in_unit * 255.0, in_255, atol=1e-3)
    lighting_255 = data.PCALighting(seed=7)(images).numpy()
    lighting_unit = data.PCALighting(value_range=(0.0, 1.0), seed=7)(images / 255.0).numpy()
    np.testing.assert_allclose(lighting_unit * 255.0, lighting_255, atol=1e-3)


def test_lighting_adds_the_pca_offset_with_the_expected_spread():
    count = 4000
    grey = np.full((count, 2, 2, 3), 128.0, np.float32)
    out = data.PCALighting(alphastd=0.1, seed=0)(grey).numpy()
    offsets = (out - grey).reshape(count, -1, 3)
    # One constant RGB offset per image.
    np.testing.assert_allclose(offsets, offsets[:, :1, :] * np.ones_like(offsets), atol=1e-4)
    offsets = offsets[:, 0, :].astype(np.float64)
    # Its coordinates in the eigenvector basis are alpha_j * eigval_j, alpha_j ~ N(0, 0.1).
    coordinates = np.linalg.solve(EIGVEC, offsets.T).T
    expected_std = 0.1 * EIGVAL
    np.testing.assert_allclose(coordinates.std(0), expected_std, rtol=0.1)
    assert (np.abs(coordinates.mean(0)) < 4 * expected_std / np.sqrt(count)).all()
    correlation = np.corrcoef(coordinates.T)
    assert np.abs(correlation - np.eye(3)).max() < 0.1  # independent draws per eigen-direction


def test_lighting_offsets_lie_in_the_span_of_the_eigenvectors():
    grey = np.full((500, 1, 1, 3), 128.0, np.float32)
    # Only the first eigenvalue non-zero: every offset is a multiple of the first eigenvector.
    layer = data.PCALighting(alphastd=0.1, eigval=(20.0, 0.0, 0.0), seed=1)
    offsets = (layer(grey).numpy() - grey).reshape(-1, 3).astype(np.float64)
    across = np.cross(offsets, EIGVEC[:, 0])
    assert np.abs(across).max() < 1e-3
    np.testing.assert_allclose((offsets @ EIGVEC[:, 0]).std(), 0.1 * 20.0, rtol=0.15)


def test_lighting_clips_and_zero_std_is_identity(images):
    np.testing.assert_allclose(data.PCALighting(alphastd=0.0, seed=0)(images).numpy(), images, atol=1e-4)
    black = np.zeros((64, 2, 2, 3), np.float32)
    out = data.PCALighting(alphastd=0.1, seed=0)(black).numpy()
    assert out.min() == 0.0 and out.max() > 0.0 and out.max() <= 255.0


def test_seeded_layers_reproduce_and_calls_differ(images):
    for make in (lambda seed: data.ColorJitter(0.4, 0.4, 0.4, 0.1, seed=seed), lambda seed: data.PCALighting(seed=seed)):
        first, second = make(5), make(5)
        a, b = first(images).numpy(), second(images).numpy()
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(first(images).numpy(), a)  # the seed stream advances
        assert not np.array_equal(make(6)(images).numpy(), a)


def test_unbatched_images_and_inference_passthrough(images):
    layer = data.ColorJitter(seed=0)
    single = layer(images[0]).numpy()
    assert single.shape == (6, 6, 3) and single.dtype == np.float32
    uint8 = images.astype(np.uint8)
    np.testing.assert_array_equal(layer(uint8, training=False).numpy(), uint8.astype(np.float32))
    np.testing.assert_array_equal(data.PCALighting(seed=0)(uint8, training=False).numpy(), uint8.astype(np.float32))
    with pytest.raises(ValueError, match="RGB images"):
        layer(np.zeros((2, 4, 4, 1), np.float32))


def test_inside_tf_data_map_and_make_pipeline(rng):
    x = rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=12).astype(np.int32)
    jitter, lighting = data.ColorJitter(seed=0), data.PCALighting(seed=1)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4).map(lambda batch: lighting(jitter(batch)))
    batches = [batch.numpy() for batch in dataset]
    assert [b.shape for b in batches] == [(4, 8, 8, 3)] * 3
    assert all(b.dtype == np.float32 and b.min() >= 0 and b.max() <= 255 for b in batches)
    assert not np.array_equal(batches[0], x[:4])
    again = [batch.numpy() for batch in dataset]
    assert not np.array_equal(again[0], batches[0])  # fresh factors on the next epoch

    pipeline = data.make_pipeline((x, y), training=True, batch_size=4, image_size=8, num_classes=10, seed=0,
                                  augment=[data.ColorJitter(seed=2), data.PCALighting(seed=3)])
    images, labels = next(iter(pipeline))
    assert images.shape == (4, 8, 8, 3) and images.dtype == tf.float32 and labels.dtype == tf.int32


def test_config_round_trip_and_saving(tmp_path, images):
    layers = [
        data.ColorJitter(brightness=0.3, contrast=0.2, saturation=0.1, hue=0.05, value_range=(0, 1), seed=4),
        data.PCALighting(alphastd=0.2, eigval=(1.0, 2.0, 3.0), eigvec=np.eye(3).tolist(), seed=5),
    ]
    for layer in layers:
        config = layer.get_config()
        rebuilt = type(layer).from_config(config)
        assert rebuilt.get_config() == config
        revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(revived) is type(layer) and revived.get_config() == config
    assert keras.saving.serialize_keras_object(layers[1])["registered_name"] == "keras_cnn>PCALighting"
    model = keras.Sequential([keras.Input((6, 6, 3)), data.ColorJitter(seed=0), data.PCALighting(seed=1)])
    model.save(tmp_path / "color.keras")
    loaded = keras.saving.load_model(tmp_path / "color.keras")
    assert [type(layer) for layer in loaded.layers] == [data.ColorJitter, data.PCALighting]
    np.testing.assert_array_equal(loaded(images, training=False).numpy(), images)


@pytest.mark.parametrize("kwargs, match", [
    ({"brightness": -0.1}, "`brightness` must be a number in \\[0, 1\\], received brightness=-0.1"),
    ({"contrast": 1.5}, "received contrast=1.5"),
    ({"saturation": True}, "received saturation=True"),
    ({"saturation": "0.4"}, "received saturation='0.4'"),
    ({"hue": 0.6}, "`hue` must be a number in \\[0, 0.5\\], received hue=0.6"),
    ({"brightness": float("nan")}, "received brightness=nan"),
    ({"value_range": (255, 0)}, "received value_range=\\(255, 0\\)"),
    ({"value_range": (0,)}, "received value_range=\\(0,\\)"),
    ({"seed": -1}, "received seed=-1"),
    ({"seed": 1.5}, "received seed=1.5"),
])
def test_color_jitter_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.ColorJitter(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"alphastd": -0.1}, "`alphastd` must be a number >= 0, received alphastd=-0.1"),
    ({"alphastd": None}, "received alphastd=None"),
    ({"eigval": (1.0, 2.0)}, "`eigval` must be 3 numbers >= 0, received eigval=\\(1.0, 2.0\\)"),
    ({"eigval": (-1.0, 2.0, 3.0)}, "received eigval=\\(-1.0, 2.0, 3.0\\)"),
    ({"eigval": "abc"}, "received eigval='abc'"),
    ({"eigvec": [[1, 0], [0, 1]]}, "`eigvec` must be a 3x3 matrix of numbers, received eigvec=\\[\\[1, 0\\], \\[0, 1\\]\\]"),
    ({"value_range": [0, "255"]}, "received value_range=\\[0, '255'\\]"),
    ({"seed": "0"}, "received seed='0'"),
])
def test_pca_lighting_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.PCALighting(**kwargs)
