"""Meta Pseudo Labels (Pham, Dai, Xie, Luong, Le 2021, "Meta Pseudo Labels", CVPR;
github.com/google-research/google-research/tree/master/meta_pseudo_labels).

A teacher labels unlabeled images for a student; the student's performance on *labeled*
data after learning from those pseudo-labels is fed back to the teacher. `MetaPseudoLabels`
is a `keras.Model` with a **TensorFlow-specific** `train_step` (`tf.GradientTape`, the
`keras_cnn.distribute` helpers), trained with `fit` under any `tf.distribute` strategy and
in mixed precision. One step (the paper's Algorithm 1, first-order approximation):

1. the teacher runs on `x_l`, `x_u_weak`, `x_u_strong` (one call, as the released code);
   pseudo-labels `y_hat` on `x_u_strong` are the teacher's argmax, a sample from its
   distribution, or its probabilities (`PSEUDO_LABELS`, below);
2. the student computes its labeled loss `L_before = CE(y_l, S(x_l))` and takes a step on
   `CE(y_hat, S(x_u_strong))`;
3. `L_after = CE(y_l, S'(x_l))` with the updated student; the feedback is
   `h = L_before - L_after` (minus a moving-average baseline);
4. the teacher steps on `CE(y_l, T(x_l)) + uda_weight * UDA(T(x_u_weak), T(x_u_strong))
   + h * CE(y_hat, T(x_u_strong))`.

**The sign of h, from first principles.** The teacher wants to minimise the student's
labeled loss after the student's step, `L_l(theta_S')` with
`theta_S' = theta_S - eta_S * g_u(y_hat)`, `g_u = grad_S CE(y_hat, S(x_u))`, where `y_hat`
is drawn from the teacher. The score-function (REINFORCE) gradient is
`E[L_l(theta_S') * grad_T log p_T(y_hat)] = -E[L_l(theta_S') * grad_T CE(y_hat, T(x_u))]`;
subtracting the baseline `L_l(theta_S)` (independent of `y_hat`, so unbiased) gives
`grad_T = -(L_after - L_before) * grad_T CE = (L_before - L_after) * grad_T CE`. The
teacher's surrogate loss is therefore `h * CE(y_hat, T(x_u))` with
`h = L_before - L_after`. The paper's first-order form agrees: a Taylor expansion around
`theta_S'` gives `L_before - L_after ~= eta_S * grad L_l(theta_S')^T g_u`, which is the
paper's `h` (Appendix A). Intuition: a pseudo-label that lowered the student's labeled loss
gives `h > 0`; minimising `h * CE` then *raises* the teacher's probability of that label.
`tests/ssl/test_ssl_mpl.py::test_feedback_sign` proves it on a hand-made linear teacher and
student in both directions.

The two public implementations disagree: the released TF code
(`training_utils.py`: `dot_product = cross_entropy['s_on_l_new'] - shadow`, i.e.
`L_after - L_before`) multiplies its MPL term with the opposite sign, which is harmless
there only because that term, `CE(stop_gradient(softmax(z)), z)`, has zero gradient
(google-research/google-research#534, #541, and the sign question in #602);
kekmodel/MPL-pytorch#6 derived `L_before - L_after` ("theoretically correct") while the
code kept the author's `L_after - L_before`. With hard pseudo-labels (where the term is
not zero) the sign decides whether the teacher reinforces helpful or harmful labels; this
module uses `L_before - L_after`.

**Which pseudo-labels** (`pseudo_labels=`, one of `PSEUDO_LABELS`):
- `"sample"` (default): one-hot `y_hat ~ softmax(T(x_u_strong))`. The REINFORCE derivation
  above assumes `y_hat` is drawn from the teacher; this is the estimator the paper derives. It
  is also the robust default: with the library's other defaults MPL finds the two moons on
  10 of 10 fresh seeds with sampling, 8 of 10 with the argmax (`tools/ssl_twomoon.py`).
- `"argmax"`: one-hot `argmax T(x_u_strong)` for the student, and the same class in the
  teacher's MPL term. kekmodel/MPL-pytorch does this (`torch.max` of the teacher's logits).
- `"soft"`: the student fits the teacher's probabilities. **This is what the released TF code
  does** (`onehot_labels=stop_gradient(softmax(logits['u_aug']))` for the student), and its
  MPL term `CE(stop_gradient(softmax(z)), z)` then has zero gradient (#534): the released
  teacher learns from its supervised and UDA losses only. Here the teacher's MPL term uses
  the argmax class instead, so the feedback still reaches it (a documented deviation).

Other choices, each as the released code unless said otherwise:
- Moving-average baseline: `b <- b + (1 - baseline_momentum) * (h_raw - b)`, then
  `h = h_raw - b` (with the *updated* b); `baseline_momentum=None` disables it.
- `student_wait_steps`: the released code's `mpl_student_lr_wait_steps`: the student's
  learning rate is 0 for its first N steps (its optimizer's learning rate is wrapped in
  `StudentWaitSchedule`, which then runs the original schedule from 0), so the student
  (and its weight decay) does not change; the MPL term is switched off meanwhile (the
  teacher trains on its supervised and UDA losses only).
- `L_before` comes from the student's training-mode pass on `concat(x_l, x_u_strong)`
  (batch norm sees both), `L_after` from a training-mode pass on `x_l`; both are
  global-batch means under `tf.distribute` (the feedback is all-reduced, so every replica
  uses the same `h`).
- The UDA term's confidence mask is the release's (`uda_mask_rule="mpl"`): the *sharpened*
  weak-view probability `max softmax(z_weak / T) >= threshold` (`keras_cnn.ssl.uda`; the UDA
  paper's own release thresholds the unsharpened one with `>`). Its weight ramps linearly
  from 0 to `uda_weight` over `uda_ramp_steps` teacher steps (the release's `uda_steps`;
  0: constant).
- Weight decay: the release adds `weight_decay * w` to each network's gradient
  (`common_utils.add_weight_decay`) *before* its `clip_by_global_norm(grad_bound)`; with
  keras_cnn's coupled optimizers (`build_optimizer(weight_decay_mode="l2")`) it is added
  after the clipping, which only differs when the bound is reached (the CIFAR recipe's
  `grad_bound=1e9` never is).
- Label smoothing applies to the teacher's supervised loss and the student's pseudo-label
  loss, not to the feedback losses.
- Gradient clipping and EMA are the optimizers' own (`global_clipnorm`, `use_ema`), with
  the clipping moved after the cross-replica sum under >= 2 replicas (Keras 3.15 clips each
  replica's share, see `keras_cnn.distribute.clip_across_replicas`); under
  `mixed_float16` each optimizer is a `LossScaleOptimizer` (the teacher's by `compile`,
  the student's here). `finalize_student()` copies the student's EMA into its weights.
- XLA (`compile(jit_compile=True)`): the whole step is compiled on one device (or TPU).
  Under >= 2 GPU/CPU replicas Keras' whole-step compilation fails (keras-team/keras#19005)
  and `keras_cnn.distribute.use_replica_xla`'s per-replica split does not fit this step
  (two cross-replica synchronisations between the teacher's forward and backward), so
  `compile` turns XLA off there, with a warning.

**Reduced MPL** (the paper's §3.4 / Appendix for very large teachers): the large teacher is
trained first and frozen; its logits on the labeled and unlabeled images are precomputed
(the dataset yields them), and a *small* teacher head on top of those logits (by default a
`Dense(K)` initialised to the identity, `reduced_teacher_head`) is what receives the
supervised loss and the MPL feedback. Only the student network (and the tiny head) is in
memory during MPL. Deviation: no UDA term (the precomputed logits are of one view).

The finetuning stage is `finetune_student` (plain `compile`/`fit` on labeled data with a
fresh optimizer).
"""

