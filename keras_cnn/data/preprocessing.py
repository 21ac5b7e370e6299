"""Per-image preprocessing as the papers do it (TensorFlow ops, for `tf.data`).

- ImageNet training: Inception-style random-resized crop (Szegedy et al. 2015, "Going deeper
  with convolutions"; the torchvision/timm `RandomResizedCrop`: area 8%-100% of the image,
  aspect ratio 3/4-4/3) resized to `size`, then a random horizontal flip.
- ImageNet evaluation: resize the shorter side to `size / 0.875` and take the central
  `size` x `size` crop (256 -> 224 at the usual size).
- CIFAR / SVHN training: zero-pad 4 pixels on each side, random `H x W` crop, random flip
  (He et al. 2016, "Deep residual learning", Sec. 4.2).

Every random op is stateless: it takes a `seed` (a shape-[2] integer tensor, a Python int or
`None` for a fresh random seed), so a pipeline that passes per-example seeds is reproducible.
Images come in as uint8 or float RGB and leave as float32 RGB in [0, 255] (the models
normalise inside; see the README's preprocessing contract).
"""

import tensorflow as tf

from keras_cnn.validation import check_choice, check_positive_int

__all__ = [
    "KINDS",
    "center_crop_resize",
    "inception_crop",
    "inception_crop_box",
    "pad_crop",
    "preprocess_eval",
    "preprocess_train",
    "random_flip",
]

KINDS = ("cifar", "imagenet", "none")
DEFAULT_CROP_FRACTION = 0.875
INCEPTION_SCALE = (0.08, 1.0)
INCEPTION_RATIO = (3 / 4, 4 / 3)
# TF's sample_distorted_bounding_box tries this many boxes before falling back to the whole image.
_MAX_ATTEMPTS = 10
_INT32_MAX = 2**31 - 1


def _seed(seed):
    """A shape-[2] int32/int64 seed tensor for the stateless ops."""
    if seed is None:
        return tf.random.uniform([2], maxval=_INT32_MAX, dtype=tf.int32)
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    return seed


def _split(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(_seed(seed), n))


def _check_range(argument, value):
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ValueError(f"`{argument}` must be a pair (low, high) with 0 < low <= high, received {argument}={value!r}")


def _resize(image, height, width):
    # Bilinear, no antialiasing (the TF reference pipelines); stays inside [0, 255].
    return tf.image.resize(image, (height, width), method="bilinear")


def _to_float(image):
    return tf.cast(image, tf.float32)


def inception_crop_box(image_shape, *, scale=INCEPTION_SCALE, ratio=INCEPTION_RATIO, seed=None):
    """A random crop box with area fraction in `scale` and aspect ratio (w / h) in `ratio`.

    `tf.image.stateless_sample_distorted_bounding_box` with the whole image as the only object
    box; after `_MAX_ATTEMPTS` failed draws it returns the whole image (TF's fallback).

    Args:
        image_shape: `[height, width, channels]` (a tensor or list).
        scale: `(min, max)` fraction of the image area.
        ratio: `(min, max)` aspect ratio width / height.
        seed: Stateless seed (shape-[2] tensor, int, or None).

    Returns:
        `(offset, size)`: int32 `[y, x, 0]` and `[h, w, -1]` as for `tf.slice`.
    """
    _check_range("scale", scale)
    _check_range("ratio", ratio)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=_seed(seed),
        min_object_covered=0.0,
        aspect_ratio_range=tuple(float(r) for r in ratio),
        area_range=tuple(float(s) for s in scale),
        max_attempts=_MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def inception_crop(image, size, scale=INCEPTION_SCALE, ratio=INCEPTION_RATIO, *, seed=None):
    """Inception-style random-resized crop of one image to `size` x `size` (float32).

    Args:
        image: `[H, W, 3]` uint8 or float image.
        size: Output side in pixels.
        scale: `(min, max)` fraction of the image area to keep.
        ratio: `(min, max)` aspect ratio (width / height) of the crop.
        seed: Stateless seed (shape-[2] tensor, int, or None).

    Returns:
        A float32 `[size, size, 3]` image.
    """
    check_positive_int("size", size)
    begin, crop_size = inception_crop_box(tf.shape(image), scale=scale, ratio=ratio, seed=seed)
    return _resize(_to_float(tf.slice(image, begin, crop_size)), size, size)


