"""Pseudo-labels: self-training on a model's own predictions (Lee 2013, "Pseudo-Label: The
Simple and Efficient Semi-Supervised Learning Method for Deep Neural Networks", ICML WREPL).

Two ways to use them:

- Offline (a teacher labels the unlabeled set once, as Noisy Student and Reduced MPL do):
  `pseudo_label(teacher, unlabeled)` predicts on clean inputs, with a progress bar, and
  returns hard labels (argmax, optionally only above a confidence `threshold`) or soft
  labels (the probability vectors); `balance_classes` then builds the class-balanced set of
  the JFT recipe (Xie et al. 2020 §3 / Pham et al. 2021 App. D: keep confident images, take
  the most confident `per_class` of each class, duplicate images of the classes with fewer).
- Online (Lee 2013): `PseudoLabelModel` trains one model jointly on
  `L_labeled + alpha(t) * L_pseudo`, the pseudo-targets being its own current predictions on
  the unlabeled batch, with `alpha(t)` from `alpha_ramp` (0 until `t1`, linear to `alpha_f`
  at `t2`).

`alpha_ramp` uses `keras.ops`; `pseudo_label` and `balance_classes` return NumPy arrays;
`PseudoLabelModel.train_step` is TensorFlow-specific (`tf.GradientTape`, the
`keras_cnn.distribute` helpers: correct under any `tf.distribute` strategy and in mixed
precision).
"""

import dataclasses
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_cnn.distribute.train_step import clip_across_replicas, replica_loss, scaled_gradients, unscale_loss
from keras_cnn.ssl.uda import SemiSupervisedWrapper, per_example_cross_entropy, regularization_loss
from keras_cnn.validation import check_choice, check_non_negative, check_positive_int

__all__ = ["PSEUDO_LABEL_MODES", "PseudoLabelModel", "PseudoLabels", "alpha_ramp", "balance_classes",
           "pseudo_label"]

PSEUDO_LABEL_MODES = ("hard", "soft")


