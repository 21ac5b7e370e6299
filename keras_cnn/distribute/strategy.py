"""Choosing and creating a `tf.distribute.Strategy` (TensorFlow-specific).

    strategy = keras_cnn.distribute.get_strategy()      # first thing in the program
    with strategy.scope():
        model = keras_cnn.ResNet50(classes=10)

Call `get_strategy` **before any other TensorFlow op**: `MultiWorkerMirroredStrategy`
configures collective ops, which TensorFlow only accepts before its devices are
initialised, and connecting to a TPU resets the eager context (every tensor and variable
created before becomes invalid). `get_strategy` raises (multi-worker) or warns (TPU) when
the devices are already initialised.

What runs where: the decision (`resolve_strategy_kind`), the TPU address and `TF_CONFIG`
parsing and the TPU resolver construction run anywhere (and are tested on CPU); the TPU
connect/initialise and `TPUStrategy` itself need a TPU and were not run in this
repository's tests.
"""

import dataclasses
import json
import logging
import os
import re

import tensorflow as tf

LOGGER = logging.getLogger("keras_cnn.distribute")

KINDS = ("auto", "tpu", "multi_worker", "mirrored", "one_device")
# Environment variables naming a TPU: Cloud TPU's own, then ours (takes precedence).
TPU_ENV_VARS = ("KERAS_CNN_TPU", "TPU_NAME")


class TPUUnavailableError(ValueError):
    """A TPU was asked for (argument or environment) but none could be reached."""


def _received(flags, argument, value):
    # How a message shows an argument: `tpu='local'` to Python callers, `--tpu local` when the
    # command line passes its flag names (`flags={"tpu": "--tpu", "kind": "--strategy"}`).
    if flags and argument in flags:
        return f"{flags[argument]} {value or repr(value)}" if value is not None else f"{flags[argument]} unset"
    return f"{argument}={value!r}"


def _tpu_source(tpu, environ, flags):
    """Where the TPU address came from, for messages: the argument or the environment variable."""
    if tpu is not None:
        return _received(flags, "tpu", tpu)
    environ = os.environ if environ is None else environ
    for var in TPU_ENV_VARS:
        if environ.get(var, "").strip():
            return f"${var}={environ[var].strip()!r}"
    return _received(flags, "tpu", None)


@dataclasses.dataclass(frozen=True)
class StrategyChoice:
    """Which strategy `get_strategy` creates and why.

    Attributes:
        kind: One of `"tpu"`, `"multi_worker"`, `"mirrored"`, `"one_device"`.
        reason: One line for the log.
        tpu: The TPU address (`"local"`, a name or `grpc://host:port`) for `"tpu"`.
    """

    kind: str
    reason: str
    tpu: str | None = None


def tpu_address(tpu=None, environ=None, *, flags=None):
    """The TPU to connect to: the `tpu` argument, else `$KERAS_CNN_TPU`, else `$TPU_NAME`.

    Args:
        tpu: A TPU name, `"local"` (TPU VM) or `grpc://host:port`; `None` reads the environment.
        environ: Mapping to read instead of `os.environ` (tests).
        flags: How messages name the arguments (`{"tpu": "--tpu"}` from the command line);
            `None`: as Python arguments.

    Returns:
        The address, or `None` when no TPU is configured.
    """
    if tpu is not None:
        if not isinstance(tpu, str) or not tpu.strip():
            name = flags["tpu"] if flags and "tpu" in flags else "`tpu`"
            raise ValueError(f"{name} must be a non-empty string or None, received {_received(flags, 'tpu', tpu)}")
        return tpu.strip()
    environ = os.environ if environ is None else environ
    for var in TPU_ENV_VARS:
        if environ.get(var, "").strip():
            return environ[var].strip()
    return None


