"""Unsupervised Data Augmentation (Xie et al. 2020, "Unsupervised Data Augmentation for
Consistency Training", NeurIPS; github.com/google-research/uda).

The consistency loss of an unlabeled image is the KL divergence between the model's
prediction on a weakly augmented (or clean) view, sharpened with a temperature and held
constant, and its prediction on a strongly augmented (RandAugment) view:

    KL( softmax(stop_gradient(z_weak) / T)  ||  softmax(z_strong) )

counted only where the weak prediction is confident. Two released confidence masks exist
(`MASK_RULES`): the UDA release (google-research/uda, `image/main.py`) keeps an example where
the *unsharpened* `max softmax(z_weak) > threshold`; the Meta Pseudo Labels release
(google-research/google-research `meta_pseudo_labels/training_utils.py`, and MPL-pytorch)
where the *sharpened* `max softmax(z_weak / T) >= threshold`, which keeps more examples at
T < 1.
Training-signal annealing (TSA, §3.3 of the paper) drops the labeled examples the model
already predicts with a correct-class probability above `eta_t`, which grows from `1/K` to 1
over training, so the few labels are not overfitted before the unlabeled signal catches up.

`uda_consistency_loss`, `tsa_threshold` and `tsa_mask` use `keras.ops` only (any backend);
they return per-example values and leave the reduction to the caller, which must know the
global batch under `tf.distribute` (Meta Pseudo Labels uses the loss as the teacher's
auxiliary term). The `UDA` model has a TensorFlow-specific `train_step` (`tf.GradientTape`,
`keras_cnn.distribute` helpers) and trains with `fit` under any strategy and in mixed
precision.
"""

import numbers

import keras
import tensorflow as tf
from keras import ops

from keras_cnn.distribute.train_step import (
    all_reduce,
    clip_across_replicas,
    num_replicas,
    replica_loss,
    scaled_gradients,
    unscale_loss,
)
from keras_cnn.validation import check_choice, check_non_negative, check_positive_int, check_positive_number

__all__ = ["MASK_RULES", "TSA_SCHEDULES", "UDA", "SemiSupervisedWrapper", "per_example_cross_entropy", "regularization_loss",
           "tsa_mask", "tsa_threshold", "uda_consistency_loss"]

TSA_SCHEDULES = ("linear", "log", "exp")
# "uda": unsharpened probability > threshold (the UDA release); "mpl": sharpened probability
# >= threshold (the Meta Pseudo Labels release).
MASK_RULES = ("uda", "mpl")
# The released UDA code's scale for the "log" and "exp" schedules: alpha_t spans
# [0, 1 - e^-5] and [e^-5, 1] respectively.
_TSA_SCALE = 5.0