def _check_threshold(argument, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{argument}` must be None or a number in [0, 1], received {argument}={value!r}")


def _check_ramp(t1, t2, alpha_f):
    check_non_negative("t1", t1)
    check_non_negative("t2", t2)
    if t2 < t1:
        raise ValueError(f"`t2` must be >= t1={t1!r}, received t2={t2!r}")
    check_non_negative("alpha_f", alpha_f)


def alpha_ramp(step, *, t1, t2, alpha_f):
    """Weight of the pseudo-label loss at `step` (Lee 2013, eq. 16).

    0 for `step < t1`, `alpha_f * (step - t1) / (t2 - t1)` between, `alpha_f` from `t2` on
    (the paper: `t1 = 100`, `t2 = 600` epochs, `alpha_f = 3`; here in whatever unit `step`
    counts, optimizer steps for `PseudoLabelModel`).

    Args:
        step: Current step (int or scalar tensor).
        t1: Step where the ramp starts (`>= 0`).
        t2: Step where it reaches `alpha_f` (`>= t1`; equal: a jump).
        alpha_f: Final weight (`>= 0`).

    Returns:
        A float32 scalar.
    """
    _check_ramp(t1, t2, alpha_f)
    step = ops.cast(step, "float32")
    if t2 == t1:
        return ops.where(step >= t1, float(alpha_f), 0.0)
    ratio = ops.clip((step - t1) / float(t2 - t1), 0.0, 1.0)
    return float(alpha_f) * ratio


@dataclasses.dataclass
class PseudoLabels:
    """What `pseudo_label` returns.

    Attributes:
        labels: Hard labels `[M]` (int64) or soft labels `[M, K]` (float32 probabilities).
        confidence: Largest teacher probability of each kept example, `[M]` float32.
        indices: Positions of the kept examples in the unlabeled stream, `[M]` int64 (all of
            them without a threshold).
        x: The kept inputs `[M, ...]` when `return_inputs=True`, else `None`.
    """

    labels: np.ndarray
    confidence: np.ndarray
    indices: np.ndarray
    x: np.ndarray | None = None

    def __len__(self):
        return len(self.indices)


def _batches(unlabeled, batch_size):
    # Yields input batches: arrays are sliced, a dataset gives its elements (x, (x,), (x, y)
    # or (x, y, w): labels of an "unlabeled" stream are ignored), batched if it is not.
    if isinstance(unlabeled, tf.data.Dataset):
        spec = unlabeled.element_spec
        first = spec[0] if isinstance(spec, tuple) else spec
        if first.shape.rank is not None and first.shape.rank >= 1 and first.shape[0] is None:
            dataset = unlabeled
        else:
            dataset = unlabeled.batch(batch_size)
        for element in dataset:
            yield element[0] if isinstance(element, tuple) else element
        return
    array = np.asarray(unlabeled)
    for start in range(0, len(array), batch_size):
        yield array[start:start + batch_size]


def _num_examples(unlabeled):
    if isinstance(unlabeled, tf.data.Dataset):
        # Unknown or infinite: the progress bar counts without a target.
        return None
    return len(unlabeled)


def pseudo_label(teacher, unlabeled, *, mode="hard", threshold=None, batch_size=256, from_logits=True,
                 return_inputs=False, verbose=1):
    """The teacher's pseudo-labels on an unlabeled set, predicted on clean inputs.

    The teacher runs in inference mode (`training=False`: no dropout, no stochastic depth,
    batch-norm moving statistics), as Noisy Student prescribes for the teacher, with a
    `keras.utils.Progbar` over the examples.

    Args:
        teacher: A classifier; outputs logits (`from_logits=True`) or probabilities.
        unlabeled: A NumPy array of images, or a finite `tf.data.Dataset` of images (batched
            or not; elements `x`, `(x,)` or `(x, y, ...)` whose labels are ignored). The
            order must be deterministic for `indices` to be meaningful.
        mode: `"hard"` (argmax labels) or `"soft"` (probability vectors, Noisy Student's
            default).
        threshold: Keep only examples whose largest probability is `>= threshold`;
            `None` keeps all.
        batch_size: Batch size for arrays and unbatched datasets.
        from_logits: Whether the teacher outputs logits.
        return_inputs: Also return the kept inputs (held in memory).
        verbose: 1 shows the progress bar, 0 nothing.

    Returns:
        A `PseudoLabels` (`labels`, `confidence`, `indices`, `x`).
    """
    if not isinstance(teacher, keras.Model):
        raise ValueError(f"`teacher` must be a keras.Model, received teacher={teacher!r}")
    check_choice("mode", mode, PSEUDO_LABEL_MODES)
    _check_threshold("threshold", threshold)
    check_positive_int("batch_size", batch_size)
    check_choice("verbose", verbose, (0, 1))
    progress = keras.utils.Progbar(_num_examples(unlabeled), verbose=verbose, unit_name="image")
    probabilities, inputs = [], []
    for x in _batches(unlabeled, batch_size):
        # predict_on_batch runs Keras' compiled predict function, in inference mode.
        output = np.asarray(teacher.predict_on_batch(x), dtype="float32")
        probabilities.append(np.asarray(ops.softmax(output, axis=-1)) if from_logits else output)
        if return_inputs:
            inputs.append(np.asarray(x))
        progress.add(len(output))
    if not probabilities:
        raise ValueError("`unlabeled` must hold at least one example, received an empty set")
    probs = np.concatenate(probabilities).astype("float32")
    confidence = probs.max(axis=-1)
    keep = np.ones(len(probs), bool) if threshold is None else confidence >= threshold
    indices = np.flatnonzero(keep).astype("int64")
    labels = probs[keep] if mode == "soft" else probs[keep].argmax(axis=-1).astype("int64")
    x = np.concatenate(inputs)[keep] if return_inputs else None
    return PseudoLabels(labels=labels, confidence=confidence[keep], indices=indices, x=x)


def balance_classes(labels_or_probs, confidence, *, per_class=None, threshold=0.0, seed=0):
    """Indices of a class-balanced pseudo-labeled set (the JFT recipe of Noisy Student / MPL).

    Examples under `threshold` are dropped; each class then keeps its `per_class` most
    confident examples, and a class with fewer is filled up by duplicating its examples
    (every one as often as possible, the remainder drawn at random without replacement), so
    every class that has at least one confident example ends with exactly `per_class`.
    Classes with none are absent (there is nothing to duplicate).

    Args:
        labels_or_probs: Hard labels `[N]` or soft labels `[N, K]` (classes by argmax).
        confidence: Confidence of each example `[N]` (e.g. `PseudoLabels.confidence`).
        per_class: Examples per class; `None`: the size of the largest class after
            filtering (the paper's 130K images per class on JFT).
        threshold: Minimum confidence (paper: 0.3 on JFT).
        seed: Seed of the duplicates' draw: the same inputs and seed give the same indices.

    Returns:
        Sorted int64 indices into the inputs, duplicates repeated.
    """
    labels = np.asarray(labels_or_probs)
    if labels.ndim == 2:
        labels = labels.argmax(axis=-1)
    if labels.ndim != 1:
        raise ValueError(
            f"`labels_or_probs` must have shape [N] or [N, K], received shape {np.shape(labels_or_probs)}")
    confidence = np.asarray(confidence, dtype="float64")
    if confidence.shape != labels.shape:
        raise ValueError(
            f"`confidence` must have shape {labels.shape} like the labels, received shape {confidence.shape}")
    if per_class is not None:
        check_positive_int("per_class", per_class)
    _check_threshold("threshold", threshold)
    check_positive_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    kept = confidence >= threshold
    classes = np.unique(labels[kept])
    if per_class is None:
        per_class = max((int(np.sum(labels[kept] == c)) for c in classes), default=0)
    selected = []
    for c in classes:
        members = np.flatnonzero(kept & (labels == c))
        # Most confident first; the stable sort breaks ties by position (deterministic).
        members = members[np.argsort(-confidence[members], kind="stable")]
        if len(members) >= per_class:
            selected.append(members[:per_class])
            continue
        copies, remainder = divmod(per_class, len(members))
        selected.append(np.tile(members, copies))
        selected.append(rng.choice(members, remainder, replace=False))
    if not selected:
        return np.zeros((0,), "int64")
    return np.sort(np.concatenate(selected)).astype("int64")


class PseudoLabelModel(SemiSupervisedWrapper):
    """Lee 2013's joint pseudo-label training with `fit` (TensorFlow-specific `train_step`).

    `fit` data yields `((x_l, y_l), x_u)` (or `((x_l, y_l), (x_u,))`). The labeled and
    unlabeled batches go through the model in one call; the pseudo-targets are the model's
    own predictions in that same pass (`argmax`, under `stop_gradient`), and

        loss = mean_B_l CE(y_l, z_l) + alpha(t) * sum_B_u w_i CE(argmax z_u_i, z_u_i) / B_u

    with `alpha(t) = alpha_ramp(optimizer.iterations, t1, t2, alpha_f)` and per-example weight
    `w_i` = 1 where the confidence `max softmax(z_u_i)` is `>= threshold` (0 elsewhere;
    `mode="hard"`) or `w_i` = the confidence (`mode="soft"`, soft weighting; `threshold`
    still drops examples below it). Means are global-batch means under `tf.distribute`.
    Targets come from the training-mode pass (dropout included, as in the paper, whose
    network recomputes its pseudo-labels at every weight update).

    Logged: `loss`, `labeled_loss`, `pseudo_loss` (unweighted by alpha), `alpha`,
    `pseudo_rate` (mean weight `w`), plus compiled metrics on the labeled batch.

    Args:
        model: A classifier returning logits (`classifier_activation=None`).
        t1: Step where `alpha` starts rising.
        t2: Step where it reaches `alpha_f`.
        alpha_f: Final weight of the pseudo-label loss (paper: 3).
        mode: `"hard"` or `"soft"` (see above).
        threshold: Confidence threshold, or `None` (hard: every example counts).
        **kwargs: Passed to `keras.Model`.
    """

    TRAIN_METRICS = ("labeled_loss", "pseudo_loss", "alpha", "pseudo_rate")

    def __init__(self, model, *, t1=0, t2=0, alpha_f=1.0, mode="hard", threshold=None, **kwargs):
        super().__init__(model, **kwargs)
        _check_ramp(t1, t2, alpha_f)
        check_choice("mode", mode, PSEUDO_LABEL_MODES)
        _check_threshold("threshold", threshold)
        self.t1, self.t2, self.alpha_f = t1, t2, float(alpha_f)
        self.mode = mode
        self.threshold = threshold

    def alpha(self):
        """`alpha(t)` at the optimizer's current step."""
        return alpha_ramp(self.optimizer.iterations, t1=self.t1, t2=self.t2, alpha_f=self.alpha_f)

    def pseudo_weights(self, logits_u):
        """Per-example pseudo-targets and weights `(targets [B], weights [B])`, no gradient."""
        probs = tf.stop_gradient(tf.nn.softmax(tf.cast(logits_u, "float32"), axis=-1))
        confidence = tf.reduce_max(probs, axis=-1)
        targets = tf.argmax(probs, axis=-1)
        weights = confidence if self.mode == "soft" else tf.ones_like(confidence)
        if self.threshold is not None:
            weights = weights * tf.cast(confidence >= self.threshold, "float32")
        return targets, weights

    def train_step(self, data):
        (x_l, y_l), x_u = data
        if isinstance(x_u, (tuple, list)):
            x_u = x_u[0]
        n_l, n_u = tf.shape(x_l)[0], tf.shape(x_u)[0]
        variables = self.model.trainable_variables
        alpha = self.alpha()
        with tf.GradientTape() as tape:
            logits = self.model(tf.concat([x_l, x_u], axis=0), training=True)
            logits_l, logits_u = tf.split(logits, [n_l, n_u], axis=0)
            labeled = replica_loss(per_example_cross_entropy(y_l, logits_l))
            targets, weights = self.pseudo_weights(logits_u)
            pseudo = replica_loss(per_example_cross_entropy(targets, logits_u), sample_weight=weights)
            loss = labeled + alpha * pseudo + regularization_loss(self.model)
        # Clipping (if the optimizer has any) of the cross-replica sum, not of each share.
        grads = clip_across_replicas(scaled_gradients(tape, loss, variables, self.optimizer), self.optimizer)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.update_trackers(loss, labeled_loss=unscale_loss(labeled), pseudo_loss=unscale_loss(pseudo),
                             alpha=alpha, pseudo_rate=tf.reduce_mean(weights))
        return self.compute_metrics(x_l, y_l, logits_l)
