"""Optimizers of the papers as Keras optimizers, with no-bias-decay and weight EMA.

**Weight decay** is Keras' decoupled `weight_decay`: at every step, before the gradient
update and with the gradient computed at the old weights, each decayed variable becomes
`w - learning_rate(step) * weight_decay * w` (the scheduled learning rate of that step;
`keras.optimizers.Optimizer._apply_weight_decay`). The papers' weight decay is an L2 term
in the gradient, `g + weight_decay * w` (PyTorch/MXNet `weight_decay`, TF
`weight_decay * sum(l2_loss)`):

- plain SGD (no momentum): identical with the same coefficient (both give
  `w - lr * (g + wd * w)`; tested);
- SGD with momentum `m`: L2's decay term also goes through the momentum buffer, so in a
  steady state it shrinks `w` by about `lr * wd / (1 - m)` per step (10x for m = 0.9),
  decoupled decay by `lr * wd`. Same coefficient means a weaker decay here; use
  `wd / (1 - m)` to match the papers' strength approximately (exactly only for constant
  gradients and learning rate);
- RMSProp/Adam: L2's term is divided by the adaptive denominator, decoupled decay is not
  (Loshchilov & Hutter's AdamW), so there is no equivalent coefficient. Keras multiplies the
  decay by the learning rate, as PyTorch's `AdamW`.

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

from keras_cnn.validation import check_choice

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw", "lamb")

# Variables named like this are never decayed, whatever their rank.
NO_DECAY_NAMES = ("bias", "gamma", "beta")

# TF EfficientNet's RMSProp epsilon (same placement in Keras 3, see the module docstring).
RMSPROP_EPSILON = 1e-3


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
    name, learning_rate, *, weight_decay=0.0, no_bias_decay=True, model=None, momentum=0.9, nesterov=False,
    rho=0.9, epsilon=None, ema=None, clipnorm=None, global_clipnorm=None,
):
    """A Keras optimizer configured as in the papers.

    Args:
        name: `"sgd"` (momentum, optionally Nesterov), `"rmsprop"` (TF EfficientNet's),
            `"adam"`, `"adamw"` (Adam with decoupled decay; in Keras `"adam"` with
            `weight_decay > 0` is the same update) or `"lamb"`.
        learning_rate: A float or a `LearningRateSchedule` (see `schedules`).
        weight_decay: Keras' decoupled weight decay coefficient (0: none); see the module
            docstring for how it relates to the papers' L2.
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
        A `keras.optimizers.Optimizer`.
    """
    check_choice("name", name, OPTIMIZERS)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        _check_optional_positive("learning_rate", learning_rate)
        if learning_rate is None:
            raise ValueError("`learning_rate` must be a number > 0 or a schedule, received learning_rate=None")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) or weight_decay < 0:
        raise ValueError(f"`weight_decay` must be a number >= 0, received weight_decay={weight_decay!r}")
    if not isinstance(no_bias_decay, bool):
        raise ValueError(f"`no_bias_decay` must be a bool, received no_bias_decay={no_bias_decay!r}")
    _check_fraction("momentum", momentum)
    _check_fraction("rho", rho)
    if not isinstance(nesterov, bool):
        raise ValueError(f"`nesterov` must be a bool, received nesterov={nesterov!r}")
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
        optimizer = keras.optimizers.SGD(momentum=float(momentum), nesterov=nesterov, **common)
    elif name == "rmsprop":
        common.setdefault("epsilon", RMSPROP_EPSILON)
        optimizer = keras.optimizers.RMSprop(rho=float(rho), momentum=float(momentum), **common)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(**common)
    elif name == "adamw":
        # AdamW's `weight_decay` must be a float (None would fall back to no decay anyway).
        common["weight_decay"] = float(weight_decay)
        optimizer = keras.optimizers.AdamW(**common)
    else:
        optimizer = keras.optimizers.Lamb(**common)
    if decay_excluded:
        optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer
