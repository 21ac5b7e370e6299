"""XLA: an explicit per-device/per-model policy, and XLA under multi-replica strategies.

**Policy** (`choose_jit_compile`). Keras' `jit_compile="auto"` resolves to False under any
strategy and on CPU, and "always XLA" is wrong too. The decision is this table, keyed by
device kind and by whether the model has depthwise convolutions (`XLA_POLICY`, editable,
or `override=`):

| device | depthwise | XLA   | why (measured on issue 4's 2-core CPU, TF 2.21)                  |
|--------|-----------|-------|------------------------------------------------------------------|
| cpu    | no        | off   | ResNet-50 training step 1.3x slower with XLA                     |
| cpu    | yes       | off   | EfficientNet-B0 ~9x slower: XLA:CPU's depthwise convs are slow   |
| gpu    | no        | on    | fuses BN/activation/residual element-wise ops around cuDNN convs |
| gpu    | yes       | on    | the same, and fuses the memory-bound depthwise blocks            |
| tpu    | any       | on    | everything on a TPU is compiled by XLA whatever Keras is told    |

**Multi-replica fix** (`use_replica_xla`). With `jit_compile=True` under a strategy with
>= 2 replicas (`MirroredStrategy`, `MultiWorkerMirroredStrategy`), Keras 3 compiles the
whole `strategy.run(train_step)` into one XLA cluster, which then reads the variables of
`replica_1` from `CPU:0`/`GPU:0` and fails (`InvalidArgumentError: Trying to access
resource .../replica_1/... located in device ...:1 from device ...:0`, see
https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_different_device). Upstream:
keras-team/keras#19005 (closed by making `"auto"` resolve to False under a strategy;
explicit `True` still fails with Keras 3.15.1 / TF 2.21, reproduced by
`tests/distribute/distribute_scenarios.py::upstream_failure`).

The fix compiles, per replica, a *pure* function (tensors in, tensors out: Keras'
`stateless_call` + `stateless_compute_loss`, the JAX trainer's pattern) that returns the
gradients, the loss, the predictions and the new non-trainable values; it runs on the
replica's own device, so no cross-device resource is touched inside XLA. The gradient
all-reduce and the optimizer update (`apply_gradients`), the BN statistics assignment and
the metrics run outside XLA, exactly as in Keras' own `train_step`. Removal: when
`upstream_failure` stops failing, delete `use_replica_xla` and its call sites.
"""

import fnmatch
import functools
import logging

import keras
import tensorflow as tf

from keras_cnn.distribute.train_step import unscale_loss
from keras_cnn.validation import check_bool

LOGGER = logging.getLogger("keras_cnn.distribute")
UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/19005"

DEVICE_KINDS = ("cpu", "gpu", "tpu")
# (device kind, has depthwise convolutions) -> (jit_compile, reason). See the module docstring.
XLA_POLICY = {
    ("cpu", False): (False, "XLA:CPU is 1.3x slower for a ResNet-50 training step"),
    ("cpu", True): (False, "XLA:CPU is ~9x slower for depthwise convolutions (EfficientNet-B0)"),
    ("gpu", False): (True, "XLA fuses the element-wise ops around GPU convolutions"),
    ("gpu", True): (True, "XLA fuses the memory-bound depthwise blocks on GPU"),
    ("tpu", False): (True, "TPU programs are always XLA-compiled"),
    ("tpu", True): (True, "TPU programs are always XLA-compiled"),
}
# Families whose blocks are depthwise-separable (`has_depthwise` checks this table
# against built models in the tests, so a new family cannot silently be missed).
DEPTHWISE_FAMILIES = frozenset({"efficientnet", "mobilenet"})
# Their registry names, matched by pattern: this low layer does not import the registry
# (tests/test_import_graph.py checks the patterns against every registered name's family).
DEPTHWISE_NAMES = ("efficientnet_*", "mobilenet", "mobilenetv1_*")


