"""keras_cnn.data.randaugment.RandAugment against the released reference code's ops and ranges
(tensorflow/tpu autoaugment.py `distort_image_with_randaugment`), measured on the outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from keras_cnn import data
from keras_cnn.data.randaugment import REFERENCE_OPS, RandAugment

SIZE = 64


def _blank(batch, size=SIZE):
    return np.zeros((batch, size, size, 3), np.float32)


def _add_square(images, row, col, value=255.0, half=1):
    images[:, row - half:row + half + 1, col - half:col + half + 1] = value
    return images


def _centroid(image, threshold=200.0, rows=slice(None)):
    """(row, col) centroid of the bright pixels in channel 0 (background 0, fill 128)."""
    mask = np.zeros(image.shape[:2], bool)
    mask[rows] = image[rows, :, 0] > threshold
    r, c = np.nonzero(mask)
    assert len(r) > 0, "the dot vanished"
    return r.mean(), c.mean()


def _augment(images, **kwargs):
    return np.asarray(RandAugment(**kwargs)(images, training=True))


# --------------------------------------------------------------------------------------------- geometric ops


def test_rotate_m9_is_27_degrees_about_the_centre_with_random_sign():
    size = SIZE + 1  # odd: the rotation centre (size - 1) / 2 = 32 is a pixel
    centre = (size - 1) // 2
    images = _add_square(_blank(32, size), centre, centre + 26, half=2)  # 26 px right of the centre
    out = _augment(images, num_ops=1, magnitude=9, ops=("Rotate",), seed=0)
    angles, radii = [], []
    for image in out:
        r, c = _centroid(image)
        angles.append(np.degrees(np.arctan2(-(r - centre), c - centre)))
        radii.append(np.hypot(r - centre, c - centre))
    angles = np.array(angles)
    assert np.all(np.abs(np.abs(angles) - 27.0) < 1.5), angles  # 9 / 10 x 30 degrees, never more
    assert (angles > 0).any() and (angles < 0).any()
    assert np.allclose(radii, 26.0, atol=1.0)  # about the image centre
    # Corners uncovered by the rotation take the reference's gray fill.
    assert np.all(out[:, 0, 0] == 128.0)


def _two_blob_orientation(image):
    """Orientation (degrees, mod 180) of the axis through two bright blobs, or None when an op
    hid them (invert, solarize, cutout, a bright fill after equalize / contrast)."""
    r, c = np.nonzero(image[..., 0] > 160)
    if not 40 <= len(r) <= 70:
        return None
    points = np.stack([c - c.mean(), -(r - r.mean())])
    _, vectors = np.linalg.eigh(points @ points.T)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    return (angle + 90) % 180 - 90


@pytest.mark.parametrize("num_ops, bound", [(1, 28.5), (2, 55.5)])
def test_augment_layers_randaugment_rotates_at_most_27_degrees_per_op(num_ops, bound):
    # Two blobs on a horizontal axis: the axis angle ignores translations, rotations turn it by
    # +-27 degrees per op at M = 9 (N = 2 may draw Rotate twice), shears by atan(0.27) = 15.
    # Keras' RandAugment(factor=0.9) rotates by up to 324 degrees.
    images = _blank(96)
    for col in (12, 51):
        _add_square(images, 31, col, value=200.0, half=2)
    layer = data.augment_layers(randaugment=(num_ops, 9), seed=0)[0]
    angles = [_two_blob_orientation(image) for image in np.asarray(layer(images, training=True))]
    angles = np.abs([a for a in angles if a is not None])
    assert len(angles) > 48
    assert angles.max() <= bound, np.sort(angles)[-5:]
    assert np.any(np.abs(angles - 27.0) < 1.5)  # some images were rotated


@pytest.mark.parametrize("op, axis", [("TranslateX", 1), ("TranslateY", 0)])
def test_translate_m9_shifts_by_100_of_224_of_the_side(op, axis):
    images = _add_square(_blank(24), SIZE // 2, SIZE // 2)
    out = _augment(images, num_ops=1, magnitude=9, ops=(op,), seed=1)
    shifts = np.array([np.subtract(_centroid(image), SIZE // 2) for image in out])
    expected = 0.9 * 100 / 224 * SIZE  # 25.7 px
    assert np.allclose(np.abs(shifts[:, axis]), expected, atol=1.0), shifts
    assert np.allclose(shifts[:, 1 - axis], 0.0)
    assert (shifts[:, axis] > 0).any() and (shifts[:, axis] < 0).any()


@pytest.mark.parametrize("op", ["ShearX", "ShearY"])
def test_shear_m9_is_0_27_about_the_top_left_corner(op):
    # Dots at distance 16 and 48 from the axis the shear keeps fixed (the reference shears
    # about the origin): they move by 0.27 x 16 = 4.3 and 0.27 x 48 = 13 px along the other axis.
    images = _blank(24)
    for d in (16, 48):
        if op == "ShearX":
            _add_square(images, d, SIZE // 2)
        else:
            _add_square(images, SIZE // 2, d)
    out = _augment(images, num_ops=1, magnitude=9, ops=(op,), seed=2)
    signs = []
    for image in out:
        if op == "ShearX":
            moves = [_centroid(image, rows=slice(d - 4, d + 5))[1] - SIZE // 2 for d in (16, 48)]
        else:
            moves = [_centroid(image.transpose(1, 0, 2), rows=slice(d - 4, d + 5))[1] - SIZE // 2
                     for d in (16, 48)]
        assert np.allclose(np.abs(moves), [0.27 * 16, 0.27 * 48], atol=1.0), moves
        assert np.sign(moves[0]) == np.sign(moves[1])
        signs.append(np.sign(moves[1]))
    assert set(signs) == {-1.0, 1.0}


def test_cutout_box_is_2_pad_wide_gray_and_m0_does_nothing():
    out = _augment(_blank(32), num_ops=1, magnitude=9, ops=("Cutout",), seed=3)
    pad = int(0.9 * 40 / 224 * SIZE)  # 10 px at 64 (40 px at 224)
    full = 0
    for image in out:
        rows, cols = np.nonzero(image[..., 0])
        assert len(rows) > 0 and np.all(image[rows, cols] == 128.0)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == height * width and height <= 2 * pad and width <= 2 * pad  # one clipped box
        full += height == width == 2 * pad
    assert full > 0
    assert np.array_equal(_augment(_blank(4), num_ops=1, magnitude=0, ops=("Cutout",), seed=3), _blank(4))


# --------------------------------------------------------------------------------------------- op choice / seeds


def test_each_image_draws_its_own_op_and_the_seed_reproduces():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 24, 3)).astype(np.float32)
    batch = np.repeat(image[None], 64, axis=0)
    out = _augment(batch, num_ops=1, magnitude=9, seed=4)
    recognised = {
        "Invert": 255.0 - image,
        "Solarize": np.where(image < 230, image, 255.0 - image),
        "Posterize": np.floor(image / 32) * 32,
        "SolarizeAdd": np.where(image < 128, np.minimum(image + 99, 255), image),
        "Brightness": np.minimum(image * 1.72, 255.0),
    }
    found = {name for o in out for name, expected in recognised.items() if np.allclose(o, expected, atol=1e-3)}
    filled = sum(np.mean(o == 128.0) > 0.05 for o in out)  # geometric ops or Cutout
    # Keras' layer draws one op for the whole batch: one kind at most.
    assert len(found) >= 3 and filled > 0, (found, filled)
    assert len({o.tobytes() for o in out}) >= 20
    assert np.array_equal(out, _augment(batch, num_ops=1, magnitude=9, seed=4))
    assert not np.array_equal(out, _augment(batch, num_ops=1, magnitude=9, seed=5))
    layer = RandAugment(num_ops=2, magnitude=9, seed=4)
    assert not np.array_equal(layer(batch), layer(batch))  # the stream advances between calls


# --------------------------------------------------------------------------------------------- pixel ops


RAMP = np.repeat(np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1), 3, axis=-1)


@pytest.mark.parametrize("magnitude, shift, threshold, addition",
                         [(0, 7, 0, 0), (5, 6, 128, 55), (9, 5, 230, 99), (10, 4, 256, 110)])
def test_posterize_solarize_solarize_add_arguments(magnitude, shift, threshold, addition):
    # Posterize keeps int(M/10 x 4) bits; 0 bits is a shift of 8, which TF clamps to 7.
    def run(op):
        return _augment(RAMP, num_ops=1, magnitude=magnitude, ops=(op,), seed=0)

    levels = RAMP.astype(np.int64)
    assert np.array_equal(run("Posterize"), ((levels >> shift) << shift).astype(np.float32))
    assert np.array_equal(run("Solarize"), np.where(RAMP < threshold, RAMP, 255 - RAMP))
    assert np.array_equal(run("SolarizeAdd"), np.where(RAMP < 128, np.minimum(RAMP + addition, 255), RAMP))


@pytest.mark.parametrize("magnitude, factor", [(0, 0.1), (5, 1.0), (9, 1.72), (10, 1.9)])
def test_enhance_ops_blend_with_factor_m_times_0_18_plus_0_1(magnitude, factor):
    def run(op, images):
        return _augment(images, num_ops=1, magnitude=magnitude, ops=(op,), seed=0)

    color = np.broadcast_to(np.array([200.0, 100.0, 50.0], np.float32), (1, 8, 8, 3)).copy()
    gray = 0.2989 * 200 + 0.5870 * 100 + 0.1140 * 50  # tf.image.rgb_to_grayscale weights
    assert np.allclose(run("Brightness", color), np.clip(color * factor, 0, 255), atol=1e-3)
    assert np.allclose(run("Color", color), np.clip(gray + factor * (color - gray), 0, 255), atol=1e-3)
    halves = np.zeros((1, 8, 8, 3), np.float32)
    halves[:, :, 4:] = 100.0
    mean = 0.5 * 100 * (0.2989 + 0.5870 + 0.1140)  # mean grayscale value, PIL's Contrast target
    assert np.allclose(run("Contrast", halves), np.clip(mean + factor * (halves - mean), 0, 255), atol=1e-3)
    assert np.allclose(run("Sharpness", color), color, atol=1e-3)  # a flat image has nothing to sharpen
    if factor == 1.0:
        for op in ("Brightness", "Color", "Contrast", "Sharpness"):
            assert np.array_equal(run(op, RAMP), RAMP)


def test_sharpness_blends_with_the_smooth_filter_inside_the_border():
    image = np.zeros((1, 5, 5, 3), np.float32)
    image[:, 2, 2] = 130.0
    out = _augment(image, num_ops=1, magnitude=0, ops=("Sharpness",), seed=0)  # factor 0.1
    # SMOOTH at the centre: 5 x 130 / 13 = 50; its 4-neighbours inside: 130 / 13 = 10.
    assert out[0, 2, 2, 0] == pytest.approx(50 + 0.1 * (130 - 50), abs=1e-3)
    assert out[0, 1, 2, 0] == pytest.approx(10 - 0.1 * 10, abs=1e-3)
    assert np.all(out[0, 0] == 0) and np.all(out[0, :, 0] == 0)  # the border keeps its values


def test_equalize_and_autocontrast_hand_computed():
    image = np.zeros((1, 32, 32, 3), np.float32)
    image[0, :8, :, 0], image[0, 8:16, :, 0], image[0, 16:, :, 0] = 0, 64, 200
    image[0, :, :, 1] = 77
    image[0, :24, :, 2], image[0, 24:, :, 2] = 10, 20
    out = _augment(image, num_ops=1, magnitude=5, ops=("Equalize",), seed=0)
    # Channel 0: 256 / 256 / 512 pixels, step (1024 - 512) // 255 = 2, lut[v] = (cumsum + 1) // 2.
    assert np.array_equal(np.unique(out[0, :8, :, 0]), [0]) and np.array_equal(np.unique(out[0, 8:16, :, 0]), [128])
    assert np.array_equal(np.unique(out[0, 16:, :, 0]), [255])
    assert np.array_equal(out[0, :, :, 1], image[0, :, :, 1])  # one level: step 0, unchanged
    # Channel 2: 768 / 256 pixels, step 768 // 255 = 3: 10 -> 0, 20 -> (768 + 1) // 3 = 256 -> 255.
    assert np.array_equal(np.unique(out[0, :24, :, 2]), [0]) and np.array_equal(np.unique(out[0, 24:, :, 2]), [255])

    image = np.full((1, 4, 4, 3), 90.0, np.float32)
    image[0, :2, :, 0], image[0, 2:, :, 0] = 50, 150
    image[0, 0, 0, 0] = 100
    out = _augment(image, num_ops=1, magnitude=5, ops=("AutoContrast",), seed=0)
    assert out[0, 0, 0, 0] == pytest.approx(127.5) and out[0, 0, 1, 0] == 0 and out[0, 3, 3, 0] == 255
    assert np.all(out[..., 1:] == 90.0)  # constant channels stay


def test_equalize_and_autocontrast_match_pil():
    rng = np.random.default_rng(1)
    images = np.concatenate([rng.integers(0, 256, (2, 20, 20, 3)), rng.integers(60, 90, (2, 20, 20, 3))])
    images = images.astype(np.float32)
    for op, pil_op in (("Equalize", ImageOps.equalize), ("AutoContrast", ImageOps.autocontrast)):
        out = _augment(images, num_ops=1, magnitude=5, ops=(op,), seed=0)
        for image, result in zip(images, out):
            expected = np.asarray(pil_op(Image.fromarray(image.astype(np.uint8))), np.float32)
            assert np.array_equal(np.floor(result), expected), op  # PIL truncates AutoContrast's scale


# --------------------------------------------------------------------------------------------- pipeline / config


def test_runs_in_tf_data_and_keeps_dtype_shape_and_range():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (12, 28, 28, 3)).astype(np.uint8)
    layer = RandAugment(num_ops=2, magnitude=9, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).map(lambda x: layer(x, training=True))
    batches = [np.asarray(b) for b in dataset]
    assert [b.shape for b in batches] == [(4, 28, 28, 3)] * 3
    assert all(b.dtype == np.float32 and b.min() >= 0 and b.max() <= 255 for b in batches)
    assert not np.array_equal(np.concatenate(batches), images)
    single = layer(images[0].astype(np.float32))
    assert single.shape == (28, 28, 3) and single.dtype == tf.float32
    assert np.array_equal(layer(images, training=False), images.astype(np.float32))
    # Other value ranges are mapped to the reference's 0-255 and back.
    unit = images.astype(np.float32) / 255.0
    inverted = _augment(unit, num_ops=1, magnitude=9, ops=("Invert",), value_range=(0, 1), seed=0)
    assert np.allclose(inverted, 1.0 - unit, atol=1e-6)


def test_config_round_trip_and_bad_arguments(tmp_path):
    layer = RandAugment(num_ops=3, magnitude=7.5, ops=("Rotate", "Equalize"), value_range=(0, 1),
                        fill_value=0, seed=11, name="ra")
    config = layer.get_config()
    assert RandAugment.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is RandAugment and restored.get_config() == config
    model = keras.Sequential([keras.Input((16, 16, 3)), RandAugment(num_ops=2, magnitude=9, seed=0)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[0], RandAugment) and loaded.layers[0].magnitude == 9
    assert RandAugment(1, 9).get_config()["ops"] is None
    for kwargs, message in [({"num_ops": 0}, "num_ops=0"), ({"magnitude": 11}, "magnitude=11"),
                            ({"magnitude": True}, "magnitude=True"),
                            ({"ops": ("Rotate", "Blur")}, "ops=\\('Rotate', 'Blur'\\)"),
                            ({"ops": "Rotate"}, "ops='Rotate'"), ({"ops": ()}, "ops=\\(\\)"),
                            ({"value_range": (1, 0)}, "value_range=\\(1, 0\\)"),
                            ({"fill_value": 300}, "fill_value=300"), ({"seed": -1}, "seed=-1")]:
        with pytest.raises(ValueError, match=message):
            RandAugment(**{"num_ops": 2, "magnitude": 9, **kwargs})
    assert len(REFERENCE_OPS) == 16
