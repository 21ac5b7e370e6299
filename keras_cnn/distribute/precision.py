"""Mixed-precision policy per device kind.

| device | `"auto"` gives       | why                                                             |
|--------|----------------------|-----------------------------------------------------------------|
| TPU    | `mixed_bfloat16`     | the MXU computes in bfloat16; no loss scaling needed            |
| GPU    | `mixed_float16`      | tensor cores; `compile` wraps the optimizer in a                |
|        |                      | `LossScaleOptimizer` (dynamic loss scaling) automatically       |
| CPU    | `float32`            | `mixed_bfloat16` helps some networks and hurts others, so it is |
|        |                      | opt-in: a 224 px training step on the AVX512-BF16 2-core CPU of |
|        |                      | issue 16 is 1.70x faster for DenseNet-121 but 0.74x for         |
|        |                      | EfficientNet-B0 (depthwise convs). `mixed_float16` adds loss    |
|        |                      | scaling for nothing                                             |

An explicit request is honoured on every device (the tests run both mixed policies on
CPU), except `mixed_float16` on a TPU, which has no float16 arithmetic. The models keep
their classifier in float32 under a mixed policy (`keras_cnn.models.base.head_dtype`), so
logits and losses are float32.
"""

import logging

import keras

LOGGER = logging.getLogger("keras_cnn.distribute")

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
AUTO_POLICY = {"tpu": "mixed_bfloat16", "gpu": "mixed_float16", "cpu": "float32"}


def _device_kind(strategy_or_device_kind):
    if isinstance(strategy_or_device_kind, str):
        kind = strategy_or_device_kind.lower()
        if kind not in AUTO_POLICY:
            raise ValueError(
                f"`strategy_or_device_kind` must be a tf.distribute.Strategy or one of "
                f"{tuple(AUTO_POLICY)}, received strategy_or_device_kind={strategy_or_device_kind!r}"
            )
        return kind
    from keras_cnn.distribute.strategy import device_kind

    return device_kind(strategy_or_device_kind)


def choose_precision(strategy_or_device_kind=None, requested="auto"):
    """The Keras dtype policy name for a device kind.

    Args:
        strategy_or_device_kind: A `tf.distribute.Strategy`, `"tpu"`, `"gpu"` or `"cpu"`;
            `None` uses the current strategy.
        requested: `"auto"` (the table in the module docstring) or one of `POLICIES`.

    Returns:
        A policy name for `keras.mixed_precision.set_global_policy`.
    """
    if requested != "auto" and requested not in POLICIES:
        raise ValueError(f"`requested` must be 'auto' or one of {POLICIES}, received requested={requested!r}")
    kind = _device_kind(strategy_or_device_kind)
    if requested == "auto":
        return AUTO_POLICY[kind]
    if kind == "tpu" and requested == "mixed_float16":
        raise ValueError(
            "TPUs have no float16 arithmetic; use 'mixed_bfloat16' (or 'auto'), "
            f"received requested={requested!r}"
        )
    return requested


def set_precision(strategy_or_device_kind=None, requested="auto", logger=LOGGER):
    """Chooses the policy (`choose_precision`) and makes it Keras' global policy.

    Call it before building the model: layers take the global policy when created.

    Args:
        strategy_or_device_kind: As `choose_precision`.
        requested: As `choose_precision`.
        logger: Where the choice is logged.

    Returns:
        The policy name that was set.
    """
    policy = choose_precision(strategy_or_device_kind, requested)
    keras.mixed_precision.set_global_policy(policy)
    logger.info("set_precision: %s (requested %s)", policy, requested)
    return policy
