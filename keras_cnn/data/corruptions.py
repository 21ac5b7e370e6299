"""Common image corruptions at 5 severities, in the spirit of ImageNet-C (TensorFlow ops).

Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR; github.com/hendrycks/robustness): every corruption has 5 severities, a
model's accuracy is averaged over corruptions and severities (mean corruption accuracy), and
its error is normalised by a baseline model's (mCE). This module re-implements the families
that need no external assets (noise, blur, fog, brightness, contrast, JPEG, pixelation) with
`tf.image` / `tf.random` ops, plus the geometric ones of MNIST-C (Mu & Gilmer 2019,
github.com/google-research/mnist-c: rotation, scaling), which suit digits.

Conventions: images are NHWC batches in [0, 255] (the keras_cnn input contract), float or
uint8; the output has the input's shape and dtype and is clipped to [0, 255] (rounded for
integer dtypes). Random corruptions use stateless ops seeded by `seed`, so the same images,
corruption, severity and seed always give the same output. Severity parameters are the rows
of `SEVERITIES` (with their source): ImageNet-C's values where they do not depend on the
resolution; the blurs' pixel sizes follow CIFAR-10-C (the same authors' 32 px version), scaled
by `side / 32` above 32 px and kept below (ImageNet-C's 224 px sizes scaled down, or CIFAR's
scaled below 32 px, would be sub-pixel kernels, i.e. nearly the identity, at 16 px). Pixelation
keeps ImageNet-C's fractions but makes the downsampled sides strictly decreasing (16 px: 9, 8, 6,
4, 3 instead of 9, 8, 6, 4, 4).
These are re-implementations, not the reference code: the fog field is a sum of upsampled
noise octaves instead of diamond-square, the defocus disk is anti-aliased by supersampling,
and rotation / zoom-out fill the uncovered border with 0.

    from keras_cnn.data import corruptions
    foggy = corruptions.corrupt(images, "fog", severity=3, seed=0)
    for name in corruptions.CORRUPTIONS: ...
"""

import dataclasses
import math
import numbers

import numpy as np
import tensorflow as tf

from keras_cnn.validation import check_positive_int

__all__ = ["CORRUPTIONS", "NUM_SEVERITIES", "SEVERITIES", "Severity", "corrupt"]

NUM_SEVERITIES = 5
# The blurs' pixel sizes are given for 32 px images (CIFAR-10-C) and scale with the image side.
REFERENCE_SIDE = 32
_IMAGENET_C = "ImageNet-C (make_imagenet_c.py)"
_CIFAR_C = "CIFAR-10-C (make_cifar_c.py), pixel sizes x max(1, side / 32)"
_MNIST_C = "MNIST-C (Mu & Gilmer 2019)"


@dataclasses.dataclass(frozen=True)
class Severity:
    """The parameters of one corruption at severities 1..5.

    Attributes:
        name: The corruption (a key of `CORRUPTIONS`).
        values: One parameter (or tuple of parameters) per severity, mildest first.
        meaning: What the values are.
        source: Where they come from.
    """

    name: str
    values: tuple
    meaning: str
    source: str


SEVERITIES = {
    row.name: row
    for row in (
        Severity("gaussian_noise", (0.08, 0.12, 0.18, 0.26, 0.38), "noise std, [0, 1] scale", _IMAGENET_C),
        Severity("shot_noise", (60, 25, 12, 5, 3), "photons per unit intensity (Poisson rate x / value)",
                 _IMAGENET_C),
        Severity("gaussian_blur", (0.4, 0.6, 0.7, 0.8, 1.0), "sigma in px at 32 px", _CIFAR_C),
        Severity("defocus_blur", ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
                 "(disk radius, anti-alias sigma) in px at 32 px", _CIFAR_C),
        Severity("fog", ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
                 "(haze strength, fractal decay per octave)", _IMAGENET_C),
        Severity("contrast", (0.4, 0.3, 0.2, 0.1, 0.05), "contrast factor about the image mean", _IMAGENET_C),
        Severity("brightness", (0.1, 0.2, 0.3, 0.4, 0.5), "added to HSV value, [0, 1] scale", _IMAGENET_C),
        Severity("rotation", (0.2, 0.4, 0.6, 0.8, 1.0), "angle in radians, random sign per image", _MNIST_C),
        Severity("zoom_out", (0.9, 0.8, 0.7, 0.6, 0.5), "scale factor about the centre", _MNIST_C + " 'scale'"),
        Severity("zoom_in", (1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5), "scale factor about the centre",
                 "the inverse of zoom_out (ours)"),
        Severity("jpeg_compression", (25, 18, 15, 10, 7), "JPEG quality", _IMAGENET_C),
        Severity("pixelate", (0.6, 0.5, 0.4, 0.3, 0.25), "downsampled side / side (area down, nearest up)",
                 _IMAGENET_C),
    )
}


# --- helpers -------------------------------------------------------------------------------------


def _seed(seed, stream=0):
    return tf.constant([seed, stream], tf.int64)


def _side(x):
    return min(int(x.shape[1]), int(x.shape[2]))


def _depthwise(x, kernel):
    """Convolves every channel with the 2-D `kernel` (odd sides), edges mirrored."""
    kernel = np.asarray(kernel, "float32")
    pad_h, pad_w = kernel.shape[0] // 2, kernel.shape[1] // 2
    channels = int(x.shape[-1])
    # SYMMETRIC padding needs pad <= side; larger kernels are cropped (their tails are ~0).
    if pad_h >= x.shape[1] or pad_w >= x.shape[2]:
        pad_h, pad_w = min(pad_h, int(x.shape[1]) - 1), min(pad_w, int(x.shape[2]) - 1)
        center = kernel.shape[0] // 2, kernel.shape[1] // 2
        kernel = kernel[center[0] - pad_h:center[0] + pad_h + 1, center[1] - pad_w:center[1] + pad_w + 1]
        kernel = kernel / kernel.sum()
    padded = tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="SYMMETRIC")
    filters = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)))
    return tf.nn.depthwise_conv2d(padded, filters, strides=[1, 1, 1, 1], padding="VALID")


def _gaussian_kernel(sigma):
    # skimage's gaussian (ImageNet-C) truncates at 4 sigma.
    radius = max(1, int(math.ceil(4.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype="float64")
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def _disk_kernel(radius, supersample=8):
    """The fraction of each pixel inside a disk of `radius` px (at least the centre pixel)."""
    half = int(math.ceil(radius))
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(-half, half + 1)
    y = (grid[:, None] + offsets[None, :]).reshape(-1)
    inside = (y[:, None] ** 2 + y[None, :] ** 2) <= radius ** 2
    area = inside.reshape(len(grid), supersample, len(grid), supersample).mean(axis=(1, 3))
    area[half, half] = max(area[half, half], 1e-3)  # a sub-pixel disk is still a (sharp) kernel
    return area / area.sum()


def _affine(x, *, angle=None, zoom=None):
    """Rotates by `angle` (radians, one per image) and/or scales by `zoom` about the centre;
    bilinear, uncovered pixels are 0."""
    n, height, width = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2])
    angle = tf.zeros([n]) if angle is None else tf.cast(angle, tf.float32)
    scale = 1.0 if zoom is None else 1.0 / float(zoom)  # output pixel -> input pixel
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # input = R^-1 (output - centre) / zoom + centre, as ImageProjectiveTransform's 8-vector.
    transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                           sin, cos, cy - sin * cx - cos * cy,
                           tf.zeros([n]), tf.zeros([n])], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.constant([height, width], tf.int32),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="CONSTANT")


def _fractal(n, height, width, decay, seed):
    """A [n, H, W, 1] smooth random field in [0, 1]: noise octaves 2x2, 4x4, ... upsampled and
    summed with amplitude decay^(-2k) (the reference's diamond-square squares its `wibble`)."""
    octaves = max(1, int(math.ceil(math.log2(max(height, width)))))
    seeds = tf.random.experimental.stateless_split(seed, octaves)
    field = tf.zeros([n, height, width, 1])
    for k in range(octaves):
        grid = 2 ** (k + 1)
        noise = tf.random.stateless_uniform([n, grid, grid, 1], seeds[k], -1.0, 1.0)
        field += decay ** (-2.0 * k) * tf.image.resize(noise, (height, width), method="bilinear")
    low = tf.reduce_min(field, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(field, axis=[1, 2, 3], keepdims=True)
    return (field - low) / tf.maximum(high - low, 1e-6)


# --- corruptions: float32 [0, 1] in, float32 out (clipped by the wrapper) -----------------------


def _gaussian_noise(x, std, seed):
    return x + std * tf.random.stateless_normal(tf.shape(x), _seed(seed))


def _shot_noise(x, rate, seed):
    return tf.random.stateless_poisson(tf.shape(x), _seed(seed), lam=tf.maximum(x, 0.0) * rate,
                                       dtype=tf.float32) / rate


def _pixel_scale(x):
    # Sizes grow with the side above 32 px; below, sub-pixel kernels would be the identity, so the
    # CIFAR-10-C pixel sizes stay as they are.
    return max(1.0, _side(x) / REFERENCE_SIDE)


def _gaussian_blur(x, sigma, seed):
    return _depthwise(x, _gaussian_kernel(sigma * _pixel_scale(x)))


def _defocus_blur(x, value, seed):
    radius, alias = (v * _pixel_scale(x) for v in value)
    return _depthwise(_depthwise(x, _disk_kernel(radius)), _gaussian_kernel(alias))


def _fog(x, value, seed):
    strength, decay = value
    n, height, width = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2])
    peak = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
    haze = strength * _fractal(n, height, width, decay, _seed(seed))
    # ImageNet-C: add the haze, then scale the brightest clean pixel back to its value.
    return (x + haze) * peak / (peak + strength)


