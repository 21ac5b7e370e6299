"""Optimizers of the papers as Keras optimizers, with no-bias-decay and weight EMA.

**Weight decay** comes in two forms, chosen by `weight_decay_mode`:

- `"l2"` (coupled; what every paper behind the recipes used): `weight_decay * w` is added
  to the gradient of each decayed variable before the optimizer's update, exactly as
  PyTorch/MXNet's `weight_decay` argument, the TF reference code's
  `weight_decay * sum(tf.nn.l2_loss(w))` in the loss (EfficientNet, Noisy Student) and the
  Meta Pseudo Labels release's `add_weight_decay` (`g + weight_decay * w`). The decay term
  therefore passes through momentum (SGD: a steady-state shrinkage of about
  `lr * wd / (1 - momentum)` per step) and through RMSProp/Adam's adaptive denominator.
  Implemented by `CoupledSGD`, `CoupledRMSprop` and `CoupledAdam`, Keras' optimizers whose
  `update_step` adds the term after the cross-replica gradient sum (once per step under any
  `tf.distribute` strategy), after loss-scale unscaling and after Keras' gradient clipping
  (PyTorch's order, `clip_grad_norm_` then `step`; the TF references clip the sum, which
  only differs when a clipping bound is reached).
- `"decoupled"`: Keras' own `weight_decay`, `w <- w - lr(step) * weight_decay * w` before
  the gradient update (Loshchilov & Hutter's AdamW; `keras.optimizers.Optimizer.
  _apply_weight_decay`). With plain SGD (no momentum) both forms are identical; with
  momentum the same coefficient shrinks about `1 / (1 - momentum)` times less (10x at 0.9),
  and with RMSProp/Adam there is no equivalent coefficient.

`weight_decay_mode="auto"` (the default) is `"decoupled"` for `"adamw"` and `"lamb"`
(decoupled by definition) and `"l2"` for `"sgd"`, `"rmsprop"` and `"adam"`.

**No bias decay** (Bag of Tricks §3.1): `optimizer.exclude_from_weight_decay(var_list=...)`
with `no_decay_variables(model)`. The exclusion is a set of variable ids, not part of the
optimizer config: an optimizer restored with `keras.models.load_model` decays every variable
again (`BackupAndRestore`, which loads weights into the live model and optimizer, keeps it).

**RMSProp** (TF EfficientNet: decay 0.9, momentum 0.9, epsilon 1e-3). Keras 3's `RMSprop`
puts epsilon inside the square root, `lr * g / sqrt(ms + eps)`, like TF1's
`tf.train.RMSPropOptimizer` that the EfficientNet code used (PyTorch adds it outside,
`sqrt(ms) + eps`, hence torchvision's `--opt-eps 0.0316`), and its momentum accumulates the
same `lr * g / sqrt(ms + eps)`. One difference remains: TF1 initialises `ms` to ones, Keras to
zeros, so Keras' first steps are larger (`ms = 0.1 g**2` after one step) until `ms` has
warmed up; the warmup epochs of the recipe cover that.

**Weight EMA** (`ema=0.9999`): Keras' `use_ema` / `ema_momentum`. After each step
`average = ema * average + (1 - ema) * w` over trainable variables (the first step copies
`w`; no TF-style `min(ema, (1 + t) / (10 + t))` ramp; BN moving statistics are not averaged,
TF EfficientNet averaged them too). Evaluate with the averages through
`keras.callbacks.SwapEMAWeights()`; at the end of `fit` Keras calls
`optimizer.finalize_variable_values`, so **after `fit` the model holds the EMA weights**
(the raw weights are gone; a second `fit` continues from the averages).

Mixed precision needs no argument here: `model.compile` wraps the optimizer in a
`LossScaleOptimizer` under `mixed_float16` (weight decay and EMA stay on the inner one).
"""

import numbers

import keras
from keras import ops

from keras_cnn.validation import check_bool, check_choice, check_non_negative

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw", "lamb")
WEIGHT_DECAY_MODES = ("auto", "l2", "decoupled")
# Optimizers whose weight decay is decoupled by definition (their papers).
_DECOUPLED_ONLY = ("adamw", "lamb")

