"""Classification loss with label smoothing (Szegedy et al. 2016; Bag of Tricks §5.2).

Keras' `CategoricalCrossentropy(label_smoothing=eps)` replaces the one-hot target by
`(1 - eps) * y + eps / K` (K classes), i.e. the true class gets `1 - eps + eps / K` and every
other class `eps / K` (Bag of Tricks writes `1 - eps` and `eps / (K - 1)`, a slightly different
split of the same mass; Inception-v3 and timm use Keras' form). Keras'
`SparseCategoricalCrossentropy` has no `label_smoothing` (3.15), so smoothing needs one-hot
labels; mixup/cutmix produce one-hot (mixed) labels anyway.
"""

import keras

from keras_cnn.validation import check_bool, check_rate


def classification_loss(*, label_smoothing=0.0, from_logits=True, sparse=False):
    """Cross-entropy for classifiers, optionally label-smoothed.

    Args:
        label_smoothing: Smoothing `eps` in [0, 1) (0.1 in Bag of Tricks / Inception-v3).
        from_logits: Whether predictions are logits (keras_cnn models built with
            `classifier_activation=None`) or probabilities (the default softmax head).
        sparse: Integer labels (`SparseCategoricalCrossentropy`) instead of one-hot or
            mixed labels; incompatible with label smoothing.

    Returns:
        A `keras.losses.Loss`.
    """
    check_rate("label_smoothing", label_smoothing)
    check_bool("from_logits", from_logits)
    check_bool("sparse", sparse)
    if sparse and label_smoothing > 0:
        raise ValueError(
            "Keras' sparse cross-entropy has no label smoothing: use one-hot labels "
            f"(sparse=False), received sparse=True with label_smoothing={label_smoothing!r}"
        )
    if sparse:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=float(label_smoothing))