def parse_tf_config(environ=None):
    """Reads and checks `$TF_CONFIG` (the multi-worker cluster description).

    Args:
        environ: Mapping to read instead of `os.environ` (tests).

    Returns:
        The parsed dict, or `None` when `TF_CONFIG` is unset or empty.

    Raises:
        ValueError: `TF_CONFIG` is not JSON or lacks `cluster` / `task`, or the task is not
            in the cluster.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"`TF_CONFIG` must be JSON, received TF_CONFIG={raw!r} ({error})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise ValueError(
            f"`TF_CONFIG` must hold a non-empty 'cluster' mapping and a 'task' mapping, "
            f"received TF_CONFIG={raw!r}"
        )
    task_type, index = task.get("type"), task.get("index", 0)
    members = cluster.get(task_type)
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        raise ValueError(
            f"`TF_CONFIG` task {task!r} is not a member of its cluster {cluster!r}, "
            f"received TF_CONFIG={raw!r}"
        )
    return config


def num_workers(tf_config):
    """Number of training workers (chief included) in a parsed `TF_CONFIG`."""
    if not tf_config:
        return 0
    cluster = tf_config["cluster"]
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def resolve_strategy_kind(kind="auto", *, tpu=None, environ=None, num_gpus=None, flags=None):
    """Decides which strategy to create, without creating anything.

    `"auto"` picks, in order: TPU if a TPU address is configured (argument or environment),
    multi-worker if `TF_CONFIG` lists more than one worker, mirrored if there is more than
    one GPU, else one device.

    Args:
        kind: One of `KINDS`.
        tpu: TPU address (see `tpu_address`).
        environ: Mapping to read instead of `os.environ` (tests).
        num_gpus: Number of local GPUs; `None` asks TensorFlow (physical devices only,
            which does not initialise them).
        flags: How messages name `kind` and `tpu` (`{"kind": "--strategy", "tpu": "--tpu"}`
            from the command line); `None`: as Python arguments.

    Returns:
        A `StrategyChoice`.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, received {_received(flags, 'kind', kind)}")
    address = tpu_address(tpu, environ, flags=flags)
    if kind == "tpu":
        if address is None:
            how = f"pass {flags['tpu']}" if flags and "tpu" in flags else "pass `tpu=`"
            raise ValueError(
                f"{_received(flags, 'kind', 'tpu')} needs a TPU address: {how} ('local' on a TPU VM) or set "
                f"$KERAS_CNN_TPU / $TPU_NAME; received {_received(flags, 'tpu', tpu)}"
            )
        return StrategyChoice("tpu", "requested", address)
    tf_config = parse_tf_config(environ)
    if kind == "multi_worker":
        if tf_config is None:
            raise ValueError(
                "`kind='multi_worker'` needs $TF_CONFIG describing the cluster and this task, "
                "received TF_CONFIG unset"
            )
        return StrategyChoice("multi_worker", f"requested, {num_workers(tf_config)} workers")
    if kind in ("mirrored", "one_device"):
        return StrategyChoice(kind, "requested")
    if address is not None:
        return StrategyChoice("tpu", f"TPU address {address!r} configured", address)
    if num_workers(tf_config) > 1:
        return StrategyChoice("multi_worker", f"TF_CONFIG lists {num_workers(tf_config)} workers")
    if num_gpus is None:
        num_gpus = len(tf.config.list_physical_devices("GPU"))
    if num_gpus > 1:
        return StrategyChoice("mirrored", f"{num_gpus} GPUs")
    return StrategyChoice("one_device", f"{num_gpus} GPU(s), no TPU, no multi-worker TF_CONFIG")


def devices_initialized():
    """Whether TensorFlow has already initialised its devices (run an op, listed logical devices)."""
    # No public API says this; `_context_handle` is what TensorFlow's own
    # `configure_collective_ops` checks before refusing with "must be configured at startup".
    from tensorflow.python.eager import context

    return getattr(context.context(), "_context_handle", None) is not None


def tpu_cluster_resolver(address):
    """A `TPUClusterResolver` for `address` (constructing it contacts nothing for `grpc://`/`local`)."""
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)


def _connect_tpu(address, source, flags):
    """Connects to and initialises the TPU at `address`; `TPUUnavailableError` when there is none."""
    try:
        resolver = tpu_cluster_resolver(address)
        # Needs a reachable TPU: not run in this repository's CPU tests.
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, OSError, ValueError, RuntimeError) as error:
        # TensorFlow reports a missing TPU as whatever failed first (NotFoundError for 'local'
        # without TPU devices, a URLError resolving a TPU name off Cloud): one line says which.
        reason = re.split(r"(?<=\.)\s|\n", (getattr(error, "message", None) or str(error)).strip())
        strategy = flags["kind"] if flags and "kind" in flags else "`kind`"
        raise TPUUnavailableError(
            f"no TPU reachable at {source}: {type(error).__name__}: {reason[0].rstrip('.')}. "
            f"On a machine without a TPU, unset $KERAS_CNN_TPU / $TPU_NAME"
            f"{' and drop ' + flags['tpu'] if flags and 'tpu' in flags else ' and pass tpu=None'}, "
            f"or choose another {strategy} ({', '.join(k for k in KINDS if k != 'tpu')})"
        ) from None
    return resolver


