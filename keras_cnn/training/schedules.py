"""Learning-rate schedules of the papers, built from Keras' own schedules.

Everything returned here is a `keras.optimizers.schedules.LearningRateSchedule` (or a plain
float for a constant rate) that serializes into a `.keras` file and loads back with
`safe_mode=True`. Keras counts steps from 0 and the optimizer evaluates the schedule at its
`iterations` *before* incrementing it, so the first batch uses `schedule(0)`.

Keras' `CosineDecay` has a linear warmup built in; `ExponentialDecay`,
`PiecewiseConstantDecay` and `PolynomialDecay` do not, which is what `WarmupSchedule` adds.
Two warmup conventions exist in the reference code and both are offered (`shift`):

- shifted (Goyal et al. 2017 / GluonCV's Bag-of-Tricks code, Keras' `CosineDecay` warmup):
  after `warmup_steps` the wrapped schedule starts from its step 0, so it still spans its full
  length after the warmup;
- overlaid (tensorflow/tpu EfficientNet `utils.build_learning_rate`): the warmup replaces the
  first `warmup_steps` of the wrapped schedule, which keeps counting from step 0 (the step
  boundaries of the papers are absolute epochs).
"""

import numbers

import keras
from keras import ops

from keras_cnn.validation import (
    check_bool,
    check_non_negative,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
)

SCHEDULES = ("constant", "cosine", "exponential", "step", "poly")

# Extra keyword arguments `build_schedule` forwards to each builder.
_SCHEDULE_KWARGS = {
    "constant": ("warmup_start",),
    "cosine": ("alpha", "warmup_start"),
    "exponential": ("decay_rate", "decay_epochs", "staircase", "shift"),
    "step": ("boundaries_epochs", "factor"),
    "poly": ("power",),
}


def scale_learning_rate(base_learning_rate, batch_size, base_batch_size=256):
    """Linear scaling rule (Goyal et al. 2017; Bag of Tricks §3.1).

    `base_learning_rate * batch_size / base_batch_size`: e.g. 0.1 per 256 images gives 0.4 at
    batch 1024 (Bag of Tricks), EfficientNet's 0.016 per 256 gives 0.256 at 4096.

    Args:
        base_learning_rate: Learning rate at `base_batch_size`.
        batch_size: Global batch size actually used.
        base_batch_size: Batch size `base_learning_rate` was given for.

    Returns:
        The scaled learning rate (float).
    """
    check_positive_number("base_learning_rate", base_learning_rate)
    check_positive_int("batch_size", batch_size)
    check_positive_int("base_batch_size", base_batch_size)
    return float(base_learning_rate) * batch_size / base_batch_size


def _check_warmup(total_steps, warmup_steps):
    """A run of `total_steps` (> 0) whose first `warmup_steps` (>= 0) warm up: the warmup must end."""
    check_positive_int("total_steps", total_steps)
    check_non_negative_int("warmup_steps", warmup_steps)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"`warmup_steps` must be smaller than `total_steps` ({total_steps}), "
            f"received warmup_steps={warmup_steps!r}"
        )


def warmup_cosine(learning_rate, *, total_steps, warmup_steps=0, alpha=0.0, warmup_start=0.0):
    """Linear warmup then cosine decay: Keras' `CosineDecay` with its built-in warmup.

    Values: `warmup_start` at step 0, `learning_rate` at `warmup_steps`, a half cosine down to
    `alpha * learning_rate` at `total_steps` (and constant after). The whole run, warmup
    included, is `total_steps` long (Bag of Tricks §3.1: 5 warmup epochs out of 120).

    Args:
        learning_rate: Peak learning rate, reached at the end of the warmup.
        total_steps: Steps of the whole run, warmup included.
        warmup_steps: Steps of linear warmup (0: none).
        alpha: Final learning rate as a fraction of `learning_rate`.
        warmup_start: Learning rate at step 0 of the warmup (0 as Goyal et al.; note the
            first batch then has learning rate 0).

    Returns:
        A `keras.optimizers.schedules.CosineDecay`.
    """
    check_positive_number("learning_rate", learning_rate)
    _check_warmup(total_steps, warmup_steps)
    check_non_negative("alpha", alpha)
    check_non_negative("warmup_start", warmup_start)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(
            float(learning_rate), decay_steps=total_steps, alpha=float(alpha)
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=float(warmup_start),
        decay_steps=total_steps - warmup_steps,
        alpha=float(alpha),
        warmup_target=float(learning_rate),
        warmup_steps=warmup_steps,
    )