import logging
import numbers

import keras
import tensorflow as tf

from keras_cnn.distribute.train_step import (
    all_reduce,
    clip_across_replicas,
    replica_loss,
    scaled_gradients,
    unscale_loss,
)
from keras_cnn.distribute.xla import UPSTREAM_ISSUE as XLA_UPSTREAM_ISSUE
from keras_cnn.distribute.xla import needs_replica_xla
from keras_cnn.ssl.uda import MASK_RULES, regularization_loss, uda_consistency_loss
from keras_cnn.validation import (
    check_choice,
    check_non_negative,
    check_positive_int,
    check_positive_number,
    check_rate,
)

LOGGER = logging.getLogger("keras_cnn.ssl")

__all__ = [
    "PSEUDO_LABELS",
    "MetaPseudoLabels",
    "ReducedMetaPseudoLabels",
    "StudentWaitSchedule",
    "finetune_student",
    "reduced_teacher_head",
]


# What the student fits (module docstring): the teacher's argmax, a sample from it, or its probabilities.
PSEUDO_LABELS = ("argmax", "sample", "soft")


def _check_model(argument, model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"`{argument}` must be a keras.Model, received {argument}={model!r}")


def _check_optional_unit(argument, value, *, upper_open=True):
    if value is None:
        return
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if bad or not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"`{argument}` must be None or a number in {interval}, received {argument}={value!r}")


