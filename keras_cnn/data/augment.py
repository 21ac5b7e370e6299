"""Batch-level augmentation with Keras' own preprocessing layers.

`augment_layers` builds the list that `make_pipeline(augment=...)` applies to every training
batch: `keras.layers.RandAugment` (Cubuk et al. 2020) and `keras.layers.RandomErasing` (Zhong
et al. 2020). Any other Keras preprocessing layer, or a keras-cv augmentation layer
(`pip install keras_cnn[cv]`), can go in the same list. `mixing_layers` builds Keras' `MixUp`
(Zhang et al. 2018) and `CutMix` (Yun et al. 2019) for the pipeline's label mixing.
"""

import keras

from keras_cnn.validation import check_positive_int

__all__ = ["RANDAUGMENT_MAX_MAGNITUDE", "augment_layers", "mixing_layers"]

# RandAugment magnitudes are on the scale of the paper's reference implementation
# (tensorflow/tpu autoaugment.py `_MAX_LEVEL = 10`, also timm's "rand-m9"): M in [0, 10],
# M = 10 the strongest. Keras' `factor` is the same strength normalised to [0, 1].
RANDAUGMENT_MAX_MAGNITUDE = 10


def _check_probability(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{argument}` must be a number in [0, 1], received {argument}={value!r}")


def augment_layers(*, randaugment=None, random_erasing=0.0, value_range=(0, 255), seed=None):
    """Keras augmentation layers for `make_pipeline(augment=...)`, applied in list order.

    Args:
        randaugment: `None`, or `(num_ops, magnitude)`, the paper's `(N, M)`: N operations per
            image, magnitude M on the reference implementation's 0-10 scale (ImageNet ResNet-50:
            `(2, 9)`). Becomes `keras.layers.RandAugment(num_ops=N, factor=M / 10)`.
        random_erasing: Probability of erasing a random rectangle of each image (timm's
            `reprob`, e.g. 0.25): `keras.layers.RandomErasing(factor=p)` with Keras' default
            area range 2%-33% and random-noise fill. 0 adds no layer.
        value_range: Pixel range of the images (the pipelines produce `(0, 255)`).
        seed: Integer seed of the layers' random streams (each layer gets its own offset).

    Returns:
        A list of Keras layers (possibly empty).

    Note: Keras 3.15's `RandAugment` draws the N operations once per *batch* (the paper draws
    them per image; magnitudes and parameters are still per image), and computes all 11 of its
    operations for each of the N slots, selecting with `where`. Here that made it the slowest
    stage: ~750-1,000 images/s on this 2-core CPU at 32 px (`tools/pipeline_benchmark.py`),
    against ~7,000-17,000 for pad-crop + flip + erasing + MixUp/CutMix.

    Strength on small images: `factor = M / 10` makes Keras' geometric ranges large (at M = 9,
    rotations up to 0.9 x 360 degrees and shifts/shears up to 90 % of the image, reflect fill),
    and its solarize/posterize are strongest at *low* M, as in the reference implementation
    (tensorflow/tpu#614). ImageNet-sized objects survive that; 16 px digits do not (measured in
    `tools/ssl_digits.py`: a 97.2 % digits model scores 40 % on RandAugment (2, 9) copies of the
    test images, 79 % even at M = 0), so small-image recipes use milder noise.
    """
    layers = []
    if seed is not None:
        check_positive_int("seed", seed, minimum=0)
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
        layers.append(keras.layers.RandAugment(
            value_range=value_range, num_ops=num_ops, factor=magnitude / RANDAUGMENT_MAX_MAGNITUDE,
            seed=None if seed is None else seed, dtype="float32"))
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
    for argument, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"`{argument}` must be a number >= 0, received {argument}={value!r}")
    if cutmix_alpha > 1:
        raise ValueError(f"`cutmix_alpha` must be in [0, 1] (keras.layers.CutMix), received cutmix_alpha={cutmix_alpha!r}")
    mixup = keras.layers.MixUp(alpha=float(mixup_alpha), seed=seed, dtype="float32") if mixup_alpha > 0 else None
    cutmix = None
    if cutmix_alpha > 0:
        cutmix = keras.layers.CutMix(factor=(float(cutmix_alpha), float(cutmix_alpha)),
                                     seed=None if seed is None else seed + 1, dtype="float32")
    return mixup, cutmix