# Variables named like this are never decayed, whatever their rank.
NO_DECAY_NAMES = ("bias", "gamma", "beta")

# TF EfficientNet's RMSProp epsilon (same placement in Keras 3, see the module docstring).
RMSPROP_EPSILON = 1e-3


class CoupledWeightDecay:
    """Mixin: `weight_decay` as an L2 term in the gradient instead of Keras' decoupled decay.

    `update_step(g, w)` runs the base optimizer on `g + weight_decay * w` for every variable
    Keras would decay (`exclude_from_weight_decay` is honoured), and the decoupled
    `_apply_weight_decay` is switched off. See the module docstring for where in the step the
    term is added. The config is the base optimizer's (`weight_decay` keeps its name), so a
    `.keras` file restores the same update.
    """

    def _apply_weight_decay(self, variables):
        del variables  # the decay is part of the gradient (`update_step`)

    def update_step(self, gradient, variable, learning_rate):
        if self.weight_decay is not None and self._use_weight_decay(variable):
            gradient = ops.add(ops.cast(gradient, variable.dtype),
                               ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable))
        return super().update_step(gradient, variable, learning_rate)


@keras.saving.register_keras_serializable(package="keras_cnn")
class CoupledSGD(CoupledWeightDecay, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with L2 weight decay in the gradient (PyTorch's `SGD(weight_decay=...)`)."""


@keras.saving.register_keras_serializable(package="keras_cnn")
class CoupledRMSprop(CoupledWeightDecay, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with L2 weight decay in the gradient (TF EfficientNet's L2 loss)."""


@keras.saving.register_keras_serializable(package="keras_cnn")
class CoupledAdam(CoupledWeightDecay, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with L2 weight decay in the gradient (PyTorch's `Adam(weight_decay=...)`)."""


def resolve_weight_decay_mode(name, weight_decay_mode):
    """`"l2"` or `"decoupled"` for optimizer `name` (`"auto"`: see the module docstring).

    Raises:
        ValueError: An unknown mode, or `"l2"` with an optimizer that is decoupled by definition.
    """
    check_choice("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES)
    if weight_decay_mode == "auto":
        return "decoupled" if name in _DECOUPLED_ONLY else "l2"
    if weight_decay_mode == "l2" and name in _DECOUPLED_ONLY:
        raise ValueError(f"`weight_decay_mode` 'l2' does not apply to {name!r}, whose weight decay is decoupled by "
                         f"definition (use 'adam' for Adam with L2), received weight_decay_mode={weight_decay_mode!r}")
    return weight_decay_mode


def no_decay_variables(model):
    """Trainable variables that must not be weight-decayed (Bag of Tricks' "no bias decay").

    Every trainable variable of rank 0 or 1 (biases, BN/LayerNorm gamma and beta, SE biases,
    per-channel scales) plus any variable named `bias`, `gamma` or `beta`. Convolution and
    dense kernels stay decayed.

    Args:
        model: A Keras model (or layer).

    Returns:
        List of variables.
    """
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"`model` must be a Keras model, received model={model!r}")
    return [
        v for v in model.trainable_variables
        if len(v.shape) <= 1 or v.name.split("/")[-1].split(":")[0] in NO_DECAY_NAMES
    ]


def _check_optional_positive(argument, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{argument}` must be None or a number > 0, received {argument}={value!r}")


def _check_fraction(argument, value, *, closed=False):
    high_ok = value <= 1.0 if closed else value < 1.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= value and high_ok):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"`{argument}` must be a number in {interval}, received {argument}={value!r}")


def build_optimizer(
    name, learning_rate, *, weight_decay=0.0, weight_decay_mode="auto", no_bias_decay=True, model=None,
    momentum=0.9, nesterov=False, rho=0.9, epsilon=None, ema=None, clipnorm=None, global_clipnorm=None,
):
    """A Keras optimizer configured as in the papers.

    Args:
        name: `"sgd"` (momentum, optionally Nesterov), `"rmsprop"` (TF EfficientNet's),
            `"adam"`, `"adamw"` (Adam with decoupled decay; in Keras `"adam"` with
            `weight_decay > 0` is the same update) or `"lamb"`.
        learning_rate: A float or a `LearningRateSchedule` (see `schedules`).
        weight_decay: Weight decay coefficient (0: none), applied as `weight_decay_mode` says.
        weight_decay_mode: `"l2"` (coupled: `g + weight_decay * w`, the papers'),
            `"decoupled"` (Keras' `w -= lr * weight_decay * w`) or `"auto"` (decoupled for
            `"adamw"` / `"lamb"`, L2 otherwise); see the module docstring.
        no_bias_decay: Exclude `no_decay_variables(model)` from weight decay.
        model: The model to be trained; required when `weight_decay > 0` and
            `no_bias_decay`.
        momentum: Momentum of `"sgd"` and `"rmsprop"` (Adam-type optimizers use their
            `beta_1` default, 0.9).
        nesterov: Nesterov momentum (`"sgd"` only).
        rho: Discounting factor of `"rmsprop"` (TF's `decay`).
        epsilon: `None`: Keras' default, except `"rmsprop"`: 1e-3 (TF EfficientNet).
        ema: `None`, or the momentum of an exponential moving average of the weights (e.g.
            0.9999), Keras' `use_ema=True, ema_momentum=ema`.
        clipnorm: Clip each gradient to this norm (Keras' per-variable `clipnorm`).
        global_clipnorm: Clip all gradients together to this global norm.

    Returns:
        A `keras.optimizers.Optimizer` (`CoupledSGD` / `CoupledRMSprop` / `CoupledAdam` for L2
        weight decay).
    """
    check_choice("name", name, OPTIMIZERS)
    coupled = resolve_weight_decay_mode(name, weight_decay_mode) == "l2"
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        _check_optional_positive("learning_rate", learning_rate)
        if learning_rate is None:
            raise ValueError("`learning_rate` must be a number > 0 or a schedule, received learning_rate=None")
    check_non_negative("weight_decay", weight_decay)
    check_bool("no_bias_decay", no_bias_decay)
    _check_fraction("momentum", momentum)
    _check_fraction("rho", rho)
    check_bool("nesterov", nesterov)
    if nesterov and name != "sgd":
        raise ValueError(f"`nesterov` applies to 'sgd' only, received nesterov=True with name={name!r}")
    _check_optional_positive("epsilon", epsilon)
    _check_optional_positive("clipnorm", clipnorm)
    _check_optional_positive("global_clipnorm", global_clipnorm)
    if ema is not None:
        _check_fraction("ema", ema)
    decay_excluded = weight_decay > 0 and no_bias_decay
    if decay_excluded and model is None:
        raise ValueError(
            "`model` is required with weight_decay > 0 and no_bias_decay=True (its biases and "
            "BN gamma/beta are excluded from decay), received model=None"
        )

    common = {
        "learning_rate": learning_rate,
        "weight_decay": float(weight_decay) if weight_decay > 0 else None,
        "clipnorm": clipnorm,
        "global_clipnorm": global_clipnorm,
        "use_ema": ema is not None,
        "ema_momentum": float(ema) if ema is not None else 0.99,
    }
    if epsilon is not None:
        common["epsilon"] = float(epsilon)
    if name == "sgd":
        sgd = CoupledSGD if coupled else keras.optimizers.SGD
        optimizer = sgd(momentum=float(momentum), nesterov=nesterov, **common)
    elif name == "rmsprop":
        common.setdefault("epsilon", RMSPROP_EPSILON)
        rmsprop = CoupledRMSprop if coupled else keras.optimizers.RMSprop
        optimizer = rmsprop(rho=float(rho), momentum=float(momentum), **common)
    elif name == "adam":
        optimizer = (CoupledAdam if coupled else keras.optimizers.Adam)(**common)
    elif name == "adamw":
        # AdamW's `weight_decay` must be a float (None would fall back to no decay anyway).
        common["weight_decay"] = float(weight_decay)
        optimizer = keras.optimizers.AdamW(**common)
    else:
        optimizer = keras.optimizers.Lamb(**common)
    if decay_excluded:
        optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer
