"""RandAugment as released with the paper: op list and magnitude-to-argument ranges of the
reference code, one op choice per image.

Reference: Cubuk, Zoph, Shlens, Le, "RandAugment: Practical automated data augmentation with
a reduced search space", CVPR Workshops 2020 (arXiv:1909.13719); released as
`distort_image_with_randaugment` in tensorflow/tpu `models/official/efficientnet/autoaugment.py`
(copied in google-research/noisystudent `randaugment.py`). `keras.layers.RandAugment` differs:
its `factor` scales rotations to +-360 degrees and shifts/shears to the whole image, and it
draws the N ops once per batch.

TensorFlow-specific (like the rest of `keras_cnn.data`): the layer runs in `tf.data` pipelines.
"""

import math
import numbers

import keras
import tensorflow as tf

from keras_cnn.validation import check_positive_int

__all__ = ["GEOMETRIC_OPS", "MAX_MAGNITUDE", "REFERENCE_OPS", "RandAugment"]

# The reference's `_MAX_LEVEL`: magnitudes M in [0, 10], argument = M / 10 x the op's maximum.
MAX_MAGNITUDE = 10

# `available_ops` of the reference, in its order (the paper's Figure 2 lists 14 ops with
# Identity and without Invert, Cutout and SolarizeAdd; the released code uses these 16).
REFERENCE_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd",
)
# Not in the released list; accepted in `ops` to build the paper's Figure-2 list.
EXTRA_OPS = ("Identity",)
GEOMETRIC_OPS = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")
_ENHANCE_OPS = ("Color", "Contrast", "Brightness", "Sharpness")

# Maxima at M = 10 (reference `level_to_arg`). The reference's translate/cutout constants are
# pixels for its 224 px ImageNet crops; they are applied here as the same fractions of the side.
ROTATE_MAX_DEGREES = 30.0
SHEAR_MAX = 0.3
_REFERENCE_SIZE = 224
TRANSLATE_MAX_FRACTION = 100 / _REFERENCE_SIZE  # translate_const=100
CUTOUT_MAX_FRACTION = 40 / _REFERENCE_SIZE  # cutout_const=40 (half the side of the box)
ENHANCE_SCALE, ENHANCE_OFFSET = 1.8, 0.1  # factor = M / 10 x 1.8 + 0.1
POSTERIZE_MAX_BITS = 4
SOLARIZE_MAX_THRESHOLD = 256
SOLARIZE_ADD_MAX, SOLARIZE_ADD_THRESHOLD = 110, 128
# `tf.image.rgb_to_grayscale`, which the reference's Color and Contrast use.
_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
# PIL's ImageFilter.SMOOTH kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, the reference's
# Sharpness degenerate image.
_SMOOTH_CENTRE, _SMOOTH_SUM = 5.0, 13.0
_PIXEL_MAX = 255.0