def has_depthwise(model_or_name):
    """Whether a model (or registry name) has depthwise convolutions.

    Args:
        model_or_name: A `keras.Model` (its layers are inspected) or a registry name
            (matched against `DEPTHWISE_NAMES`, without building it).

    Returns:
        bool.
    """
    if isinstance(model_or_name, str):
        return any(fnmatch.fnmatchcase(model_or_name, pattern) for pattern in DEPTHWISE_NAMES)
    if not isinstance(model_or_name, keras.Model):
        raise ValueError(
            f"`model_or_name` must be a keras.Model or a registry name, received model_or_name={model_or_name!r}"
        )
    for layer in model_or_name._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return True
        if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1:
            in_channels = layer.input.shape[-1]
            if in_channels == layer.groups:
                return True
    return False


def choose_jit_compile(model_or_name, device_kind=None, strategy=None, *, override=None, logger=LOGGER):
    """Whether to compile a model's steps with XLA: the `XLA_POLICY` table, not a guess.

    Args:
        model_or_name: A `keras.Model` or a registry name (see `has_depthwise`).
        device_kind: `"cpu"`, `"gpu"` or `"tpu"`; `None` takes it from `strategy`.
        strategy: A `tf.distribute.Strategy` (`None`: the current one); only used for the
            device kind. Under >= 2 replicas a True answer needs `use_replica_xla` after
            `compile` (Keras alone fails, see the module docstring).
        override: `True`/`False` to force the answer (logged), `None` for the table.
        logger: Where the decision and its reason are logged.

    Returns:
        bool, for `model.compile(jit_compile=...)`.
    """
    check_bool("override", override, allow_none=True)
    if device_kind is None:
        from keras_cnn.distribute.strategy import device_kind as strategy_device_kind

        device_kind = strategy_device_kind(strategy)
    if device_kind not in DEVICE_KINDS:
        raise ValueError(f"`device_kind` must be one of {DEVICE_KINDS}, received device_kind={device_kind!r}")
    depthwise = has_depthwise(model_or_name)
    jit, reason = XLA_POLICY[(device_kind, depthwise)]
    if override is not None:
        jit, reason = override, f"override (table: {jit}, {reason})"
    name = model_or_name if isinstance(model_or_name, str) else model_or_name.name
    logger.info("choose_jit_compile(%s, %s, depthwise=%s): %s, %s", name, device_kind, depthwise, jit, reason)
    return jit


def needs_replica_xla(model):
    """Whether `model` is compiled with XLA under a strategy that Keras cannot compile whole."""
    strategy = model.distribute_strategy
    return (
        model.jit_compile is True
        and strategy.num_replicas_in_sync > 1
        and not isinstance(strategy, tf.distribute.TPUStrategy)
    )


def _values(variables):
    # Read in replica context: each replica gets its own device's copy.
    return [tf.convert_to_tensor(v.value) for v in variables]


def _check_no_synchronized_bn(model):
    synchronized = [layer.name for layer in model._flatten_layers() if getattr(layer, "synchronized", False)]
    if synchronized:
        # Their cross-replica all-reduce would sit inside the per-replica XLA function.
        raise ValueError(
            f"use_replica_xla cannot compile BatchNormalization(synchronized=True) layers {synchronized} "
            f"per replica; use jit_compile=False or unsynchronized BN (received model={model.name!r})"
        )


def _call_kwargs(model, training):
    return {"training": training} if model._call_has_training_arg else {}


def _make_forward_backward(model):
    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward_backward(trainable, non_trainable, metrics, loss_scale, x, y, sample_weight):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            y_pred, non_trainable, losses = model.stateless_call(
                trainable, non_trainable, x, return_losses=True, **_call_kwargs(model, True)
            )
            # As Keras' JAX trainer: regularisation losses of the stateless forward reach
            # compute_loss through `_losses_override`.
            model._losses_override = losses
            try:
                loss, (_, non_trainable, metrics) = model.stateless_compute_loss(
                    trainable, non_trainable, metrics, x=x, y=y, y_pred=y_pred,
                    sample_weight=sample_weight, training=True,
                )
            finally:
                model._losses_override = []
        # Seeding with the loss scale gives the gradients a LossScaleOptimizer expects.
        grads = tape.gradient(loss, trainable, output_gradients=tf.cast(loss_scale, loss.dtype))
        return grads, loss, y_pred, non_trainable, metrics

    return forward_backward