def _inner(optimizer):
    return optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer


@keras.saving.register_keras_serializable(package="keras_cnn")
class StudentWaitSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate 0 for the first `wait_steps` steps, then `base` restarted from step 0.

    The released MPL code's `mpl_student_lr_wait_steps`: the student waits while the teacher
    learns, and its schedule (warmup included) starts when it stops waiting.

    Args:
        base: A float or a `LearningRateSchedule`.
        wait_steps: Steps with learning rate 0 (`>= 0`).
    """

    def __init__(self, base, wait_steps):
        self.base = base
        self.wait_steps = int(wait_steps)

    def __call__(self, step):
        step = tf.cast(step, "float32")
        wait = float(self.wait_steps)
        if isinstance(self.base, keras.optimizers.schedules.LearningRateSchedule):
            rate = tf.cast(self.base(tf.maximum(step - wait, 0.0)), "float32")
        else:
            rate = tf.constant(float(self.base), "float32")
        return tf.where(step < wait, tf.zeros_like(rate), rate)

    def get_config(self):
        base = self.base
        if isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            base = keras.saving.serialize_keras_object(base)
        return {"base": base, "wait_steps": self.wait_steps}

    @classmethod
    def from_config(cls, config):
        base = config["base"]
        if isinstance(base, dict):
            base = keras.saving.deserialize_keras_object(base)
        return cls(base, config["wait_steps"])


def _one_hot(labels, num_classes):
    """Labels as float32 one-hot `[B, K]` (integer `[B]` or already one-hot/soft)."""
    if labels.shape.rank == 2 and labels.shape[-1] == num_classes:
        return tf.cast(labels, "float32")
    return tf.one_hot(tf.cast(tf.reshape(labels, [-1]), "int32"), num_classes, dtype="float32")


def _cross_entropy(targets, logits, label_smoothing=0.0):
    return keras.losses.categorical_crossentropy(
        targets, tf.cast(logits, "float32"), from_logits=True, label_smoothing=label_smoothing
    )


class MetaPseudoLabels(keras.Model):
    """Meta Pseudo Labels teacher-student training with `fit` (TensorFlow-specific step).

        mpl = MetaPseudoLabels(teacher, student, uda_weight=8.0, student_wait_steps=3000)
        mpl.compile(teacher_optimizer=keras.optimizers.SGD(0.05, momentum=0.9, global_clipnorm=1e9),
                    student_optimizer=keras.optimizers.SGD(0.05, momentum=0.9, use_ema=True),
                    metrics=["accuracy"])
        mpl.fit(tf.data.Dataset.zip((labeled, unlabeled)), steps_per_epoch=..., epochs=...)
        mpl.finalize_student()                          # EMA weights into the student
        finetune_student(mpl.student, labeled, epochs=...)

    `fit` batches are `((x_l, y_l), (x_u_weak, x_u_strong))` or `((x_l, y_l), x_u)` (one
    unlabeled view: no UDA term). `y_l` is integer `[B]` or one-hot `[B, K]`. Both models
    must output logits (`classifier_activation=None`); under a mixed policy their last
    layer must be float32 (keras_cnn models are). `call`, `evaluate` and `predict` use the
    student. See the module docstring for the step, the sign of the feedback and the
    deviations from the released code.

    Logged: `loss` (student's labeled CE after its step, comparable to `val_loss`),
    `teacher_loss`, `student_loss` (on pseudo-labels), `sup_loss`, `uda_loss`, `mpl_loss`
    (the teacher's CE on its pseudo-labels), `feedback` (`L_before - L_after`, before the
    baseline), `baseline`, `mask_rate` (UDA confidence mask) and the `compile` metrics of
    the student on the labeled batch.

    Args:
        teacher: The teacher, a `keras.Model` returning logits.
        student: The student, same number of classes; trained on pseudo-labels only.
        uda_weight: Weight of the teacher's UDA consistency loss (`>= 0`; the paper's
            CIFAR-10 setting is 8).
        uda_temperature: UDA sharpening temperature (`keras_cnn.ssl.uda`).
        uda_threshold: UDA confidence threshold in [0, 1], or `None`.
        label_smoothing: In [0, 1), on the teacher's supervised and the student's
            pseudo-label cross-entropies.
        pseudo_labels: One of `PSEUDO_LABELS`: `"sample"` (the paper's derivation, default),
            `"argmax"` (MPL-pytorch) or `"soft"` (the released code); see the module docstring.
        uda_mask_rule: The UDA confidence mask, `"mpl"` (the release: sharpened, `>=`) or
            `"uda"` (`keras_cnn.ssl.uda.MASK_RULES`).
        uda_ramp_steps: Teacher steps over which the UDA weight ramps from 0 to
            `uda_weight` (the release's `uda_steps`; 0: constant weight).
        student_wait_steps: Steps (`>= 0`) during which the student is not trained.
        baseline_momentum: Momentum in [0, 1) of the feedback's moving-average baseline
            (0.99 as the released code), or `None` for no baseline.
        seed: Seed of the pseudo-label sampling.
        **kwargs: `keras.Model` arguments (`name`).
    """

    def __init__(self, teacher, student, *, uda_weight=1.0, uda_temperature=0.4, uda_threshold=0.8,
                 label_smoothing=0.0, pseudo_labels="sample", uda_mask_rule="mpl", uda_ramp_steps=0,
                 student_wait_steps=0, baseline_momentum=0.99, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check_model("teacher", teacher)
        _check_model("student", student)
        check_non_negative("uda_weight", uda_weight)
        check_positive_number("uda_temperature", uda_temperature)
        _check_optional_unit("uda_threshold", uda_threshold, upper_open=False)
        check_rate("label_smoothing", label_smoothing)
        check_choice("pseudo_labels", pseudo_labels, PSEUDO_LABELS)
        check_choice("uda_mask_rule", uda_mask_rule, MASK_RULES)
        check_positive_int("uda_ramp_steps", uda_ramp_steps, minimum=0)
        check_positive_int("student_wait_steps", student_wait_steps, minimum=0)
        _check_optional_unit("baseline_momentum", baseline_momentum)
        t_classes, s_classes = teacher.outputs[0].shape[-1], student.outputs[0].shape[-1]
        if t_classes != s_classes:
            raise ValueError(
                f"`teacher` and `student` must have as many classes, received teacher with {t_classes} "
                f"and student with {s_classes}"
            )
        self.teacher = teacher
        self.student = student
        self.num_classes = int(s_classes)
        self.uda_weight = float(uda_weight)
        self.uda_temperature = uda_temperature
        self.uda_threshold = uda_threshold
        self.label_smoothing = float(label_smoothing)
        self.pseudo_labels = pseudo_labels
        self.uda_mask_rule = uda_mask_rule
        self.uda_ramp_steps = int(uda_ramp_steps)
        self.student_wait_steps = int(student_wait_steps)
        self.baseline_momentum = baseline_momentum
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Identical on every replica (computed from all-reduced values): one copy suffices.
        self.baseline = self.add_weight(shape=(), initializer="zeros", trainable=False, name="baseline",
                                        aggregation="only_first_replica")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in (
            "loss", "teacher_loss", "student_loss", "sup_loss", "uda_loss", "mpl_loss", "feedback",
            "baseline", "mask_rate")}
        self.student_metrics = []
        self.student_optimizer = None
        # Both networks are built; nothing for fit's symbolic build to do.
        self.built = True

    # --- compile ------------------------------------------------------------------------

    def compile(self, teacher_optimizer="sgd", student_optimizer="sgd", metrics=None, **kwargs):
        """Sets the two optimizers and the student's metrics.

        Call it inside the strategy's scope. Under `mixed_float16` both optimizers become
        `LossScaleOptimizer`s. With `student_wait_steps > 0` the student optimizer's learning
        rate is replaced by a `StudentWaitSchedule` around it.

        Args:
            teacher_optimizer: Keras optimizer (or name) of the teacher.
            student_optimizer: Keras optimizer (or name) of the student; a different object.
            metrics: Student metrics on the labeled batch: `"accuracy"`, or `keras.metrics`
                instances taking one-hot labels and logits (`CategoricalAccuracy`,
                `TopKCategoricalAccuracy`).
            **kwargs: Other `keras.Model.compile` arguments except `loss`, `optimizer`
                (`jit_compile`, `steps_per_execution`). `jit_compile=True` compiles the
                whole step with XLA on one device or TPU; under >= 2 GPU/CPU replicas it
                is turned off with a warning (keras-team/keras#19005).
        """
        for argument in ("loss", "optimizer"):
            if argument in kwargs:
                raise ValueError(
                    f"MetaPseudoLabels.compile takes teacher_optimizer/student_optimizer and no "
                    f"`{argument}`, received {argument}={kwargs[argument]!r}"
                )
        teacher_optimizer = keras.optimizers.get(teacher_optimizer)
        student_optimizer = keras.optimizers.get(student_optimizer)
        if teacher_optimizer is student_optimizer:
            raise ValueError(
                "`teacher_optimizer` and `student_optimizer` must be different objects, received the "
                f"same optimizer {teacher_optimizer!r} twice"
            )
        if self.student_wait_steps:
            inner = _inner(student_optimizer)
            base = inner._learning_rate
            if isinstance(base, keras.Variable):
                base = float(base.numpy())
            if not isinstance(base, StudentWaitSchedule):
                inner.learning_rate = StudentWaitSchedule(base, self.student_wait_steps)
        super().compile(optimizer=teacher_optimizer, **kwargs)
        if needs_replica_xla(self):
            # Keras compiles the whole `strategy.run(train_step)` as one XLA cluster, which
            # fails under >= 2 replicas (keras-team/keras#19005, see keras_cnn.distribute.xla).
            # `use_replica_xla`'s per-replica split does not fit this step: the student's
            # all-reduced update and the all-reduced feedback sit between the teacher's
            # forward and its backward, so it would need three XLA segments and a second
            # teacher pass. One device (and TPU) keeps XLA.
            LOGGER.warning("MetaPseudoLabels: jit_compile=True under %d replicas is not supported (%s); "
                           "compiling without XLA", self.distribute_strategy.num_replicas_in_sync,
                           XLA_UPSTREAM_ISSUE)
            self.jit_compile = False
        if self.dtype_policy.name == "mixed_float16" and not isinstance(
            student_optimizer, keras.optimizers.LossScaleOptimizer
        ):
            student_optimizer = keras.optimizers.LossScaleOptimizer(student_optimizer)
        self.student_optimizer = student_optimizer
        self.optimizer.build(self.teacher_variables)
        self.student_optimizer.build(self.student.trainable_variables)
        self.student_metrics = [self._metric(m) for m in (metrics or [])]

    @staticmethod
    def _metric(metric):
        if metric in ("accuracy", "acc", "categorical_accuracy"):
            return keras.metrics.CategoricalAccuracy(name="accuracy")
        if isinstance(metric, keras.metrics.Metric):
            return metric
        raise ValueError(
            f"`metrics` entries must be 'accuracy' or keras.metrics.Metric instances, received {metric!r}"
        )

    @property
    def metrics(self):
        return list(self.trackers.values()) + list(self.student_metrics)

    @property
    def teacher_variables(self):
        """The variables the teacher's optimizer trains."""
        return self.teacher.trainable_variables

    def finalize_student(self):
        """Copies the student optimizer's EMA into the student's weights (no-op without EMA)."""
        optimizer = _inner(self.student_optimizer)
        if optimizer is not None and optimizer.use_ema:
            optimizer.finalize_variable_values(self.student.trainable_variables)

    # --- the step -----------------------------------------------------------------------

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _unpack(self, data):
        """`(x_l, y_l, teacher_inputs, x_student_u)` from a batch."""
        labeled, unlabeled = data
        x_l, y_l = labeled[0], labeled[1]
        if isinstance(unlabeled, (tuple, list)):
            x_weak, x_strong = unlabeled
        else:
            x_weak, x_strong = None, unlabeled
        return x_l, y_l, (x_l, x_weak, x_strong), x_strong

    def _teacher_logits(self, teacher_inputs):
        """`(logits_l, logits_weak or None, logits_strong)` of the teacher, in training mode."""
        x_l, x_weak, x_strong = teacher_inputs
        views = [x_l] + ([x_weak] if x_weak is not None else []) + [x_strong]
        sizes = [tf.shape(v)[0] for v in views]
        # One call, as the released code: batch norm sees labeled and unlabeled together.
        logits = tf.split(self.teacher(tf.concat(views, axis=0), training=True), sizes, axis=0)
        if x_weak is None:
            return logits[0], None, logits[1]
        return tuple(logits)

    def _pseudo_labels(self, logits_strong):
        """`(student_targets, teacher_action)`: what the student fits, what the teacher reinforces."""
        logits = tf.stop_gradient(tf.cast(logits_strong, "float32"))
        if self.pseudo_labels == "sample":
            classes = keras.random.categorical(logits, 1, seed=self.seed_generator)[:, 0]
        else:
            classes = tf.argmax(logits, axis=-1)
        action = tf.one_hot(classes, self.num_classes, dtype="float32")
        targets = tf.nn.softmax(logits, axis=-1) if self.pseudo_labels == "soft" else action
        return targets, action

    def _uda_weight(self):
        """The UDA weight of this step: `uda_weight`, ramped over `uda_ramp_steps` teacher steps."""
        if not self.uda_ramp_steps:
            return tf.constant(self.uda_weight, "float32")
        progress = tf.cast(self.optimizer.iterations, "float32") / float(self.uda_ramp_steps)
        return self.uda_weight * tf.minimum(1.0, progress)

    def _labeled_loss(self, y_l, logits):
        """Global-batch mean CE of the student on the labeled batch (same on every replica)."""
        return all_reduce(replica_loss(_cross_entropy(y_l, logits)))

    def _student_step(self, x_l, y_l, x_u, targets):
        """Student step on pseudo-labels; returns `(feedback, active, student_loss, logits_after)`."""
        n_l, n_u = tf.shape(x_l)[0], tf.shape(x_u)[0]
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            logits_l, logits_u = tf.split(
                self.student(tf.concat([x_l, x_u], axis=0), training=True), [n_l, n_u], axis=0)
            student_loss = replica_loss(_cross_entropy(targets, logits_u, self.label_smoothing))
            student_total = student_loss + regularization_loss(self.student)
        before = self._labeled_loss(y_l, tf.stop_gradient(logits_l))
        grads = clip_across_replicas(
            scaled_gradients(tape, student_total, variables, self.student_optimizer), self.student_optimizer)
        # Read before the update: the StudentWaitSchedule sees the same count.
        active = tf.cast(self.student_optimizer.iterations >= self.student_wait_steps, "float32")
        self.student_optimizer.apply_gradients(zip(grads, variables))
        logits_after = self.student(x_l, training=True)
        after = self._labeled_loss(y_l, logits_after)
        return (before - after) * active, active, student_loss, logits_after

    def _update_baseline(self, feedback, active):
        if self.baseline_momentum is None:
            return feedback, tf.zeros_like(feedback)
        updated = self.baseline + (1.0 - self.baseline_momentum) * (feedback - self.baseline)
        new_baseline = active * updated + (1.0 - active) * self.baseline
        self.baseline.assign(new_baseline)
        return feedback - new_baseline * active, new_baseline

    def train_step(self, data):
        x_l, y_l, teacher_inputs, x_u = self._unpack(data)
        y_l = _one_hot(y_l, self.num_classes)
        with tf.GradientTape() as tape:
            logits_l, logits_weak, logits_strong = self._teacher_logits(teacher_inputs)
            targets, action = self._pseudo_labels(logits_strong)
            sup_loss = replica_loss(_cross_entropy(y_l, logits_l, self.label_smoothing))
            if logits_weak is not None and self.uda_weight > 0:
                per_example_uda, mask = uda_consistency_loss(
                    logits_weak, logits_strong, temperature=self.uda_temperature, threshold=self.uda_threshold,
                    mask_rule=self.uda_mask_rule)
                uda_loss = replica_loss(per_example_uda)
            else:
                uda_loss, mask = tf.constant(0.0), tf.zeros([tf.shape(logits_strong)[0]])
            mpl_loss = replica_loss(_cross_entropy(action, logits_strong))
            with tape.stop_recording():
                feedback, active, student_loss, logits_after = self._student_step(x_l, y_l, x_u, targets)
                h, baseline = self._update_baseline(feedback, active)
                h = tf.stop_gradient(h)
            teacher_loss = (sup_loss + self._uda_weight() * uda_loss + h * mpl_loss
                            + regularization_loss(self.teacher))
        variables = self.teacher_variables
        grads = clip_across_replicas(scaled_gradients(tape, teacher_loss, variables, self.optimizer), self.optimizer)
        self.optimizer.apply_gradients(zip(grads, variables))
        labeled_after = unscale_loss(replica_loss(_cross_entropy(y_l, logits_after)))
        values = {"loss": labeled_after, "teacher_loss": unscale_loss(teacher_loss),
                  "student_loss": unscale_loss(student_loss), "sup_loss": unscale_loss(sup_loss),
                  "uda_loss": unscale_loss(uda_loss), "mpl_loss": unscale_loss(mpl_loss),
                  "feedback": feedback, "baseline": baseline, "mask_rate": tf.reduce_mean(mask)}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        for metric in self.student_metrics:
            metric.update_state(y_l, tf.cast(logits_after, "float32"))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = _one_hot(y, self.num_classes)
        logits = tf.cast(self.student(x, training=False), "float32")
        loss = replica_loss(_cross_entropy(y, logits), sample_weight=sample_weight)
        self.trackers["loss"].update_state(unscale_loss(loss))
        for metric in self.student_metrics:
            metric.update_state(y, logits, sample_weight=sample_weight)
        return {m.name: m.result() for m in [self.trackers["loss"], *self.student_metrics]}


def reduced_teacher_head(num_classes, *, name="reduced_teacher"):
    """The small trainable teacher of Reduced MPL: `Dense(K)` on the frozen teacher's logits.

    Initialised to the identity, so it starts as the large teacher.

    Args:
        num_classes: Number of classes `K`.
        name: Model name.

    Returns:
        A `keras.Model` mapping logits `[B, K]` to logits `[B, K]` (float32).
    """
    check_positive_int("num_classes", num_classes)
    inputs = keras.Input((num_classes,), name="teacher_logits")
    outputs = keras.layers.Dense(num_classes, kernel_initializer="identity", dtype="float32",
                                 name="head")(inputs)
    return keras.Model(inputs, outputs, name=name)


class ReducedMetaPseudoLabels(MetaPseudoLabels):
    """Reduced MPL: a small teacher head on precomputed large-teacher logits (TF-specific step).

    Batches are `((x_l, y_l, z_l), (x_u, z_u))`, where `z_l`, `z_u` are the frozen large
    teacher's logits on `x_l`, `x_u` (e.g. `teacher.predict` before MPL; the student may see
    an augmented `x_u`). The head (`reduced_teacher_head`) gets the supervised loss on `z_l`
    and the MPL feedback on `z_u`; there is no UDA term. Everything else is
    `MetaPseudoLabels`.

    Args:
        teacher_head: A `keras.Model` mapping logits `[B, K]` to logits `[B, K]`.
        student: The student (logits).
        **kwargs: `MetaPseudoLabels` arguments; `uda_*` are ignored.
    """

    def __init__(self, teacher_head, student, **kwargs):
        super().__init__(teacher_head, student, **{"uda_weight": 0.0, **kwargs})
        head_inputs = teacher_head.inputs[0].shape[-1]
        if head_inputs != self.num_classes:
            raise ValueError(
                f"`teacher_head` must take the {self.num_classes} logits of the frozen teacher, received "
                f"teacher_head with input size {head_inputs}"
            )

    def _unpack(self, data):
        (x_l, y_l, z_l), (x_u, z_u) = data
        return x_l, y_l, (z_l, z_u), x_u

    def _teacher_logits(self, teacher_inputs):
        z_l, z_u = teacher_inputs
        n_l, n_u = tf.shape(z_l)[0], tf.shape(z_u)[0]
        logits_l, logits_u = tf.split(
            self.teacher(tf.concat([z_l, z_u], axis=0), training=True), [n_l, n_u], axis=0)
        return logits_l, None, logits_u


def finetune_student(student, labeled, *, epochs=1, optimizer=None, learning_rate=3e-5, batch_size=None,
                     label_smoothing=0.0, validation_data=None, callbacks=None, verbose=0, **fit_kwargs):
    """The MPL finetuning stage: the student trained on labeled data alone with a fresh optimizer.

    Recompiles `student` (its weights are kept; its previous optimizer is replaced).

    Args:
        student: The student after MPL (call `MetaPseudoLabels.finalize_student` first to use
            its EMA weights); returns logits.
        labeled: A `tf.data.Dataset` of `(x, y)` batches or an `(x, y)` tuple of arrays;
            `y` integer `[B]` or one-hot `[B, K]`.
        epochs: Epochs (`>= 1`).
        optimizer: A fresh Keras optimizer; `None`: SGD with momentum 0.9 at `learning_rate`.
        learning_rate: Learning rate of the default optimizer (`> 0`).
        batch_size: Batch size for array inputs.
        label_smoothing: In [0, 1).
        validation_data: Passed to `fit`.
        callbacks: Passed to `fit`.
        verbose: Passed to `fit`.
        **fit_kwargs: Other `fit` arguments (`steps_per_epoch`).

    Returns:
        The `keras.callbacks.History` of the finetuning.
    """
    _check_model("student", student)
    check_positive_int("epochs", epochs)
    check_positive_number("learning_rate", learning_rate)
    check_rate("label_smoothing", label_smoothing)
    if isinstance(labeled, tf.data.Dataset):
        label_spec = labeled.element_spec[1]
        x, y = labeled, None
        sparse = label_spec.shape.rank == 1
    elif isinstance(labeled, (tuple, list)) and len(labeled) == 2:
        x, y = labeled
        sparse = len(getattr(y, "shape", ())) == 1
    else:
        raise ValueError(f"`labeled` must be a tf.data.Dataset or an (x, y) tuple, received labeled={labeled!r}")
    if sparse and label_smoothing > 0:
        num_classes = student.outputs[0].shape[-1]
        if y is None:
            x = x.map(lambda images, labels: (images, tf.one_hot(tf.cast(labels, "int32"), num_classes)))
        else:
            y = keras.utils.to_categorical(y, num_classes)
        sparse = False
    if optimizer is None:
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True) if sparse
            else keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=float(label_smoothing)))
    student.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return student.fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data,
                       callbacks=callbacks, verbose=verbose, **fit_kwargs)