def _check_threshold(argument, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{argument}` must be None or a number in [0, 1], received {argument}={value!r}")


def uda_consistency_loss(logits_weak, logits_strong, *, temperature=0.4, threshold=0.8, mask_rule="uda",
                         sample_weight=None):
    """Per-example UDA consistency loss and its confidence mask.

    The target is the sharpened weak-view prediction `softmax(z_weak / temperature)` under
    `stop_gradient`, so gradients flow only through `logits_strong`. Computed in float32
    whatever the logits' dtype (mixed precision).

    Args:
        logits_weak: Logits `[B, K]` on the weakly augmented (or clean) view.
        logits_strong: Logits `[B, K]` on the strongly augmented view of the same images.
        temperature: Sharpening temperature (`> 0`; the paper's 0.4; 1 is no sharpening).
        threshold: Confidence threshold in [0, 1] (see `mask_rule`). `None` keeps every
            example.
        mask_rule: `"uda"`: an example counts where the *unsharpened* weak prediction's
            largest probability is strictly greater than `threshold` (the UDA release's
            `tf.greater`); `"mpl"`: where the *sharpened* one is `>= threshold` (the Meta
            Pseudo Labels release's `tf.greater_equal` on `softmax(z / T)`).
        sample_weight: Optional weights `[B]` multiplying the loss.

    Returns:
        `(per_example_loss, mask)`, both float32 `[B]`; `per_example_loss` is already
        multiplied by `mask` (and `sample_weight`). The paper averages it over the whole
        unlabeled batch, masked examples included: `sum(per_example_loss) / global_batch`
        (`keras_cnn.distribute.replica_loss` under a strategy).
    """
    check_positive_number("temperature", temperature)
    _check_threshold("threshold", threshold)
    check_choice("mask_rule", mask_rule, MASK_RULES)
    weak = ops.stop_gradient(ops.cast(logits_weak, "float32"))
    strong = ops.cast(logits_strong, "float32")
    sharpened = weak / temperature
    target = ops.softmax(sharpened, axis=-1)
    per_example = ops.sum(target * (ops.log_softmax(sharpened, axis=-1) - ops.log_softmax(strong, axis=-1)), axis=-1)
    if threshold is None:
        mask = ops.ones_like(per_example)
    elif mask_rule == "uda":
        confidence = ops.max(ops.softmax(weak, axis=-1), axis=-1)
        mask = ops.cast(ops.greater(confidence, threshold), "float32")
    else:
        mask = ops.cast(ops.greater_equal(ops.max(target, axis=-1), threshold), "float32")
    per_example = per_example * mask
    if sample_weight is not None:
        per_example = per_example * ops.cast(sample_weight, "float32")
    return per_example, mask


def tsa_threshold(step, total_steps, num_classes, schedule="linear"):
    """Training-signal annealing threshold `eta_t = alpha_t * (1 - 1/K) + 1/K`.

    `alpha_t` goes from 0 to 1 over `total_steps` (clipped there): `t/T` (`"linear"`),
    `1 - exp(-5 t/T)` (`"log"`: releases the labels early), `exp(5 (t/T - 1))` (`"exp"`:
    late; the paper's choice when labels are very few).

    Args:
        step: Current step (int or scalar tensor, e.g. `optimizer.iterations`).
        total_steps: Steps of the whole training (`>= 1`).
        num_classes: Number of classes `K` (`>= 1`).
        schedule: One of `TSA_SCHEDULES`.

    Returns:
        A float32 scalar in `[1/K, 1]`.
    """
    check_positive_int("total_steps", total_steps)
    check_positive_int("num_classes", num_classes)
    check_choice("schedule", schedule, TSA_SCHEDULES)
    ratio = ops.minimum(ops.cast(step, "float32") / float(total_steps), 1.0)
    if schedule == "linear":
        alpha = ratio
    elif schedule == "log":
        alpha = 1.0 - ops.exp(-_TSA_SCALE * ratio)
    else:
        alpha = ops.exp(_TSA_SCALE * (ratio - 1.0))
    start = 1.0 / num_classes
    return alpha * (1.0 - start) + start


def _correct_class_probability(logits, labels):
    probs = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    if len(labels.shape) == len(logits.shape):  # one-hot / soft labels
        return ops.sum(probs * ops.cast(labels, "float32"), axis=-1)
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
    return ops.squeeze(ops.take_along_axis(probs, labels, axis=-1), axis=-1)


def tsa_mask(logits, labels, threshold):
    """Which labeled examples TSA keeps: those with correct-class probability `<= threshold`.

    Args:
        logits: Logits `[B, K]` on the labeled batch.
        labels: Integer labels `[B]` (or one-hot `[B, K]`).
        threshold: `eta_t` (see `tsa_threshold`).

    Returns:
        Float32 mask `[B]` (1 keep, 0 drop), without gradient.
    """
    probability = ops.stop_gradient(_correct_class_probability(logits, labels))
    return ops.cast(ops.less_equal(probability, ops.cast(threshold, "float32")), "float32")


def per_example_cross_entropy(labels, logits):
    """Cross-entropy per example from logits, for integer `[B]` or one-hot/soft `[B, K]` labels."""
    logits = ops.cast(logits, "float32")
    if len(labels.shape) == len(logits.shape):
        return keras.losses.categorical_crossentropy(ops.cast(labels, "float32"), logits, from_logits=True)
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def regularization_loss(model):
    """The model's `losses` (weight decay terms) as this replica's share, or 0.

    Gradients are summed over replicas, so a term every replica adds is divided by their
    number (what Keras' own `compute_loss` does).
    """
    if not model.losses:
        return tf.constant(0.0)
    total = tf.add_n([tf.cast(loss, "float32") for loss in model.losses])
    return total / tf.cast(num_replicas(), "float32")


class SemiSupervisedWrapper(keras.Model):
    """Base of the SSL models that wrap a classifier and train it with a custom `train_step`.

    TensorFlow-specific (subclasses record their step with `tf.GradientTape`). It owns the
    wrapped `model` (call it, save it), a `loss` tracker plus the subclass's
    `TRAIN_METRICS` trackers (`self.trackers[name]`), and a `test_step` that evaluates the
    wrapped model with cross-entropy and the compiled metrics. `compile` takes the
    optimizer and `metrics` (on the labeled batch), no `loss`.

    Args:
        model: A classifier returning logits (`classifier_activation=None`).
        **kwargs: Passed to `keras.Model` (`name`).
    """

    TRAIN_METRICS = ()

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model, received model={model!r}")
        self.model = model
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.train_trackers = [keras.metrics.Mean(name=name) for name in self.TRAIN_METRICS]

    @property
    def trackers(self):
        """`{name: keras.metrics.Mean}` of the training-step trackers."""
        return {tracker.name: tracker for tracker in self.train_trackers}

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def update_trackers(self, loss, **values):
        """Feeds `loss` (a replica-scaled loss, reported unscaled) and the named trackers."""
        self.loss_tracker.update_state(unscale_loss(loss))
        trackers = self.trackers
        for name, value in values.items():
            trackers[name].update_state(value)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.model(x, training=False)
        per_example = per_example_cross_entropy(y, logits)
        self.loss_tracker.update_state(unscale_loss(replica_loss(per_example, sample_weight=sample_weight)))
        logs = self.compute_metrics(x, y, logits, sample_weight=sample_weight)
        # The other trackers describe training steps only.
        return {k: v for k, v in logs.items() if k not in self.TRAIN_METRICS}

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Keras' own `compute_metrics` updates the compiled metrics; the trackers of this
        # model then override its built-in `loss` (never fed: there is no compiled loss).
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        logs.update({m.name: m.result() for m in [self.loss_tracker, *self.train_trackers]})
        return logs


class UDA(SemiSupervisedWrapper):
    """Standalone UDA training of a classifier with `fit` (TensorFlow-specific `train_step`).

    `fit` data yields `((x_l, y_l), (x_u_weak, x_u_strong))`: a labeled batch and two views of
    an unlabeled batch (`keras_cnn.data.augment_layers(randaugment=(2, 10))` for the strong
    one). The three go through the model in one call (as the released code does, so batch
    norm sees them together) and the loss is

        mean_TSA(CE(y_l, z_l)) + unsup_weight * mean_B(consistency(z_weak, z_strong))

    where the supervised mean is over the examples TSA keeps (all of them with `tsa=None`)
    and the consistency mean over the whole unlabeled batch. Both means are global-batch
    means under `tf.distribute`. `evaluate`/`predict` and `call` use the wrapped model; save
    `uda.model`, not the wrapper.

        uda = UDA(model, unsup_weight=1.0, tsa="exp", total_steps=steps)
        uda.compile(optimizer=keras.optimizers.SGD(0.03, momentum=0.9), metrics=["accuracy"])
        uda.fit(tf.data.Dataset.zip((labeled, unlabeled)), steps_per_epoch=..., epochs=...)

    Logged: `loss`, `sup_loss`, `unsup_loss`, `mask_rate` (fraction of unlabeled examples
    above the confidence threshold), `tsa_rate` (fraction of labeled ones TSA keeps) and the
    compiled metrics on the labeled batch. Do not pass `loss` to `compile`. The optimizer's
    gradient clipping applies to the cross-replica sum of the gradients, as on one device
    (`keras_cnn.distribute.clip_across_replicas`).

    Args:
        model: A classifier returning logits (`classifier_activation=None`).
        unsup_weight: `lambda_u`, weight of the consistency loss (`>= 0`; paper: 1).
        temperature: Sharpening temperature of the target (paper: 0.4).
        threshold: Confidence threshold of the consistency mask (paper: 0.8), or `None`.
        mask_rule: Which released mask (`MASK_RULES`; `"uda"`, this paper's release, by
            default); see `uda_consistency_loss`.
        tsa: `None` (no annealing) or a schedule of `TSA_SCHEDULES`.
        total_steps: Steps over which TSA anneals; required with `tsa`.
        **kwargs: Passed to `keras.Model` (`name`).
    """

    TRAIN_METRICS = ("sup_loss", "unsup_loss", "mask_rate", "tsa_rate")

    def __init__(self, model, *, unsup_weight=1.0, temperature=0.4, threshold=0.8, mask_rule="uda", tsa=None,
                 total_steps=None, **kwargs):
        super().__init__(model, **kwargs)
        check_non_negative("unsup_weight", unsup_weight)
        check_positive_number("temperature", temperature)
        _check_threshold("threshold", threshold)
        check_choice("mask_rule", mask_rule, MASK_RULES)
        self.mask_rule = mask_rule
        if tsa is not None:
            check_choice("tsa", tsa, TSA_SCHEDULES)
            check_positive_int("total_steps", total_steps)
        self.unsup_weight = float(unsup_weight)
        self.temperature = temperature
        self.threshold = threshold
        self.tsa = tsa
        self.total_steps = total_steps

    def compute_losses(self, logits_l, y_l, logits_weak, logits_strong):
        """The step's losses: `(total, sup, unsup, unsup_mask, tsa_keep)`, replica-scaled.

        `total`, `sup` and `unsup` are this replica's shares of the global means (see
        `keras_cnn.distribute.replica_loss`).
        """
        num_classes = logits_l.shape[-1]
        per_example_ce = per_example_cross_entropy(y_l, logits_l)
        if self.tsa is None:
            keep = tf.ones_like(per_example_ce)
        else:
            eta = tsa_threshold(self.optimizer.iterations, self.total_steps, num_classes, self.tsa)
            keep = tsa_mask(logits_l, y_l, eta)
        # Mean over the kept labeled examples of the *global* batch (released code:
        # sum(loss * mask) / max(sum(mask), 1)).
        kept = all_reduce(tf.reduce_sum(keep))
        sup = tf.reduce_sum(per_example_ce * keep) / tf.maximum(kept, 1.0)
        per_example_kl, mask = uda_consistency_loss(
            logits_weak, logits_strong, temperature=self.temperature, threshold=self.threshold,
            mask_rule=self.mask_rule)
        unsup = replica_loss(per_example_kl)
        total = sup + self.unsup_weight * unsup
        return total, sup, unsup, mask, keep

    def train_step(self, data):
        (x_l, y_l), (x_weak, x_strong) = data
        n_l, n_u = tf.shape(x_l)[0], tf.shape(x_weak)[0]
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(tf.concat([x_l, x_weak, x_strong], axis=0), training=True)
            logits_l, logits_weak, logits_strong = tf.split(logits, [n_l, n_u, n_u], axis=0)
            total, sup, unsup, mask, keep = self.compute_losses(logits_l, y_l, logits_weak, logits_strong)
            loss = total + regularization_loss(self.model)
        # Clipping (if the optimizer has any) of the cross-replica sum, not of each share.
        grads = clip_across_replicas(scaled_gradients(tape, loss, variables, self.optimizer), self.optimizer)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.update_trackers(loss, sup_loss=unscale_loss(sup), unsup_loss=unscale_loss(unsup),
                             mask_rate=tf.reduce_mean(mask), tsa_rate=tf.reduce_mean(keep))
        return self.compute_metrics(x_l, y_l, logits_l)