def _check_number(argument, value, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(f"`{argument}` must be a number in [{low}, {high}], received {argument}={value!r}")


def _blend(degenerate, images, factor):
    """The reference's `blend`: `degenerate + factor x (images - degenerate)`, clipped."""
    return tf.clip_by_value(degenerate + factor * (images - degenerate), 0.0, _PIXEL_MAX)


def _grayscale(images):
    return tf.tensordot(images, tf.constant(_GRAY_WEIGHTS, tf.float32), axes=[[3], [0]])[..., None]


def _autocontrast(images):
    """Per image and channel, maps [min, max] linearly onto [0, 255]; constant channels stay."""
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    spread = tf.where(high > low, high - low, 1.0)
    scaled = tf.clip_by_value((images - low) * (_PIXEL_MAX / spread), 0.0, _PIXEL_MAX)
    return tf.where(high > low, scaled, images)


def _equalize(images):
    """PIL's `ImageOps.equalize` as the reference computes it, per image and channel at once."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    levels = tf.cast(tf.clip_by_value(tf.floor(images), 0.0, _PIXEL_MAX), tf.int32)
    # One row per (image, channel): a single bincount gives every histogram.
    rows = tf.reshape(tf.transpose(levels, [0, 3, 1, 2]), [batch * 3, height * width])
    histogram = tf.math.bincount(rows, minlength=256, maxlength=256, axis=-1)
    # The reference drops the count of the highest level present from the step.
    top_count = tf.gather(histogram, tf.reduce_max(rows, axis=1), batch_dims=1)
    step = (height * width - top_count) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    lut = (tf.cumsum(histogram, axis=1) + safe_step // 2) // safe_step
    lut = tf.clip_by_value(tf.concat([tf.zeros_like(lut[:, :1]), lut[:, :-1]], axis=1), 0, 255)
    equalized = tf.cast(tf.gather(lut, rows, batch_dims=1), tf.float32)
    original = tf.reshape(tf.transpose(images, [0, 3, 1, 2]), [batch * 3, height * width])
    # A step of 0 (one level, or nearly all pixels at the top level) leaves the channel as is.
    result = tf.where(step[:, None] > 0, equalized, original)
    return tf.transpose(tf.reshape(result, [batch, 3, height, width]), [0, 2, 3, 1])


def _sharpness(images, factor):
    """Blends with the SMOOTH-filtered image; the 1-pixel border keeps its values (reference)."""
    # The SMOOTH kernel is (3x3 box sum + 4 x centre) / 13. Shifted slices rather than a
    # depthwise convolution: TF's convolution returns the wrong shape for an empty batch,
    # which an op's partition often is.
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    box = tf.add_n([images[:, i:height - 2 + i, j:width - 2 + j, :] for i in range(3) for j in range(3)])
    centre = images[:, 1:-1, 1:-1, :]
    smooth = tf.clip_by_value((box + (_SMOOTH_CENTRE - 1) * centre) / _SMOOTH_SUM, 0.0, _PIXEL_MAX)
    degenerate = images + tf.pad(smooth - centre, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return _blend(degenerate, images, factor)


@keras.saving.register_keras_serializable(package="keras_cnn")
class RandAugment(keras.layers.Layer):
    """RandAugment with the released reference code's ops and ranges, drawn per image.

    For each of `num_ops` layers every image draws one op uniformly from `ops` (and a random
    sign for the signed ops) and applies it at the fixed magnitude `M`. Arguments at `M`
    (reference `level_to_arg`, `_MAX_LEVEL = 10`):

    - Rotate: +-M/10 x 30 degrees about the image centre (M = 9: +-27).
    - ShearX / ShearY: +-M/10 x 0.3 (M = 9: +-0.27), about the top-left corner as in the
      reference (`[1, level, 0, 0, 1, 0, 0, 0]` projective transform), so the far edge moves
      by up to 0.3 of the side.
    - TranslateX / TranslateY: +-M/10 x 100/224 of the width / height (the reference's 100 px
      at 224 px; M = 9: +-0.40 of the side).
    - Color, Contrast, Brightness, Sharpness: blend factor M/10 x 1.8 + 0.1 (no sign; 1.0 at
      M = 5 is the identity, below it the image is washed out / darkened / blurred).
    - Posterize: keep int(M/10 x 4) bits; 0 bits (M < 2.5) keeps 1 bit, as TensorFlow's
      shifts clamp the reference's shift of 8 to 7 (values 0 / 128).
    - Solarize: invert pixels >= int(M/10 x 256).
    - SolarizeAdd: add int(M/10 x 110) to pixels < 128, clipped.
    - Cutout: a `2p x 2p` box of `fill_value` centred at a uniformly drawn pixel, clipped to
      the image, `p = floor(M/10 x 40/224 x side)` per axis (reference: 40 px at 224 px).
    - AutoContrast, Equalize, Invert (and `Identity`, accepted in `ops`): no argument.

    Quirk kept from the reference (tensorflow/tpu#614): Posterize, Solarize and the four
    enhance ops are *strongest at low M*. M = 0 posterizes to 1 bit, inverts every pixel and
    blends to 10 % of the image; raising M weakens Posterize and Solarize (no-op at M = 10)
    and takes the enhance ops through the identity (M = 5) to a 1.9x exaggeration (M = 10).
    The reference draws a `prob` per op but RandAugment never uses it; not reproduced. Geometric ops sample nearest-neighbour (the reference's `contrib.image`
    default) and fill uncovered pixels with `fill_value` (the reference's `replace`, 128).

    Differences from the reference: the images stay float32 (no uint8 truncation after each
    op; Posterize and Equalize quantise by flooring); Contrast blends towards the mean of the
    grayscale image, as PIL does, where the reference's mean is `height x width / 256`
    (196 at 224 px, 4 at 32 px; tensorflow/tpu#825, fixed in tensorflow/models#11219).

    Efficiency: each image computes only its own op. Per layer the batch is split by op
    (`tf.dynamic_partition`), the five geometric ops share one per-image projective transform
    (`ImageProjectiveTransformV3`, one call), and the pixel ops run vectorised with per-image
    parameters before `tf.dynamic_stitch` restores the batch order.

    Args:
        num_ops: N, the number of ops applied to each image in sequence (>= 1). Drawn with
            replacement, as in the reference: N = 2 can rotate twice (+-2 x 27 degrees at M = 9).
        magnitude: M in [0, 10], shared by all ops.
        ops: `None` for the reference's 16 ops, or a sequence of distinct names from them (and
            `"Identity"`).
        value_range: `(low, high)` pixel range of inputs and outputs; the ops work on the
            reference's 0-255 scale in between.
        fill_value: Fill of geometric ops and Cutout, on the 0-255 scale (reference: 128).
        seed: Integer seed of the layer's `keras.random.SeedGenerator`, or `None`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Call arguments:
        images: `[B, H, W, 3]` or `[H, W, 3]` images in `value_range` (any real dtype).
        training: When false the images pass through unchanged (cast to float32).

    Returns:
        float32 images of the input shape, in `value_range`.
    """

    def __init__(self, num_ops, magnitude, ops=None, value_range=(0, 255), fill_value=128, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        check_positive_int("num_ops", num_ops)
        _check_number("magnitude", magnitude, 0, MAX_MAGNITUDE)
        if ops is not None:
            allowed = REFERENCE_OPS + EXTRA_OPS
            if (isinstance(ops, str) or not isinstance(ops, (list, tuple)) or not ops
                    or any(op not in allowed for op in ops) or len(set(ops)) != len(ops)):
                raise ValueError(f"`ops` must be None or a non-empty sequence of distinct names from "
                                 f"{list(allowed)}, received ops={ops!r}")
        if (not isinstance(value_range, (list, tuple)) or len(value_range) != 2
                or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in value_range)
                or not value_range[0] < value_range[1]):
            raise ValueError(f"`value_range` must be (low, high) numbers with low < high, "
                             f"received value_range={value_range!r}")
        _check_number("fill_value", fill_value, 0, 255)
        if seed is not None:
            check_positive_int("seed", seed, minimum=0)
        self.num_ops = int(num_ops)
        self.magnitude = magnitude
        self.ops = None if ops is None else tuple(ops)
        self.value_range = tuple(value_range)
        self.fill_value = fill_value
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

        self._op_names = REFERENCE_OPS if ops is None else tuple(ops)
        level = magnitude / MAX_MAGNITUDE  # the reference's `level / _MAX_LEVEL`
        self._rotate_radians = level * ROTATE_MAX_DEGREES * math.pi / 180.0
        self._shear = level * SHEAR_MAX
        self._translate = level * TRANSLATE_MAX_FRACTION
        self._cutout_fraction = level * CUTOUT_MAX_FRACTION
        self._enhance = level * ENHANCE_SCALE + ENHANCE_OFFSET
        # `int(...)` of the same products as the reference, so the integer steps fall alike.
        self._posterize_shift = min(8 - int(level * POSTERIZE_MAX_BITS), 7)
        self._solarize_threshold = int(level * SOLARIZE_MAX_THRESHOLD)
        self._solarize_add = int(level * SOLARIZE_ADD_MAX)
        # The geometric ops share one partition (one transform call); the others get one each.
        self._geometric = tuple(op for op in self._op_names if op in GEOMETRIC_OPS)
        self._groups = []
        for op in self._op_names:
            group = "geometric" if op in GEOMETRIC_OPS else op
            if group not in self._groups:
                self._groups.append(group)
        self._partition_of_op = [self._groups.index("geometric" if op in GEOMETRIC_OPS else op)
                                 for op in self._op_names]
        self._geometric_slot = [self._geometric.index(op) if op in GEOMETRIC_OPS else 0
                                for op in self._op_names]

    def _geometric_transform(self, images, op_index, sign):
        """One projective transform per image: output pixel (x, y) samples the input at
        `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`, `k = c0 x + c1 y + 1`, the
        matrices of the reference's `contrib.image` rotate / transform / translate."""
        shape = tf.shape(images)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        zero, one = tf.zeros_like(sign), tf.ones_like(sign)
        candidates = {}
        if "Rotate" in self._geometric:
            angle = sign * self._rotate_radians
            cos, sin = tf.cos(angle), tf.sin(angle)
            # `contrib.image.rotate` (`angles_to_projective_transforms`): about the centre.
            x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
            y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
            candidates["Rotate"] = [cos, -sin, x_offset, sin, cos, y_offset, zero, zero]
        shear = sign * self._shear
        candidates["ShearX"] = [one, shear, zero, zero, one, zero, zero, zero]
        candidates["ShearY"] = [one, zero, zero, shear, one, zero, zero, zero]
        # `translate_x(image, pixels)` calls `contrib.image.translate(image, [-pixels, 0])`.
        candidates["TranslateX"] = [one, zero, sign * self._translate * width, zero, one, zero, zero, zero]
        candidates["TranslateY"] = [one, zero, zero, zero, one, sign * self._translate * height, zero, zero]
        matrices = tf.stack([tf.stack(candidates[op], axis=1) for op in self._geometric], axis=1)
        slot = tf.gather(tf.constant(self._geometric_slot, tf.int32), op_index)
        matrices = tf.gather(matrices, slot, batch_dims=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=matrices, output_shape=shape[1:3],
            fill_value=tf.constant(self.fill_value, tf.float32), interpolation="NEAREST",
            fill_mode="CONSTANT")

    def _cutout(self, images, uniforms):
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        pad_h = tf.cast(tf.floor(self._cutout_fraction * tf.cast(height, tf.float32)), tf.int32)
        pad_w = tf.cast(tf.floor(self._cutout_fraction * tf.cast(width, tf.float32)), tf.int32)
        centre_y = tf.minimum(tf.cast(uniforms[:, 2] * tf.cast(height, tf.float32), tf.int32), height - 1)
        centre_x = tf.minimum(tf.cast(uniforms[:, 3] * tf.cast(width, tf.float32), tf.int32), width - 1)
        rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
        in_rows = (rows >= (centre_y - pad_h)[:, None]) & (rows < (centre_y + pad_h)[:, None])
        in_cols = (cols >= (centre_x - pad_w)[:, None]) & (cols < (centre_x + pad_w)[:, None])
        box = (in_rows[:, :, None] & in_cols[:, None, :])[..., None]
        return tf.where(box, tf.constant(self.fill_value, tf.float32), images)

    def _apply_group(self, group, images, op_index, uniforms):
        """Applies `group`'s op to the images that drew it (pixel values on the 0-255 scale)."""
        if group == "geometric":
            sign = tf.where(uniforms[:, 1] < 0.5, -1.0, 1.0)
            return self._geometric_transform(images, op_index, sign)
        if group == "Cutout":
            return self._cutout(images, uniforms)
        if group == "AutoContrast":
            return _autocontrast(images)
        if group == "Equalize":
            return _equalize(images)
        if group == "Invert":
            return _PIXEL_MAX - images
        if group == "Posterize":
            # floor(x / 2^s) x 2^s == (int(x) >> s) << s for x >= 0.
            step = float(2 ** self._posterize_shift)
            return tf.floor(tf.clip_by_value(images, 0.0, _PIXEL_MAX) / step) * step
        if group == "Solarize":
            return tf.where(images < self._solarize_threshold, images, _PIXEL_MAX - images)
        if group == "SolarizeAdd":
            added = tf.clip_by_value(images + self._solarize_add, 0.0, _PIXEL_MAX)
            return tf.where(images < SOLARIZE_ADD_THRESHOLD, added, images)
        if group in _ENHANCE_OPS and self._enhance == 1.0:
            return images  # the reference's blend returns the image itself at factor 1
        if group == "Color":
            return _blend(_grayscale(images), images, self._enhance)
        if group == "Contrast":
            mean = tf.reduce_mean(_grayscale(images), axis=[1, 2, 3], keepdims=True)
            return _blend(mean, images, self._enhance)
        if group == "Brightness":
            return _blend(tf.zeros_like(images), images, self._enhance)
        if group == "Sharpness":
            return _sharpness(images, self._enhance)
        return images  # Identity

    def _apply_layer(self, images, uniforms):
        """One RandAugment layer: every image applies the op it drew, only that op."""
        count = len(self._op_names)
        op_index = tf.minimum(tf.cast(uniforms[:, 0] * count, tf.int32), count - 1)
        if len(self._groups) == 1:
            return self._apply_group(self._groups[0], images, op_index, uniforms)
        partition = tf.gather(tf.constant(self._partition_of_op, tf.int32), op_index)
        groups = len(self._groups)
        positions = tf.dynamic_partition(tf.range(tf.shape(images)[0]), partition, groups)
        parts = tf.dynamic_partition(images, partition, groups)
        op_parts = tf.dynamic_partition(op_index, partition, groups)
        uniform_parts = tf.dynamic_partition(uniforms, partition, groups)
        outputs = [self._apply_group(group, part, ops, draws)
                   for group, part, ops, draws in zip(self._groups, parts, op_parts, uniform_parts)]
        return tf.dynamic_stitch(positions, outputs)

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        if images.shape.rank not in (3, 4) or images.shape[-1] not in (3, None):
            raise ValueError(f"RandAugment expects [B, H, W, 3] or [H, W, 3] images, received shape "
                             f"{images.shape}")
        single = images.shape.rank == 3
        x = tf.cast(images[None] if single else images, tf.float32)
        if training:
            low, high = (float(v) for v in self.value_range)
            rescale = (low, high) != (0.0, _PIXEL_MAX)
            if rescale:
                x = (x - low) * (_PIXEL_MAX / (high - low))
            # One draw per image and layer: op, sign, cutout centre (y, x).
            uniforms = tf.random.stateless_uniform(
                tf.stack([self.num_ops, tf.shape(x)[0], 4]), seed=self.generator.next())
            for layer in range(self.num_ops):
                x = self._apply_layer(x, uniforms[layer])
            if rescale:
                x = x * ((high - low) / _PIXEL_MAX) + low
            x = tf.clip_by_value(x, low, high)
            x = tf.ensure_shape(x, ([1] if single else images.shape[:1]) + images.shape[-3:])
        return x[0] if single else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_ops": self.num_ops,
            "magnitude": self.magnitude,
            "ops": None if self.ops is None else list(self.ops),
            "value_range": list(self.value_range),
            "fill_value": self.fill_value,
            "seed": self.seed,
        }
