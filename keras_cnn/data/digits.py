"""The embedded offline dataset: scikit-learn's copy of the UCI handwritten digits.

scikit-learn ships the real UCI "Optical Recognition of Handwritten Digits" test set (1797
images of 8x8 pixels, 17 grey levels 0..16, 10 classes, roughly 180 per class) inside the
package, so it needs no download. `load_digits` serves it in the shape every keras_cnn model
takes (RGB in [0, 255], uint8 here; the pipelines turn it into float32) with a fixed, seeded,
stratified train/test split, which makes it the dataset of the offline quickstart and the tests.
"""

import numpy as np
import tensorflow as tf

from keras_cnn.validation import check_positive_int

__all__ = ["DIGITS_NUM_CLASSES", "DIGITS_NUM_EXAMPLES", "load_digits"]

DIGITS_NUM_CLASSES = 10
DIGITS_NUM_EXAMPLES = 1797
# sklearn's digits are 4x4-block counts of set pixels in a 32x32 bitmap: values 0..16.
_DIGITS_MAX_VALUE = 16.0


def load_digits(image_size=32, *, test_fraction=0.2, seed=0):
    """UCI digits as RGB uint8 images with a fixed, stratified, seeded train/test split.

    The 8x8 grey images are upscaled bilinearly to `image_size` x `image_size`, scaled from
    0..16 to 0..255 and replicated to 3 channels. The split is scikit-learn's
    `train_test_split(..., stratify=labels, random_state=seed)`: every class keeps its share in
    both parts, and the same seed always gives the same split (1437 train / 360 test at 0.2).

    Args:
        image_size: Side of the square images served, in pixels (>= 8; 32 by default).
        test_fraction: Fraction of the 1797 examples in the test part, in (0, 1).
        seed: Integer seed of the split.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 arrays of shape `(n, image_size,
        image_size, 3)` and int32 label arrays of shape `(n,)`.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits
    from sklearn.model_selection import train_test_split

    check_positive_int("image_size", image_size, minimum=8)  # the digits are 8x8
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be a number in (0, 1), received test_fraction={test_fraction!r}")
    check_positive_int("seed", seed, minimum=0)

    digits = sklearn_load_digits()
    grey = digits.images.astype("float32")[..., None] * (255.0 / _DIGITS_MAX_VALUE)
    # One batched resize of 1797 tiny images; bilinear keeps values inside [0, 255].
    images = tf.image.resize(grey, (image_size, image_size), method="bilinear").numpy()
    images = np.repeat(np.clip(np.rint(images), 0, 255).astype("uint8"), 3, axis=-1)
    labels = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=int(seed))
    return (x_train, y_train), (x_test, y_test)
