"""Batch-level augmentation layers.

`augment_layers` builds the list that `make_pipeline(augment=...)` applies to every training
batch: Bag of Tricks' colour jitter and PCA lighting (`keras_cnn.data.color`), keras_cnn's
`RandAugment` (Cubuk et al. 2020, the released reference code's ops and ranges,
`keras_cnn.data.randaugment`) and `keras.layers.RandomErasing` (Zhong et al. 2020).
Any other Keras preprocessing layer, or a keras-cv augmentation layer
(`pip install keras_cnn[cv]`), can go in the same list. `mixing_layers` builds Keras' `MixUp`
(Zhang et al. 2018) and `CutMix` (Yun et al. 2019) for the pipeline's label mixing.
"""

import keras

from keras_cnn.data.color import ColorJitter, PCALighting
from keras_cnn.data.randaugment import MAX_MAGNITUDE, RandAugment
from keras_cnn.validation import check_non_negative, check_positive_int

__all__ = ["RANDAUGMENT_MAX_MAGNITUDE", "augment_layers", "mixing_layers"]

# RandAugment magnitudes are on the scale of the paper's reference implementation
# (tensorflow/tpu autoaugment.py `_MAX_LEVEL = 10`, also timm's "rand-m9"): M in [0, 10],
# M = 10 the strongest for the geometric ops.
RANDAUGMENT_MAX_MAGNITUDE = MAX_MAGNITUDE


def _check_probability(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{argument}` must be a number in [0, 1], received {argument}={value!r}")


def augment_layers(*, randaugment=None, random_erasing=0.0, color_jitter=0.0, pca_lighting=0.0,
                   value_range=(0, 255), seed=None):
    """Augmentation layers for `make_pipeline(augment=...)`, applied in list order.

    The order is colour jitter, PCA lighting (Bag of Tricks §2.1 steps 4-5, after the crop and
    flip of the pipeline's preprocessing), RandAugment, random erasing.

    Args:
        randaugment: `None`, or `(num_ops, magnitude)`, the paper's `(N, M)`: N operations per
            image, magnitude M on the reference implementation's 0-10 scale (ImageNet ResNet-50:
            `(2, 9)`). Becomes `keras_cnn.data.randaugment.RandAugment(num_ops=N, magnitude=M)`.
        random_erasing: Probability of erasing a random rectangle of each image (timm's
            `reprob`, e.g. 0.25): `keras.layers.RandomErasing(factor=p)` with Keras' default
            area range 2%-33% and random-noise fill. 0 adds no layer.
        color_jitter: GluonCV's `RandomColorJitter` strength `s` (Bag of Tricks: 0.4):
            brightness, contrast and saturation each scaled by a factor from `[1 - s, 1 + s]`,
            in a random order per image (`keras_cnn.data.ColorJitter`). 0 adds no layer.
        pca_lighting: Std of AlexNet's PCA lighting noise on ImageNet's RGB eigenvectors
            (Bag of Tricks: 0.1; `keras_cnn.data.PCALighting`). 0 adds no layer.
        value_range: Pixel range of the images (the pipelines produce `(0, 255)`).
        seed: Integer seed of the layers' random streams (each layer gets its own offset).

    Returns:
        A list of Keras layers (possibly empty).

    RandAugment follows the released reference code (tensorflow/tpu
    `distort_image_with_randaugment`): its 16 ops (AutoContrast, Equalize, Invert, Rotate,
    Posterize, Solarize, Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX,
    TranslateY, Cutout, SolarizeAdd), each image drawing its own N ops (with replacement) and
    signs. At M = 9: rotate +-27 degrees, shear +-0.27 (about the top-left corner), translate
    +-0.40 of the side (the reference's 100 px at 224 px), Cutout boxes of 2 x 0.16 of the side
    (40 px at 224), enhance factor 1.72, Posterize 3 bits, Solarize above 230, SolarizeAdd
    +99; gray (128) fill. As in the reference (tensorflow/tpu#614), Posterize, Solarize and the
    enhance ops are strongest at *low* M (M = 0: 1 bit, every pixel inverted, 10 % blends). N
    ops compose: at N = 2 an image can be rotated twice (+-54 degrees) or shifted by 0.8 of
    the side, so on small images (16 px digits) check that the label survives.
    """
    layers = []
    if seed is not None:
        check_positive_int("seed", seed, minimum=0)
    for argument, value in (("color_jitter", color_jitter), ("pca_lighting", pca_lighting)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"`{argument}` must be a number >= 0, received {argument}={value!r}")
    if color_jitter > 1:
        raise ValueError(f"`color_jitter` must be in [0, 1] (factors in [1 - s, 1 + s]), received "
                         f"color_jitter={color_jitter!r}")
    if color_jitter > 0:
        layers.append(ColorJitter(brightness=float(color_jitter), contrast=float(color_jitter),
                                  saturation=float(color_jitter), value_range=value_range,
                                  seed=None if seed is None else seed + 2, dtype="float32"))
    if pca_lighting > 0:
        layers.append(PCALighting(alphastd=float(pca_lighting), value_range=value_range,
                                  seed=None if seed is None else seed + 3, dtype="float32"))
    if randaugment is not None:
        ok = (isinstance(randaugment, (tuple, list)) and len(randaugment) == 2
              and isinstance(randaugment[0], int) and not isinstance(randaugment[0], bool) and randaugment[0] >= 1
              and isinstance(randaugment[1], (int, float)) and not isinstance(randaugment[1], bool)
              and 0 <= randaugment[1] <= RANDAUGMENT_MAX_MAGNITUDE)
        if not ok:
            raise ValueError(
                "`randaugment` must be None or (num_ops >= 1, magnitude in [0, "
                f"{RANDAUGMENT_MAX_MAGNITUDE}]), received randaugment={randaugment!r}")
        num_ops, magnitude = randaugment
        layers.append(RandAugment(num_ops=num_ops, magnitude=magnitude, value_range=value_range,
                                  seed=seed, dtype="float32"))
    _check_probability("random_erasing", random_erasing)
    if random_erasing > 0:
        layers.append(keras.layers.RandomErasing(
            factor=float(random_erasing), value_range=value_range,
            seed=None if seed is None else seed + 1, dtype="float32"))
    return layers


def mixing_layers(*, mixup_alpha=0.0, cutmix_alpha=0.0, seed=None):
    """Keras' MixUp and CutMix layers for batch-level label mixing (one-hot labels).

    Args:
        mixup_alpha: MixUp's Beta(alpha, alpha) parameter; 0 disables it.
        cutmix_alpha: CutMix's Beta(alpha, alpha) parameter, in (0, 1] (Keras' bound); 0
            disables it. Keras' `CutMix(factor=f)` draws alpha uniformly from `(0, f)`, so the
            layer is built with `factor=(alpha, alpha)` to get the paper's fixed alpha.
        seed: Integer seed.

    Returns:
        `(mixup_layer_or_None, cutmix_layer_or_None)`.
    """
    check_non_negative("mixup_alpha", mixup_alpha)
    check_non_negative("cutmix_alpha", cutmix_alpha)
    if cutmix_alpha > 1:
        raise ValueError(f"`cutmix_alpha` must be in [0, 1] (keras.layers.CutMix), received cutmix_alpha={cutmix_alpha!r}")
    mixup = keras.layers.MixUp(alpha=float(mixup_alpha), seed=seed, dtype="float32") if mixup_alpha > 0 else None
    cutmix = None
    if cutmix_alpha > 0:
        cutmix = keras.layers.CutMix(factor=(float(cutmix_alpha), float(cutmix_alpha)),
                                     seed=None if seed is None else seed + 1, dtype="float32")
    return mixup, cutmix