def _contrast(x, factor, seed):
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * factor + mean


def _brightness(x, delta, seed):
    if int(x.shape[-1]) != 3:
        return x + delta
    hsv = tf.image.rgb_to_hsv(x)
    hsv = tf.concat([hsv[..., :2], tf.clip_by_value(hsv[..., 2:] + delta, 0.0, 1.0)], axis=-1)
    return tf.image.hsv_to_rgb(hsv)


def _rotation(x, radians, seed):
    sign = tf.sign(tf.random.stateless_uniform([tf.shape(x)[0]], _seed(seed), -1.0, 1.0))
    return _affine(x, angle=radians * tf.where(sign == 0, 1.0, sign))


def _zoom(x, factor, seed):
    return _affine(x, zoom=factor)


def _jpeg_compression(x, quality, seed):
    as_uint8 = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
    out = tf.map_fn(lambda image: tf.image.adjust_jpeg_quality(image, quality), as_uint8,
                    fn_output_signature=tf.uint8)
    return tf.cast(out, tf.float32) / 255.0


def _pixelate_side(side, severity):
    """The downsampled side at `severity`: ImageNet-C's `int(side * fraction)`, kept strictly
    decreasing over the severities (at 16 px the fractions give 9, 8, 6, 4, 4 -> 9, 8, 6, 4, 3)."""
    out = side
    for fraction in SEVERITIES["pixelate"].values[:severity]:
        out = max(1, min(out - 1, int(side * fraction)))
    return out


def _pixelate(x, fraction, seed):
    severity = SEVERITIES["pixelate"].values.index(fraction) + 1
    height, width = int(x.shape[1]), int(x.shape[2])
    small = tf.image.resize(x, (_pixelate_side(height, severity), _pixelate_side(width, severity)), method="area")
    return tf.image.resize(small, (height, width), method="nearest")


_FUNCTIONS = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "gaussian_blur": _gaussian_blur,
    "defocus_blur": _defocus_blur,
    "fog": _fog,
    "contrast": _contrast,
    "brightness": _brightness,
    "rotation": _rotation,
    "zoom_out": _zoom,
    "zoom_in": _zoom,
    "jpeg_compression": _jpeg_compression,
    "pixelate": _pixelate,
}


def _check_images(images):
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[1] is None or images.shape[2] is None or images.shape[-1] not in (1, 3):
        raise ValueError("`images` must be an NHWC batch with known height and width and 1 or 3 channels, "
                         f"received images with shape {images.shape}")
    if not (images.dtype.is_floating or images.dtype.is_integer):
        raise ValueError(f"`images` must have a float or integer dtype, received images.dtype={images.dtype.name}")
    return images


def corrupt(images, name, severity, seed=0):
    """Applies corruption `name` at `severity` to a batch of [0, 255] images.

    Args:
        images: `[N, H, W, C]` images in [0, 255] (C = 1 or 3), float or integer (a tensor or
            NumPy array).
        name: A key of `CORRUPTIONS`.
        severity: An integer in 1..5 (5 the strongest; the parameters are `SEVERITIES[name]`).
        seed: Integer seed (>= 0) of the random corruptions; the same inputs and seed give the
            same output.

    Returns:
        A tensor with the shape and dtype of `images`, values in [0, 255] (rounded for integer
        dtypes).
    """
    if not isinstance(name, str) or name not in _FUNCTIONS:
        raise ValueError(f"`name` must be one of {sorted(_FUNCTIONS)}, received name={name!r}")
    if (isinstance(severity, bool) or not isinstance(severity, numbers.Integral)
            or not 1 <= severity <= NUM_SEVERITIES):
        raise ValueError(f"`severity` must be an integer in 1..{NUM_SEVERITIES}, received severity={severity!r}")
    check_positive_int("seed", seed, minimum=0)
    images = _check_images(images)
    x = tf.cast(images, tf.float32) / 255.0
    out = _FUNCTIONS[name](x, SEVERITIES[name].values[int(severity) - 1], int(seed))
    out = tf.clip_by_value(out, 0.0, 1.0) * 255.0
    if images.dtype.is_integer:
        out = tf.round(out)
    return tf.ensure_shape(tf.cast(out, images.dtype), images.shape)


def _named(name):
    def function(images, severity, seed=0):
        return corrupt(images, name, severity, seed)

    function.__name__ = name
    function.__doc__ = (f"`corrupt(images, {name!r}, severity, seed)`: {SEVERITIES[name].meaning} "
                        f"{SEVERITIES[name].values} ({SEVERITIES[name].source}).")
    return function


# name -> function(images, severity, seed=0), in SEVERITIES' order.
CORRUPTIONS = {name: _named(name) for name in SEVERITIES}
