"""Colour augmentation of the Bag-of-Tricks baseline: `ColorJitter` and `PCALighting`.

He et al. 2019, "Bag of Tricks for Image Classification with Convolutional Neural Networks",
Sec. 2.1, baseline training: "Scale hue, saturation, and brightness with coefficients uniformly
drawn from [0.6, 1.4]. Add PCA noise with a coefficient sampled from a normal distribution
N(0, 0.1)." The authors' released code (GluonCV `scripts/classification/imagenet/
train_imagenet.py`) runs MXNet's `transforms.RandomColorJitter(brightness=0.4, contrast=0.4,
saturation=0.4)` then `transforms.RandomLighting(0.1)` on each decoded uint8 image after the
crop and flip. These layers follow MXNet's definitions (the C++ ops `random_color_jitter` and
`random_lighting` of `src/operator/image/image_random-inl.h`, which the Python augmenters of
`mxnet/image/image.py` match), with per-image random factors:

- brightness: `x * a`, a = 1 + U(-b, b): multiplicative. (Keras' `RandomBrightness` *adds* a
  random delta instead, which is why these layers exist.)
- contrast: `a * x + (1 - a) * m`, m the image's mean grey (grey = 0.299 R + 0.587 G + 0.114 B).
- saturation: `a * x + (1 - a) * g`, g each pixel's grey.
- hue: the hue (HSV/HLS, the same angle) turned by U(-h, h) of a full turn.
- The enabled jitters run in a random order drawn per image (MXNet shuffles the four).
- lighting (AlexNet's PCA noise): every pixel of an image gets `eigvec @ (alpha * eigval)`,
  alpha ~ N(0, alphastd) per image and eigen-direction, with the ImageNet RGB eigenvalues and
  eigenvectors in the 0-255 scale.

Clipping: MXNet's ops end each step with `saturate_cast` to the input dtype, which for the uint8
images of the GluonCV recipe clips to [0, 255] (and rounds) after every jitter and after the
lighting; on float inputs they do not clip, nor do `mxnet.image`'s Python augmenters. Here every
step clips to `value_range` (the uint8 behaviour, without the rounding), so outputs honour the
pipeline's [0, 255] contract.

One deliberate difference: MXNet's C++ saturation op computes its per-pixel "grey" with
`gray = input[l*3 + c] * coef[c]` in the channel loop (`=` where `+=` was meant), i.e. 0.114 B;
we use the full luma, as MXNet's Python `SaturationJitterAug` and contrast op do.

Grey images replicated to RGB (digits, Fashion-MNIST) are valid inputs: brightness and contrast
act as on colour images, saturation is then a no-op (every pixel already equals its grey), hue
too (grey has no hue), and the lighting offset, not being grey, tints them slightly.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_cnn.validation import check_positive_int

__all__ = ["GREY_COEFFICIENTS", "IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "ColorJitter", "PCALighting"]

# ITU-R BT.601 luma, MXNet's `coef` for contrast and saturation (sums to 1: grey is a fixed point).
GREY_COEFFICIENTS = (0.299, 0.587, 0.114)
# The RGB covariance of ImageNet pixels in the 0-255 scale (AlexNet's "fancy PCA"), as MXNet's
# `CreateAugmenter` and `random_lighting` give them (fb.resnet.torch's 0.2175, ... are / 255).
IMAGENET_EIGVAL = (55.46, 4.794, 1.148)
# Rows are R, G, B; column j is the eigenvector of eigenvalue j.
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# MXNet's `RandomColorJitter` order: brightness, contrast, saturation, hue (then shuffled).
_JITTERS = ("brightness", "contrast", "saturation", "hue")
_MAX_HUE = 0.5  # half a turn either way covers every hue
_PIXEL_SCALE = 255.0  # the scale of the eigenvalues


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _check_range_number(argument, value, low, high):
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(f"`{argument}` must be a number in [{low}, {high}], received {argument}={value!r}")


def _check_value_range(value_range):
    if (not isinstance(value_range, (list, tuple)) or len(value_range) != 2
            or not all(_is_number(v) for v in value_range) or not value_range[0] < value_range[1]):
        raise ValueError(
            f"`value_range` must be (low, high) numbers with low < high, received value_range={value_range!r}")
    return tuple(value_range)


def _check_seed(seed):
    if seed is not None:
        check_positive_int("seed", seed, minimum=0)


class _PixelAugmentation(keras.layers.Layer):
    """Shared plumbing: value range, seeding, shape checks and the [0, 1] working scale."""

    def __init__(self, value_range, seed, **kwargs):
        # float32 whatever the global policy: HSV conversions and small PCA offsets need it.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.value_range = _check_value_range(value_range)
        _check_seed(seed)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def _augment(self, images, seed):
        raise NotImplementedError

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        if images.shape.rank not in (3, 4) or images.shape[-1] not in (3, None):
            raise ValueError(
                f"{type(self).__name__} expects RGB images [B, H, W, 3] or [H, W, 3], received shape "
                f"{images.shape}")
        x = tf.cast(images, tf.float32)
        if not training:
            return x
        unbatched = images.shape.rank == 3
        if unbatched:
            x = x[None]
        low, high = (float(v) for v in self.value_range)
        # Work on [0, 1] (black = 0), so the factors mean the same for any value range.
        x = tf.clip_by_value((x - low) / (high - low), 0.0, 1.0)
        x = self._augment(x, self.generator.next())
        x = tf.clip_by_value(x * (high - low) + low, low, high)
        return x[0] if unbatched else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range), "seed": self.seed}


def _grey(images):
    """Per-pixel luma `[B, H, W, 1]` of `[B, H, W, 3]` images."""
    return tf.reduce_sum(images * tf.constant(GREY_COEFFICIENTS, tf.float32), axis=-1, keepdims=True)


def _per_image(factors):
    return factors[:, None, None, None]


def _brightness(images, factors):
    return tf.clip_by_value(images * _per_image(factors), 0.0, 1.0)


def _contrast(images, factors):
    mean = tf.reduce_mean(_grey(images), axis=[1, 2, 3], keepdims=True)
    factors = _per_image(factors)
    return tf.clip_by_value(images * factors + (1.0 - factors) * mean, 0.0, 1.0)


def _saturation(images, factors):
    factors = _per_image(factors)
    return tf.clip_by_value(images * factors + (1.0 - factors) * _grey(images), 0.0, 1.0)


def _hue(images, turns):
    hsv = tf.image.rgb_to_hsv(images)
    hue = tf.math.floormod(hsv[..., 0] + turns[:, None, None], 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1)), 0.0, 1.0)


_JITTER_OPS = {"brightness": _brightness, "contrast": _contrast, "saturation": _saturation, "hue": _hue}


@keras.saving.register_keras_serializable(package="keras_cnn")
class ColorJitter(_PixelAugmentation):
    """GluonCV's colour jitter: random brightness, contrast, saturation and hue, random order.

    Per image, each enabled jitter draws its own factor (brightness, contrast, saturation:
    `a = 1 + U(-s, s)`; hue: `U(-hue, hue)` turns) and the enabled jitters are applied in an
    order drawn per image, each followed by a clip to the value range (see the module
    docstring for the formulas and how they match MXNet). The Bag-of-Tricks baseline is the
    default, `ColorJitter(0.4, 0.4, 0.4)`: factors in [0.6, 1.4], no hue jitter.

    Args:
        brightness: `b` in [0, 1]: pixels are multiplied by `1 + U(-b, b)`. 0 disables it.
        contrast: `c` in [0, 1]: blend with the image's mean grey, factor `1 + U(-c, c)`.
        saturation: `s` in [0, 1]: blend with each pixel's grey, factor `1 + U(-s, s)`.
        hue: `h` in [0, 0.5]: hue turned by `U(-h, h)` of a full turn (MXNet's `hue`). 0 (the
            recipe's) disables it.
        value_range: `(low, high)` pixel range of inputs and outputs; brightness scales
            around `low`.
        seed: Integer seed of the layer's `keras.random.SeedGenerator`, or `None`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Call arguments:
        images: `[B, H, W, 3]` or `[H, W, 3]` RGB images in `value_range` (any real dtype).
        training: When false the images pass through unchanged (cast to float32).

    Returns:
        float32 images of the input shape, clipped to `value_range`.
    """

    def __init__(self, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, value_range=(0, 255), seed=None,
                 **kwargs):
        for argument, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            # A factor 1 - s must stay >= 0: a negative brightness would invert the image.
            _check_range_number(argument, value, 0, 1)
        _check_range_number("hue", hue, 0, _MAX_HUE)
        super().__init__(value_range, seed, **kwargs)
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self._enabled = tuple(name for name in _JITTERS if getattr(self, name) > 0)

    def _augment(self, images, seed):
        count = len(self._enabled)
        if not count:
            return images
        batch = tf.shape(images)[:1]
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, count + 1))
        factors = []
        for name, op_seed in zip(self._enabled, seeds[:count], strict=True):
            strength = float(getattr(self, name))
            center = 0.0 if name == "hue" else 1.0
            factors.append(tf.random.stateless_uniform(
                batch, op_seed, minval=center - strength, maxval=center + strength))
        # A random permutation per image: the jitter at position k is order[:, k].
        order = tf.argsort(tf.random.stateless_uniform(tf.concat([batch, [count]], 0), seeds[-1]), axis=1)
        for position in range(count):
            # Every image takes the jitter of its own order at this position; computing all of
            # them on the batch and selecting keeps the graph static (cheap, pointwise ops).
            step = images
            for index, (name, factor) in enumerate(zip(self._enabled, factors, strict=True)):
                chosen = tf.equal(order[:, position], index)[:, None, None, None]
                step = tf.where(chosen, _JITTER_OPS[name](images, factor), step)
            images = step
        return images

    def get_config(self):
        return {**super().get_config(), "brightness": self.brightness, "contrast": self.contrast,
                "saturation": self.saturation, "hue": self.hue}


@keras.saving.register_keras_serializable(package="keras_cnn")
class PCALighting(_PixelAugmentation):
    """AlexNet-style PCA lighting noise, as GluonCV's `RandomLighting(alphastd)`.

    Per image, `alpha ~ N(0, alphastd)` is drawn for each eigen-direction and the constant RGB
    offset `eigvec @ (alpha * eigval)` (0-255 scale, rescaled to `value_range`) is added to
    every pixel, then clipped to the value range. With ImageNet's statistics and
    `alphastd=0.1` (the Bag-of-Tricks baseline) the offset's standard deviation along the
    principal direction is 5.5 levels of 255.

    Args:
        alphastd: Standard deviation of the per-image coefficients, >= 0 (0: no noise).
        eigval: The 3 eigenvalues (>= 0) of the RGB covariance, 0-255 scale.
        eigvec: 3x3 matrix whose column j is the eigenvector of `eigval[j]` (rows R, G, B).
        value_range: `(low, high)` pixel range of inputs and outputs.
        seed: Integer seed of the layer's `keras.random.SeedGenerator`, or `None`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Call arguments:
        images: `[B, H, W, 3]` or `[H, W, 3]` RGB images in `value_range` (any real dtype).
        training: When false the images pass through unchanged (cast to float32).

    Returns:
        float32 images of the input shape, clipped to `value_range`.
    """

    def __init__(self, alphastd=0.1, eigval=IMAGENET_EIGVAL, eigvec=IMAGENET_EIGVEC, value_range=(0, 255),
                 seed=None, **kwargs):
        if not _is_number(alphastd) or alphastd < 0:
            raise ValueError(f"`alphastd` must be a number >= 0, received alphastd={alphastd!r}")
        values = _as_matrix(eigval)
        if values is None or values.shape != (3,) or (values < 0).any():
            raise ValueError(f"`eigval` must be 3 numbers >= 0, received eigval={eigval!r}")
        vectors = _as_matrix(eigvec)
        if vectors is None or vectors.shape != (3, 3):
            raise ValueError(f"`eigvec` must be a 3x3 matrix of numbers, received eigvec={eigvec!r}")
        super().__init__(value_range, seed, **kwargs)
        self.alphastd = alphastd
        self.eigval = tuple(float(v) for v in values)
        self.eigvec = tuple(tuple(float(v) for v in row) for row in vectors)

    def _augment(self, images, seed):
        alpha = tf.random.stateless_normal(tf.stack([tf.shape(images)[0], 3]), seed, stddev=float(self.alphastd))
        # offset[b, i] = sum_j eigvec[i, j] * alpha[b, j] * eigval[j]  (MXNet: eigvec * alpha @ eigval).
        offsets = tf.matmul(alpha * tf.constant(self.eigval, tf.float32), tf.constant(self.eigvec, tf.float32),
                            transpose_b=True)
        return tf.clip_by_value(images + offsets[:, None, None, :] / _PIXEL_SCALE, 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "alphastd": self.alphastd, "eigval": list(self.eigval),
                "eigvec": [list(row) for row in self.eigvec]}


def _as_matrix(value):
    """`value` as a finite float64 array, or None when it is not numbers (bools included)."""
    if isinstance(value, (str, bytes)) or value is None:
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        return None
    return array.astype("float64")