@keras.saving.register_keras_serializable(package="keras_cnn")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup in front of any schedule (or a constant learning rate).

    For `step < warmup_steps` the learning rate goes linearly from `warmup_start` (step 0) to
    the wrapped schedule's value at step 0; afterwards it is `schedule(step - warmup_steps)`
    (`shift=True`) or `schedule(step)` (`shift=False`, the tensorflow/tpu EfficientNet
    convention). Keras has warmup only in `CosineDecay`; the EfficientNet recipe needs it for
    `ExponentialDecay` (0.97 every 2.4 epochs), the CIFAR recipes for `PiecewiseConstantDecay`.

    Args:
        schedule: A `LearningRateSchedule` or a number (constant learning rate).
        warmup_steps: Steps of linear warmup (0: the schedule unchanged).
        warmup_start: Learning rate at step 0.
        shift: Whether the wrapped schedule starts after the warmup (see above).
        name: Name of the schedule.
    """

    def __init__(self, schedule, warmup_steps, warmup_start=0.0, shift=True, name="WarmupSchedule"):
        super().__init__()
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            check_positive_number("schedule", schedule)
            schedule = float(schedule)
        check_non_negative_int("warmup_steps", warmup_steps)
        check_non_negative("warmup_start", warmup_start)
        check_bool("shift", shift)
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.warmup_start = float(warmup_start)
        self.shift = shift
        self.name = name

    def _wrapped(self, step):
        if isinstance(self.schedule, float):
            return ops.convert_to_tensor(self.schedule, dtype="float32")
        return ops.cast(self.schedule(step), "float32")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.warmup_steps == 0:
            return self._wrapped(step)
        warmup_steps = float(self.warmup_steps)
        target = self._wrapped(ops.zeros((), "float32"))
        warmup = self.warmup_start + (target - self.warmup_start) * (step / warmup_steps)
        # Clamp so the wrapped schedule is never evaluated at a negative step (both branches
        # of `where` are computed).
        after = ops.maximum(step - warmup_steps, 0.0) if self.shift else step
        return ops.where(step < warmup_steps, warmup, self._wrapped(after))

    def get_config(self):
        schedule = self.schedule
        if not isinstance(schedule, float):
            schedule = keras.optimizers.schedules.serialize(schedule)
        return {
            "schedule": schedule,
            "warmup_steps": self.warmup_steps,
            "warmup_start": self.warmup_start,
            "shift": self.shift,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)


def _maybe_warmup(schedule, warmup_steps, warmup_start=0.0, shift=True):
    check_non_negative_int("warmup_steps", warmup_steps)
    if warmup_steps == 0:
        return schedule
    return WarmupSchedule(schedule, warmup_steps, warmup_start=warmup_start, shift=shift)


def warmup_exponential(
    learning_rate, *, steps_per_epoch, decay_rate=0.97, decay_epochs=2.4, warmup_steps=0, staircase=True,
    shift=False,
):
    """Exponential decay every `decay_epochs` epochs with optional linear warmup (EfficientNet).

    `learning_rate * decay_rate ** floor(step / (decay_epochs * steps_per_epoch))`, the
    tensorflow/tpu EfficientNet schedule (0.97 every 2.4 epochs, 5 warmup epochs). By default
    the warmup is overlaid on the decay as in that code (`shift=False`): at the end of the
    warmup the rate is already `learning_rate * decay_rate ** floor(warmup / decay_steps)`.

    Args:
        learning_rate: Initial (peak) learning rate.
        steps_per_epoch: Optimizer steps per epoch.
        decay_rate: Factor applied every `decay_epochs`.
        decay_epochs: Epochs between decays (may be fractional).
        warmup_steps: Steps of linear warmup from 0.
        staircase: Decay in discrete steps (True, as the paper) or continuously.
        shift: Start the decay after the warmup instead of at step 0.

    Returns:
        A `LearningRateSchedule`.
    """
    check_positive_number("learning_rate", learning_rate)
    check_positive_int("steps_per_epoch", steps_per_epoch)
    check_positive_number("decay_rate", decay_rate)
    check_positive_number("decay_epochs", decay_epochs)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        float(learning_rate),
        decay_steps=float(decay_epochs) * steps_per_epoch,
        decay_rate=float(decay_rate),
        staircase=bool(staircase),
    )
    return _maybe_warmup(schedule, warmup_steps, shift=shift)


def step_decay(learning_rate, *, steps_per_epoch, boundaries_epochs, factor=0.1, warmup_steps=0):
    """Piecewise-constant decay at given epochs (ResNet, WRN x0.2, DenseNet x0.1).

    The learning rate is multiplied by `factor` at each of `boundaries_epochs` (absolute
    epochs, counted from the start of training; a warmup is overlaid on the first epochs):
    from step `boundary * steps_per_epoch` (0-based) on, the first step of that epoch.

    Args:
        learning_rate: Initial learning rate.
        steps_per_epoch: Optimizer steps per epoch.
        boundaries_epochs: Increasing epochs at which the rate is multiplied by `factor`.
        factor: Multiplier at each boundary.
        warmup_steps: Steps of linear warmup from 0.

    Returns:
        A `LearningRateSchedule`.
    """
    check_positive_number("learning_rate", learning_rate)
    check_positive_int("steps_per_epoch", steps_per_epoch)
    check_positive_number("factor", factor)
    ok = isinstance(boundaries_epochs, (list, tuple)) and len(boundaries_epochs) > 0 and all(
        isinstance(b, numbers.Real) and not isinstance(b, bool) and b > 0 for b in boundaries_epochs
    )
    if not ok or list(boundaries_epochs) != sorted(set(boundaries_epochs)):
        raise ValueError(
            "`boundaries_epochs` must be a non-empty increasing sequence of positive epochs, "
            f"received boundaries_epochs={boundaries_epochs!r}"
        )
    # Keras' PiecewiseConstantDecay keeps the old value *at* a boundary step (`step <= b`);
    # "x0.1 at epoch 30" means from the first step of epoch 30 (0-based step 30 * spe) on.
    boundaries = [max(int(round(b * steps_per_epoch)) - 1, 0) for b in boundaries_epochs]
    values = [float(learning_rate) * float(factor) ** i for i in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return _maybe_warmup(schedule, warmup_steps, shift=False)


def polynomial_decay(learning_rate, *, total_steps, power=1.0, warmup_steps=0):
    """Polynomial ("poly") decay to 0 at `total_steps`; `power=1` is SqueezeNet's linear decay.

    With a warmup, the decay starts after it (shifted) and still ends at `total_steps`.

    Args:
        learning_rate: Initial (peak) learning rate.
        total_steps: Steps of the whole run, warmup included.
        power: Exponent of the decay.
        warmup_steps: Steps of linear warmup from 0.

    Returns:
        A `LearningRateSchedule`.
    """
    check_positive_number("learning_rate", learning_rate)
    check_positive_number("power", power)
    _check_warmup(total_steps, warmup_steps)
    schedule = keras.optimizers.schedules.PolynomialDecay(
        float(learning_rate), decay_steps=total_steps - warmup_steps, end_learning_rate=0.0, power=float(power)
    )
    return _maybe_warmup(schedule, warmup_steps, shift=True)


def build_schedule(name, learning_rate, *, steps_per_epoch, epochs, warmup_epochs=0, **kwargs):
    """A schedule by name, in epochs (what recipes use).

    Args:
        name: One of `"constant"`, `"cosine"`, `"exponential"`, `"step"`, `"poly"`.
        learning_rate: Peak learning rate (after warmup).
        steps_per_epoch: Optimizer steps per epoch.
        epochs: Epochs of the whole run, warmup included.
        warmup_epochs: Epochs of linear warmup from 0 (may be fractional; rounded to steps).
        **kwargs: Schedule-specific arguments: cosine `alpha`, `warmup_start`; exponential
            `decay_rate`, `decay_epochs`, `staircase`, `shift`; step `boundaries_epochs`
            (required), `factor`; poly `power`; constant `warmup_start`.

    Returns:
        A float (constant without warmup) or a `LearningRateSchedule`.
    """
    if name not in SCHEDULES:
        raise ValueError(f"`name` must be one of {list(SCHEDULES)}, received name={name!r}")
    unknown = sorted(set(kwargs) - set(_SCHEDULE_KWARGS[name]))
    if unknown:
        raise ValueError(
            f"Unknown arguments {unknown} for schedule {name!r}; valid: {list(_SCHEDULE_KWARGS[name])}"
        )
    check_positive_number("learning_rate", learning_rate)
    check_positive_int("steps_per_epoch", steps_per_epoch)
    check_positive_int("epochs", epochs)
    check_non_negative("warmup_epochs", warmup_epochs)
    total_steps = epochs * steps_per_epoch
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    if warmup_steps >= total_steps:
        raise ValueError(
            f"`warmup_epochs` must be smaller than `epochs` ({epochs}), received warmup_epochs={warmup_epochs!r}"
        )
    if name == "constant":
        if warmup_steps == 0:
            return float(learning_rate)
        return WarmupSchedule(float(learning_rate), warmup_steps, warmup_start=kwargs.get("warmup_start", 0.0))
    if name == "cosine":
        return warmup_cosine(learning_rate, total_steps=total_steps, warmup_steps=warmup_steps, **kwargs)
    if name == "exponential":
        return warmup_exponential(
            learning_rate, steps_per_epoch=steps_per_epoch, warmup_steps=warmup_steps, **kwargs
        )
    if name == "step":
        if "boundaries_epochs" not in kwargs:
            raise ValueError("Schedule 'step' needs `boundaries_epochs`, received none")
        return step_decay(learning_rate, steps_per_epoch=steps_per_epoch, warmup_steps=warmup_steps, **kwargs)
    return polynomial_decay(learning_rate, total_steps=total_steps, warmup_steps=warmup_steps, **kwargs)