def center_crop_resize(image, size, crop_fraction=DEFAULT_CROP_FRACTION):
    """Resizes the shorter side to `round(size / crop_fraction)` and takes the central square.

    Args:
        image: `[H, W, 3]` uint8 or float image.
        size: Output side in pixels.
        crop_fraction: `size / resized shorter side` (0.875: 256 -> 224).

    Returns:
        A float32 `[size, size, 3]` image.
    """
    check_positive_int("size", size)
    if isinstance(crop_fraction, bool) or not isinstance(crop_fraction, (int, float)) or not 0 < crop_fraction <= 1:
        raise ValueError(f"`crop_fraction` must be a number in (0, 1], received crop_fraction={crop_fraction!r}")
    resize_to = int(round(size / crop_fraction))
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    factor = resize_to / tf.minimum(height, width)
    new_height = tf.maximum(size, tf.cast(tf.round(height * factor), tf.int32))
    new_width = tf.maximum(size, tf.cast(tf.round(width * factor), tf.int32))
    # Skip the resize when the image already has the target size (exact, and cheaper).
    resized = tf.cond(
        tf.logical_and(tf.equal(new_height, shape[0]), tf.equal(new_width, shape[1])),
        lambda: _to_float(image),
        lambda: _resize(_to_float(image), new_height, new_width),
    )
    top = (new_height - size) // 2
    left = (new_width - size) // 2
    return resized[top:top + size, left:left + size, :]


def pad_crop(image, padding=4, *, seed=None):
    """Zero-pads `padding` pixels on every side and takes a random crop of the original size.

    Args:
        image: `[H, W, C]` image.
        padding: Pixels of zero padding per side.
        seed: Stateless seed (shape-[2] tensor, int, or None).

    Returns:
        The crop, `[H, W, C]`, same dtype as `image`: a copy shifted by up to `padding`
        pixels in each direction with zero borders.
    """
    check_positive_int("padding", padding, minimum=0)
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(padded, shape, seed=_seed(seed))


def random_flip(image, *, seed=None):
    """Flips left-right with probability 1/2 (stateless)."""
    return tf.image.stateless_random_flip_left_right(image, seed=_seed(seed))


def preprocess_train(image, *, size, kind, seed=None):
    """Training preprocessing of one image for a dataset's `kind` (float32 RGB [0, 255]).

    Args:
        image: `[H, W, 3]` uint8 or float image.
        size: Output side in pixels.
        kind: `"imagenet"` (Inception crop + flip), `"cifar"` (resize to `size` if needed, then
            pad-4 crop + flip) or `"none"` (resize only).
        seed: Stateless seed (shape-[2] tensor, int, or None).

    Returns:
        A float32 `[size, size, 3]` image.
    """
    check_choice("kind", kind, KINDS)
    check_positive_int("size", size)
    crop_seed, flip_seed = _split(seed, 2)
    channels = image.shape[-1]
    if kind == "imagenet":
        out = random_flip(inception_crop(image, size, seed=crop_seed), seed=flip_seed)
    else:
        out = _resize_if_needed(image, size)
        if kind == "cifar":
            out = random_flip(pad_crop(out, 4, seed=crop_seed), seed=flip_seed)
    # Dynamic crop boxes lose the static channel count, which batch-level layers (RandAugment)
    # need; the input's is the output's.
    return tf.ensure_shape(out, [size, size, channels])


def preprocess_eval(image, *, size, kind, crop_fraction=DEFAULT_CROP_FRACTION):
    """Deterministic evaluation preprocessing of one image (float32 RGB [0, 255]).

    Args:
        image: `[H, W, 3]` uint8 or float image.
        size: Output side in pixels.
        kind: `"imagenet"` (resize to `size / crop_fraction` + center crop), `"cifar"` or
            `"none"` (resize to `size` if needed).
        crop_fraction: See `center_crop_resize` (ImageNet only).

    Returns:
        A float32 `[size, size, 3]` image.
    """
    check_choice("kind", kind, KINDS)
    check_positive_int("size", size)
    channels = image.shape[-1]
    if kind == "imagenet":
        out = center_crop_resize(image, size, crop_fraction)
    else:
        out = _resize_if_needed(image, size)
    return tf.ensure_shape(out, [size, size, channels])


def _resize_if_needed(image, size):
    image = _to_float(image)
    if image.shape[0] == size and image.shape[1] == size:
        return image
    out = _resize(image, size, size)
    return tf.ensure_shape(out, [size, size, None])
