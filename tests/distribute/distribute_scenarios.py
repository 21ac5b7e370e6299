"""Distribution scenarios that need 2 logical CPU devices, run in a fresh process.

    python tests/distribute/distribute_scenarios.py <scenario>

Logical devices must be configured before TensorFlow initialises its devices, which a
pytest (xdist) worker has long done; `tests/distribute/test_distribute.py` starts this script with
`sys.executable` under a kill timeout and reads the last `RESULT {json}` line.
"""

import functools
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn import distribute, training  # noqa: E402

GLOBAL_BATCH = 16
STEPS = 3
DEVICES = ["/cpu:0", "/cpu:1"]


def _data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"), np.arange(GLOBAL_BATCH) % 10


def _tiny_resnet(bn="trainable"):
    """A narrow ResNet-10 (no dropout, no drop path). `bn`: "trainable", "frozen", "synchronized"."""
    model = keras_cnn.ResNet(
        (1, 1, 1, 1), "basic", planes=(8, 16, 16, 16), stem_width=8, input_shape=(32, 32, 3), classes=10
    )
    if bn == "synchronized":
        def clone(layer):
            config = layer.get_config()
            if isinstance(layer, keras.layers.BatchNormalization):
                config["synchronized"] = True
            return layer.__class__.from_config(config)

        model = keras.models.clone_model(model, clone_function=clone)
    if bn == "frozen":
        # Keras 3 runs a non-trainable BN in inference mode (moving statistics).
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def _train(strategy, *, bn="trainable", jit_compile=False, fix=True, predict=False, optimizer=None):
    keras.utils.set_random_seed(0)
    x, y = _data()
    with strategy.scope():
        model = _tiny_resnet(bn)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1) if optimizer is None else optimizer(model),
            loss="sparse_categorical_crossentropy",
            jit_compile=jit_compile,
        )
    if fix:
        distribute.use_replica_xla(model)
    initial = [w.numpy() for w in model.weights]
    history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=STEPS, shuffle=False, verbose=0).history
    # predict compiles one more program: only where the logits are checked.
    logits = model.predict(x[:4], verbose=0) if predict else np.zeros((1,), "float32")
    return {
        "loss": [float(v) for v in history["loss"]],
        "weights": [w.numpy() for w in model.weights],
        "moved": _max_diff(initial, [w.numpy() for w in model.weights]),
        "logits_dtype": str(logits.dtype),
        "finite": bool(np.isfinite(logits).all() and np.isfinite(history["loss"]).all()),
    }


def _max_diff(a, b):
    return max(float(np.max(np.abs(u.astype("float64") - v.astype("float64")))) for u, v in zip(a, b))


@functools.cache
def _mirrored():
    # One instance per process: two MirroredStrategy objects over the same devices reuse the
    # same collective group/instance keys, and TensorFlow then mixes their all-reduces.
    return distribute.get_strategy("mirrored", devices=DEVICES)


def _one_device():
    return distribute.get_strategy("one_device", devices=["/cpu:0"])


def upstream_failure():
    """Keras alone: jit_compile=True under MirroredStrategy(2) (keras-team/keras#19005)."""
    try:
        _train(_mirrored(), jit_compile=True, fix=False)
    except Exception as error:  # noqa: BLE001 - the point is which error Keras raises
        return {"error": type(error).__name__, "message": str(error)[-2000:]}
    return {"error": None}


def mirrored_equality():
    """No XLA, BN synchronized across replicas: 2 replicas == 1 device."""
    one, two = _train(_one_device(), bn="synchronized"), _train(_mirrored(), bn="synchronized")
    return {"loss_one": one["loss"], "loss_two": two["loss"], "moved": one["moved"],
            "max_weight_diff": _max_diff(one["weights"], two["weights"])}


