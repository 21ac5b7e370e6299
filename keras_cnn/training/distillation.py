"""Knowledge distillation (Hinton et al. 2015; Bag of Tricks §5.4) on `keras.distillation`.

The loss of a batch is

    alpha * CE(y, student) + (1 - alpha) * T**2 * KL(softmax(teacher / T) || softmax(student / T))

with the teacher frozen and run in inference mode. `alpha` weights the hard-label term (the
issue's "weight alpha"; Bag of Tricks writes the same loss with `T = 20`; `alpha = 1` is plain
training, `alpha = 0` pure distillation).

Keras 3.15's `keras.distillation.Distiller` + `LogitsDistillation` computes exactly this
(`student_loss_weight = alpha`; the teacher is called with `training=False` and set
`trainable = False`; the KL term divides both logits by T, applies the softmax, averages over
the batch and multiplies by T**2), **provided the KL loss is passed as an instance**:
`LogitsDistillation`'s default `loss="kl_divergence"` resolves to the function
`keras.losses.kl_divergence`, which fails its `isinstance(loss_fn, KLDivergence)` test, so
neither the softmax nor the T**2 factor is applied and the KL is taken of raw scaled logits
(a test keeps track of that Keras behaviour). `make_distiller` passes
`keras.losses.KLDivergence()`. Other behaviour of Keras' `Distiller` to know: the hard loss
ignores `sample_weight` and the student's `model.losses`; the KL clips probabilities to
[1e-7, 1]; evaluation reports the same combined loss; `fit` logs `loss` plus the
`student_loss`, `distillation_loss` and `total_loss` trackers.

Both models must output logits (`classifier_activation=None`). Labels may be sparse or
one-hot/mixed (mixup with distillation is the paper's combined variant): the hard loss is
whatever is passed to `compile`, a logits loss such as
`classification_loss(sparse=True)`.
"""

import numbers

import keras

from keras_cnn.models.base import AuxiliaryOutputsModel

_SOFTMAX_NAMES = ("softmax", "log_softmax")


def _output_layers(model):
    outputs = getattr(model, "outputs", None)
    if outputs:
        return [tensor._keras_history[0] for tensor in keras.tree.flatten(outputs)]
    layers = getattr(model, "layers", None)
    return [layers[-1]] if layers else []


def _ends_in_softmax(model):
    for layer in _output_layers(model):
        if isinstance(layer, keras.layers.Softmax):
            return True
        if getattr(getattr(layer, "activation", None), "__name__", None) in _SOFTMAX_NAMES:
            return True
    return False


def _check_logits_loss(loss):
    # String losses resolve to Keras functions with from_logits=False: on logits they would
    # train silently on the wrong quantity.
    if isinstance(loss, str) or getattr(loss, "from_logits", True) is False:
        raise ValueError(
            "The distiller's models output logits: pass a loss instance with from_logits=True "
            "(e.g. keras_cnn.training.classification_loss()), "
            f"received loss={loss!r}"
        )


class Distiller(keras.distillation.Distiller):
    """`keras.distillation.Distiller` that insists on a logits loss in `compile`.

    Use `make_distiller` to build one. `distiller.student` is the trained student.
    """

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Compiles like `keras.Model.compile`; `loss` (the hard-label term) must take logits.

        Args:
            optimizer: The student's optimizer.
            loss: A `keras.losses.Loss` with `from_logits=True` (sparse or one-hot).
            metrics: List of metrics, computed on the student's logits.
            **kwargs: Other `keras.Model.compile` arguments.
        """
        if loss is None:
            raise ValueError(
                "`loss` is required (the hard-label term), e.g. "
                "keras_cnn.training.classification_loss(sparse=True), received loss=None"
            )
        for item in keras.tree.flatten(loss):
            _check_logits_loss(item)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)


def make_distiller(teacher, student, *, temperature=20.0, alpha=0.5):
    """A trainable teacher -> student distillation model (Hinton et al. 2015).

    Args:
        teacher: Trained Keras model producing logits; frozen (`trainable = False`) and run in
            inference mode (BN moving statistics, no dropout) by the distiller.
        student: Keras model producing logits, same input and output shapes as the teacher.
        temperature: Softening temperature `T > 0` of both softmaxes (20 in Bag of Tricks).
        alpha: Weight in [0, 1] of the hard-label loss; `1 - alpha` weights the
            `T**2`-scaled KL term.

    Returns:
        An uncompiled `Distiller` (a `keras.Model`): `compile(optimizer, loss=...)`, `fit`,
        `evaluate`; `model(x)` gives the student's logits; `.student` the trained student.
    """
    for argument, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise ValueError(f"`{argument}` must be a keras.Model, received {argument}={model!r}")
        if _ends_in_softmax(model):
            raise ValueError(
                f"`{argument}` must output logits (build it with classifier_activation=None), "
                f"received {argument}={model.name!r} whose last layer applies a softmax"
            )
    if isinstance(student, AuxiliaryOutputsModel):
        raise ValueError(
            "`student` returns auxiliary outputs in training; build it with aux_logits=False, "
            f"received student={student.name!r}"
        )
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ValueError(f"`temperature` must be a number > 0, received temperature={temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be a number in [0, 1], received alpha={alpha!r}")
    return Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=float(temperature), loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=float(alpha),
    )