def get_strategy(kind="auto", *, tpu=None, devices=None, logger=LOGGER, flags=None):
    """Creates the distribution strategy; call it before any other TensorFlow op, once.

    Create one strategy per program: two `MirroredStrategy` objects over the same devices
    reuse the same collective keys, and TensorFlow then mixes their all-reduces (seen here
    as "Shape mismatch in the collective instance").

    Args:
        kind: `"auto"`, `"tpu"` (`TPUStrategy`), `"multi_worker"`
            (`MultiWorkerMirroredStrategy` from `$TF_CONFIG`), `"mirrored"`
            (`MirroredStrategy` over all local GPUs, or `devices`) or `"one_device"`.
        tpu: TPU address for `"tpu"`/`"auto"`: a name, `"local"` or `grpc://host:port`;
            `None` reads `$KERAS_CNN_TPU`, then `$TPU_NAME`.
        devices: Device names for `"mirrored"` (e.g. `["/gpu:0", "/gpu:1"]`) or one device
            for `"one_device"`; `None` uses all GPUs (mirrored) or the first GPU, else the CPU.
        logger: Where the choice is logged (`logging.Logger`).
        flags: How messages name `kind` and `tpu`: `{"kind": "--strategy", "tpu": "--tpu"}` from
            the command line; `None`: as Python arguments.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        TPUUnavailableError: A TPU is configured (argument or environment) but none is reachable.
        ValueError: Bad `kind`, `tpu`, `devices` or `TF_CONFIG`.
        RuntimeError: `"multi_worker"` after TensorFlow initialised its devices.
    """
    if devices is not None and (
        isinstance(devices, str) or not devices or not all(isinstance(d, str) for d in devices)
    ):
        raise ValueError(f"`devices` must be a non-empty list of device names, received devices={devices!r}")
    choice = resolve_strategy_kind(kind, tpu=tpu, flags=flags)
    if devices is not None and choice.kind not in ("mirrored", "one_device"):
        raise ValueError(
            f"`devices` only applies to 'mirrored' and 'one_device', the choice is {choice.kind!r}; "
            f"received devices={devices!r}"
        )
    if choice.kind == "tpu":
        if devices_initialized():
            logger.warning(
                "get_strategy: TensorFlow devices were initialised before connecting to the TPU; "
                "connecting resets the eager context, so tensors and variables created so far are invalid"
            )
        resolver = _connect_tpu(choice.tpu, _tpu_source(tpu, None, flags), flags)
        strategy = tf.distribute.TPUStrategy(resolver)
    elif choice.kind == "multi_worker":
        if devices_initialized():
            raise RuntimeError(
                "get_strategy('multi_worker') must run before any other TensorFlow op: collective ops "
                "can only be configured before TensorFlow initialises its devices"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        # Plain `model.fit` fails under this strategy in Keras 3.15 (keras-team/keras#20585);
        # the patch is a no-op elsewhere and once Keras is fixed.
        from keras_cnn.distribute.multi_worker import enable_multi_worker_fit

        enable_multi_worker_fit()
    elif choice.kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        if devices is not None and len(devices) != 1:
            raise ValueError(f"'one_device' takes one device, received devices={devices!r}")
        gpus = tf.config.list_physical_devices("GPU")
        device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
        strategy = tf.distribute.OneDeviceStrategy(device)
    logger.info(
        "get_strategy: %s (%s), %d replica(s) in sync",
        type(strategy).__name__,
        choice.reason,
        strategy.num_replicas_in_sync,
    )
    return strategy


def device_kind(strategy=None):
    """`"tpu"`, `"gpu"` or `"cpu"`: what the strategy's replicas run on.

    Args:
        strategy: A `tf.distribute.Strategy`; `None` uses the current one.

    Returns:
        The device kind string.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:
        # The default strategy has no device list: ops go wherever TensorFlow places them,
        # on a GPU if there is one.
        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    types = {(tf.DeviceSpec.from_string(d).device_type or "CPU").upper() for d in devices}
    return "tpu" if "TPU" in types else "gpu" if "GPU" in types else "cpu"