def _make_forward(model):
    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(trainable, non_trainable, x):
        y_pred, _ = model.stateless_call(trainable, non_trainable, x, **_call_kwargs(model, False))
        return y_pred

    return forward


def _batch_size(x):
    return tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]


def _train_step(model, forward_backward, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    loss_scale = model.optimizer.scale_loss(tf.ones((), "float32"))
    grads, loss, y_pred, non_trainable, metrics = forward_backward(
        _values(model.trainable_variables), _values(model.non_trainable_variables),
        _values(model.metrics_variables), loss_scale, x, y, sample_weight,
    )
    for variable, value in zip(model.non_trainable_variables, non_trainable):
        variable.assign(value)
    for variable, value in zip(model.metrics_variables, metrics):
        variable.assign(value)
    model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
    model._loss_tracker.update_state(unscale_loss(loss), sample_weight=_batch_size(x))
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _test_step(model, forward, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = forward(_values(model.trainable_variables), _values(model.non_trainable_variables), x)
    loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    model._loss_tracker.update_state(unscale_loss(loss), sample_weight=_batch_size(x))
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def use_replica_xla(model):
    """Makes `jit_compile=True` work under MirroredStrategy / MultiWorkerMirroredStrategy.

    Compatibility layer for keras-team/keras#19005 (see the module docstring): when the
    model is compiled with `jit_compile=True` under >= 2 replicas, its train and test
    functions compile only the per-replica forward (and backward) with XLA (Keras'
    predict function already compiles per replica, and works); gradient
    all-reduce, optimizer update, BN statistics and metrics run outside XLA. Otherwise
    (one replica, TPU, no XLA) Keras' own functions are used unchanged. The decision is
    made each time Keras builds its step functions, so a later `compile` is honoured.
    Only models that use Keras' default `train_step`/`test_step` are
    supported; a custom `train_step` should call its own per-replica XLA function.

    Args:
        model: A `keras.Model` created under the strategy's scope.

    Returns:
        `model` (patched in place; idempotent).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model, received model={model!r}")
    if getattr(model, "_keras_cnn_replica_xla", False):
        return model
    for step in ("train_step", "test_step"):
        if getattr(type(model), step) is not getattr(keras.Model, step):
            raise ValueError(
                f"use_replica_xla supports Keras' default {step}; {type(model).__name__} overrides it "
                f"(received model={model.name!r})"
            )
    if needs_replica_xla(model):
        _check_no_synchronized_bn(model)
    forward_backward, forward = _make_forward_backward(model), _make_forward(model)
    steps = {
        "train": functools.partial(_train_step, model, forward_backward),
        "test": functools.partial(_test_step, model, forward),
    }
    keras_makers = {kind: getattr(model, f"make_{kind}_function") for kind in steps}

    def patched_maker(kind, force=False):
        attribute = f"{kind}_function"
        if getattr(model, attribute) is not None and not force:
            return getattr(model, attribute)
        if not needs_replica_xla(model):
            return keras_makers[kind](force=force)
        _check_no_synchronized_bn(model)
        LOGGER.info("use_replica_xla: %s function compiled per replica (%s)", kind, UPSTREAM_ISSUE)
        # Keras' `_make_function` wraps the whole `strategy.run` in tf.function(jit_compile=
        # self.jit_compile): build it with XLA off there (it is on inside each replica).
        model.jit_compile = False
        try:
            setattr(model, attribute, model._make_function(steps[kind]))
        finally:
            model.jit_compile = True
        return getattr(model, attribute)

    for kind in steps:
        setattr(model, f"make_{kind}_function", functools.partial(patched_maker, kind))
    model._keras_cnn_replica_xla = True
    model.train_function = model.test_function = None
    return model