def mirrored_xla():
    """XLA through use_replica_xla: frozen BN vs one device; per-replica BN vs Mirrored without XLA."""
    one = _train(_one_device(), bn="frozen")
    two_xla = _train(_mirrored(), bn="frozen", jit_compile=True)
    per_replica = _train(_mirrored(), bn="trainable")
    per_replica_xla = _train(_mirrored(), bn="trainable", jit_compile=True)
    return {
        "loss_one": one["loss"], "loss_two_xla": two_xla["loss"],
        "moved": one["moved"], "max_weight_diff_frozen_bn": _max_diff(one["weights"], two_xla["weights"]),
        "max_weight_diff_per_replica_bn": _max_diff(per_replica["weights"], per_replica_xla["weights"]),
        "per_replica_bn_loss": per_replica["loss"], "per_replica_bn_xla_loss": per_replica_xla["loss"],
    }


def mixed_float16_xla():
    """mixed_float16 (LossScaleOptimizer) under Mirrored(2) with XLA through use_replica_xla."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    result = _train(_mirrored(), jit_compile=True, predict=True)
    return {"loss": result["loss"], "logits_dtype": result["logits_dtype"], "finite": result["finite"]}


class CustomStepModel(keras.Model):
    """A tiny model whose train_step uses keras_cnn.distribute.train_step helpers only."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="tanh")
        self.out = keras.layers.Dense(3)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.examples_tracker = keras.metrics.Mean(name="examples")

    def call(self, x):
        return self.out(self.hidden(x))

    @property
    def metrics(self):
        return [self.loss_tracker, self.examples_tracker]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            per_example = keras.losses.sparse_categorical_crossentropy(y, self(x), from_logits=True)
            loss = distribute.replica_loss(per_example)
        grads = distribute.scaled_gradients(tape, loss, self.trainable_variables, self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(distribute.unscale_loss(loss))
        self.examples_tracker.update_state(distribute.all_reduce(tf.cast(tf.shape(x)[0], "float32")))
        return {m.name: m.result() for m in self.metrics}


def coupled_weight_decay():
    """L2 weight decay (CoupledSGD, momentum) under Mirrored(2) == one device: added once, after the sum."""
    def optimizer(model):
        return training.build_optimizer("sgd", 0.1, weight_decay=0.05, model=model)

    one = _train(_one_device(), bn="synchronized", optimizer=optimizer)
    two = _train(_mirrored(), bn="synchronized", optimizer=optimizer)
    plain = _train(_one_device(), bn="synchronized")
    return {"max_weight_diff": _max_diff(one["weights"], two["weights"]),
            "decay_effect": _max_diff(one["weights"], plain["weights"])}


def _custom(strategy, loss_scale):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(GLOBAL_BATCH, 8)).astype("float32"), np.arange(GLOBAL_BATCH) % 3
    with strategy.scope():
        model = CustomStepModel()
        model.build((None, 8))
        sgd = keras.optimizers.SGD(0.5)
        # A LossScaleOptimizer divides the gradients by 2**15: unscaled gradients would barely move.
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(sgd) if loss_scale else sgd)
    history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=STEPS, shuffle=False, verbose=0).history
    return history, [w.numpy() for w in model.weights]


def custom_train_step():
    """Custom train_step helpers: Mirrored(2) + LossScaleOptimizer == one device + plain SGD."""
    (h_one, w_one), (h_two, w_two) = _custom(_one_device(), False), _custom(_mirrored(), True)
    return {"loss_one": h_one["loss"], "loss_two": h_two["loss"], "examples_two": h_two["examples"],
            "examples_one": h_one["examples"], "max_weight_diff": _max_diff(w_one, w_two)}


SCENARIOS = {f.__name__: f for f in (upstream_failure, mirrored_equality, mirrored_xla, mixed_float16_xla,
                                      custom_train_step, coupled_weight_decay)}

if __name__ == "__main__":
    print("RESULT " + json.dumps(SCENARIOS[sys.argv[1]]()), flush=True)
