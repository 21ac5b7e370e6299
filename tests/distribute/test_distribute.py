"""keras_cnn.distribute: strategy, precision and XLA choosers, replica XLA, custom-step helpers.

Scenarios needing 2 logical CPU devices run in a fresh process (`distribute_scenarios.py`).
What cannot run here (no TPU): `tf.config.experimental_connect_to_cluster`,
`initialize_tpu_system` and `TPUStrategy`; everything before them (address and
`TF_CONFIG` parsing, the `"auto"` decision, the resolver) is tested.
"""

import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnn
from keras_cnn import distribute
from keras_cnn.distribute import strategy as strategy_module
from keras_cnn.distribute import xla

SCENARIOS = os.path.join(os.path.dirname(__file__), "distribute_scenarios.py")
TOLERANCE = 1e-5
TWO_WORKERS = json.dumps(
    {"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]}, "task": {"type": "worker", "index": 0}}
)


def run_scenario(name, timeout=540):
    """Runs one scenario of distribute_scenarios.py in a fresh interpreter, killed after `timeout` s."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    command = ["timeout", "-s", "KILL", str(timeout), sys.executable, SCENARIOS, name]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout + 30)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, f"scenario {name} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(results[-1][len("RESULT "):])


# --- strategy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "num_gpus", "kind"),
    [
        ({}, 0, "one_device"),
        ({}, 1, "one_device"),
        ({}, 2, "mirrored"),
        ({"TF_CONFIG": TWO_WORKERS}, 2, "multi_worker"),
        ({"TF_CONFIG": TWO_WORKERS.replace(', "127.0.0.1:20002"', "")}, 0, "one_device"),
        ({"TPU_NAME": "my-tpu", "TF_CONFIG": TWO_WORKERS}, 8, "tpu"),
        ({"KERAS_CNN_TPU": "local"}, 0, "tpu"),
    ],
)
def test_auto_strategy_kind(environ, num_gpus, kind):
    assert distribute.resolve_strategy_kind("auto", environ=environ, num_gpus=num_gpus).kind == kind


def test_tpu_address_precedence():
    environ = {"TPU_NAME": "from-cloud", "KERAS_CNN_TPU": "ours"}
    assert strategy_module.tpu_address(None, environ) == "ours"
    assert strategy_module.tpu_address("grpc://10.0.0.2:8470", environ) == "grpc://10.0.0.2:8470"
    assert strategy_module.tpu_address(None, {"TPU_NAME": "from-cloud"}) == "from-cloud"
    assert strategy_module.tpu_address(None, {"TPU_NAME": "  "}) is None
    choice = distribute.resolve_strategy_kind("tpu", tpu="grpc://10.0.0.2:8470", environ={})
    assert (choice.kind, choice.tpu) == ("tpu", "grpc://10.0.0.2:8470")


def test_tpu_resolver_without_a_tpu():
    # Constructing the resolver for a grpc address contacts nothing; connecting would.
    resolver = strategy_module.tpu_cluster_resolver("grpc://127.0.0.1:8470")
    assert resolver.master() == "grpc://127.0.0.1:8470"
    assert resolver.cluster_spec().as_dict() == {"worker": ["127.0.0.1:8470"]}


@pytest.mark.parametrize(
    ("kwargs", "environ", "match"),
    [
        ({"kind": "gpu"}, {}, "kind='gpu'"),
        ({"kind": "tpu"}, {}, "tpu=None"),
        ({"kind": "tpu", "tpu": ""}, {}, "tpu=''"),
        ({"kind": "multi_worker"}, {}, "TF_CONFIG unset"),
        ({"kind": "multi_worker"}, {"TF_CONFIG": "{not json"}, "must be JSON"),
        ({"kind": "auto"}, {"TF_CONFIG": '{"cluster": {}}'}, "'cluster' mapping"),
        ({"kind": "auto"}, {"TF_CONFIG": TWO_WORKERS.replace('"index": 0', '"index": 5')}, "not a member"),
    ],
)
def test_strategy_kind_errors(kwargs, environ, match):
    with pytest.raises(ValueError, match=match):
        distribute.resolve_strategy_kind(environ=environ, **kwargs)


def test_get_strategy_auto_on_cpu_logs_its_choice(monkeypatch, caplog):
    for var in ("TF_CONFIG", *strategy_module.TPU_ENV_VARS):
        monkeypatch.delenv(var, raising=False)
    with caplog.at_level(logging.INFO, logger="keras_cnn.distribute"):
        strategy = distribute.get_strategy()
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert "OneDeviceStrategy" in caplog.text
    assert distribute.device_kind(strategy) == "cpu"


def test_get_strategy_multi_worker_after_devices_initialised(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", TWO_WORKERS)
    tf.constant(1.0)  # initialises the devices, as any earlier op would
    assert strategy_module.devices_initialized()
    with pytest.raises(RuntimeError, match="before any other TensorFlow op"):
        distribute.get_strategy("multi_worker")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "mirrored", "devices": "/cpu:0"}, "devices='/cpu:0'"),
        ({"kind": "one_device", "devices": ["/cpu:0", "/cpu:1"]}, "one device"),
    ],
)
def test_get_strategy_device_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distribute.get_strategy(**kwargs)


# --- precision ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "requested", "policy"),
    [
        ("tpu", "auto", "mixed_bfloat16"),
        ("gpu", "auto", "mixed_float16"),
        ("cpu", "auto", "float32"),
        ("cpu", "mixed_bfloat16", "mixed_bfloat16"),
        ("gpu", "float32", "float32"),
        ("GPU", "mixed_bfloat16", "mixed_bfloat16"),
    ],
)
def test_choose_precision(device, requested, policy):
    assert distribute.choose_precision(device, requested) == policy


def test_choose_precision_from_strategy_and_errors():
    assert distribute.choose_precision(tf.distribute.OneDeviceStrategy("/cpu:0")) == "float32"
    for args, match in [(("tpu", "mixed_float16"), "float16"), (("cpu", "fp16"), "requested='fp16'"),
                        (("npu",), "strategy_or_device_kind='npu'")]:
        with pytest.raises(ValueError, match=match):
            distribute.choose_precision(*args)


def test_set_precision_sets_the_global_policy():
    assert distribute.set_precision("gpu") == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "mixed_float16"


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_steps(policy):
    distribute.set_precision("cpu", policy)
    model = keras_cnn.ResNet((1, 1, 1, 1), "basic", planes=(8, 16, 16, 16), stem_width=8,
                             input_shape=(32, 32, 3), classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"), np.arange(16) % 10
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    logits = model(x[:4])
    assert model.get_layer("stem_conv").compute_dtype == policy.split("_")[1]
    assert logits.dtype == "float32"
    assert np.isfinite(history.history["loss"]).all() and np.isfinite(logits.numpy()).all()
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights))


# --- XLA policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "device", "expected"),
    [
        ("resnet50", "cpu", False),
        ("efficientnet_b0", "cpu", False),
        ("resnet50", "gpu", True),
        ("efficientnet_b0", "gpu", True),
        ("mobilenetv1_100", "tpu", True),
        ("densenet121", "tpu", True),
    ],
)
def test_choose_jit_compile_table(name, device, expected):
    assert distribute.choose_jit_compile(name, device) is expected


def test_choose_jit_compile_override_strategy_and_errors(caplog):
    with caplog.at_level(logging.INFO, logger="keras_cnn.distribute"):
        assert distribute.choose_jit_compile("resnet18", "cpu", override=True) is True
    assert "override" in caplog.text
    assert distribute.choose_jit_compile("resnet18", strategy=tf.distribute.OneDeviceStrategy("/cpu:0")) is False
    with pytest.raises(ValueError, match="device_kind='npu'"):
        distribute.choose_jit_compile("resnet18", "npu")
    with pytest.raises(ValueError, match="override='yes'"):
        distribute.choose_jit_compile("resnet18", "gpu", override="yes")


@pytest.mark.parametrize(
    ("name", "depthwise"),
    [
        ("efficientnet_b0", True),
        ("mobilenetv1_050", True),
        ("mobilenet", True),
        ("resnet18", False),
        ("resnext50_32x4d", False),  # grouped, not depthwise
        ("densenet121", False),
        ("squeezenet1_1", False),
    ],
)
def test_depthwise_table_matches_built_models(name, depthwise):
    model = keras_cnn.create_model(name, input_shape=(64, 64, 3), classes=10)
    assert xla.has_depthwise(model) is xla.has_depthwise(name) is depthwise


# --- multi-replica XLA (keras-team/keras#19005) and custom train_step helpers ------------


def test_use_replica_xla_leaves_single_replica_models_alone():
    model = keras_cnn.LeNet5()
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)
    assert distribute.use_replica_xla(model) is model
    assert not xla.needs_replica_xla(model)
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(0, 255, (8, 32, 32, 1)).astype("float32"), np.arange(8) % 10, verbose=0)
    assert model.jit_compile is True
    with pytest.raises(ValueError, match="model=3"):
        distribute.use_replica_xla(3)


@pytest.mark.slow
def test_upstream_still_fails_without_the_fix():
    # When Keras fixes keras-team/keras#19005 this fails: remove use_replica_xla then.
    result = run_scenario("upstream_failure")
    assert result["error"] == "InvalidArgumentError"
    assert "replica_1" in result["message"] and "Trying to access resource" in result["message"]


@pytest.mark.slow
def test_mirrored_two_replicas_equal_one_device():
    # BN statistics are per replica under Mirrored; synchronized BN makes them global.
    result = run_scenario("mirrored_equality")
    assert result["moved"] > 1e-2
    assert result["max_weight_diff"] < TOLERANCE
    np.testing.assert_allclose(result["loss_two"], result["loss_one"], rtol=TOLERANCE)


@pytest.mark.slow
def test_mirrored_xla_through_use_replica_xla():
    result = run_scenario("mirrored_xla")
    assert result["moved"] > 1e-2
    # Frozen BN (moving statistics): XLA on 2 replicas == 1 device without XLA.
    assert result["max_weight_diff_frozen_bn"] < TOLERANCE
    np.testing.assert_allclose(result["loss_two_xla"], result["loss_one"], rtol=TOLERANCE)
    # Trainable BN (per-replica statistics, assigned outside XLA): == Mirrored without XLA.
    assert result["max_weight_diff_per_replica_bn"] < TOLERANCE
    np.testing.assert_allclose(result["per_replica_bn_xla_loss"], result["per_replica_bn_loss"], rtol=TOLERANCE)


@pytest.mark.slow
def test_mixed_float16_under_mirrored_xla():
    result = run_scenario("mixed_float16_xla")
    assert result["finite"] and result["logits_dtype"] == "float32"


def test_custom_train_step_helpers_under_mirrored():
    # Mirrored(2) with a LossScaleOptimizer vs one device with plain SGD: same loss, weights.
    result = run_scenario("custom_train_step")
    np.testing.assert_allclose(result["loss_two"], result["loss_one"], rtol=TOLERANCE)
    assert result["examples_two"] == result["examples_one"] == [16.0, 16.0, 16.0]
    assert result["max_weight_diff"] < TOLERANCE


@pytest.mark.slow
def test_coupled_weight_decay_under_mirrored():
    # Keras' update_step runs after the cross-replica sum: the L2 term is added once per step,
    # so 2 replicas equal one device (adding it per replica before the sum would double it).
    result = run_scenario("coupled_weight_decay")
    assert result["decay_effect"] > 1e-3
    assert result["max_weight_diff"] < TOLERANCE


def test_train_step_helpers_on_one_device():
    per_example = tf.constant([1.0, 2.0, 3.0, 6.0])
    assert float(distribute.replica_loss(per_example)) == 3.0
    assert float(distribute.replica_loss(per_example, global_batch_size=8)) == 1.5
    assert float(distribute.unscale_loss(tf.constant(1.5))) == 1.5
    assert float(distribute.all_reduce(tf.constant(2.0), "mean")) == 2.0
    with pytest.raises(ValueError, match="op='max'"):
        distribute.all_reduce(tf.constant(2.0), "max")
    variable = tf.Variable(3.0)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0), initial_scale=8.0)
    with tf.GradientTape() as tape:
        loss = variable * 2.0
    assert float(distribute.scaled_gradients(tape, loss, [variable], optimizer)[0]) == 16.0


def test_use_replica_xla_refuses_custom_train_steps():
    class Custom(keras.Model):
        def train_step(self, data):
            return {}

    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="train_step"):
        distribute.use_replica_xla(Custom(inputs, keras.layers.Dense(2)(inputs)))


def _no_tpu_resolver(address):
    # What TPUClusterResolver raised here for $TPU_NAME=my-tpu off Cloud (it looks the name up).
    import urllib.error

    raise urllib.error.URLError("[Errno -2] Name or service not known")


def test_tpu_name_without_a_tpu_is_one_clear_error(monkeypatch):
    # Before: a 40-line traceback ending in urllib.error.URLError.
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    monkeypatch.delenv("KERAS_CNN_TPU", raising=False)
    monkeypatch.setattr(strategy_module, "tpu_cluster_resolver", _no_tpu_resolver)
    with pytest.raises(strategy_module.TPUUnavailableError,
                       match=r"^no TPU reachable at \$TPU_NAME='my-tpu': URLError: .*Name or service not known.*"
                             r"unset \$KERAS_CNN_TPU / \$TPU_NAME and pass tpu=None, or choose another `kind`"):
        distribute.get_strategy()


def test_cli_names_its_flags_for_tpu_errors(monkeypatch, tmp_path, capsys):
    from keras_cnn import cli

    monkeypatch.delenv("KERAS_CNN_TPU", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    output = tmp_path / "run"
    assert cli.main(["train", "digits_quickstart", "--strategy", "tpu", "--output", str(output)]) == 2
    assert capsys.readouterr().err == (
        "keras-cnn train: error: --strategy tpu needs a TPU address: pass --tpu ('local' on a TPU VM) or set "
        "$KERAS_CNN_TPU / $TPU_NAME; received --tpu unset\n")
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    monkeypatch.setattr(strategy_module, "tpu_cluster_resolver", _no_tpu_resolver)
    assert cli.main(["train", "digits_quickstart", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn train: error: no TPU reachable at $TPU_NAME='my-tpu'") and err.count("\n") == 1
    assert "drop --tpu, or choose another --strategy (auto, multi_worker, mirrored, one_device)" in err
    assert not output.exists()
