import gc
import gzip
import inspect
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Under pytest-xdist each worker is a TensorFlow process whose intra-op pool defaults to one thread
# per core: N workers on N cores would run N x N threads and spin against each other (and against
# the training subprocesses a worker starts, which inherit this). One share of the cores each.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_cnn  # noqa: E402

# Models this large take >30 s each in the registry-wide tests here; CI runs them,
# `-m "not slow"` skips them.
LARGE_MODELS = {
    "senet154", "wide_resnet101_2", "resnext101_32x8d", "resnext101_64x4d",
    *(f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")),
    "densenet264", "densenet_bc_250_24",
    "efficientnet_b7", "efficientnet_l2", "efficientnet_b6_wide",
}

# Over ~15 s each in the registry-wide forward/gradient/round-trip test under `pytest -n 2` on
# 2 cores (measured 2026-12): that test runs them in the slow tier, which keeps the default tier
# within ~12 min.
SLOW_IN_REGISTRY = {
    "resnext101_32x4d", "seresnext101_32x4d", "resnext50_32x4d", "seresnext50_32x4d",
    "resnet152", "resnet152_v1", "resnet152d", "seresnet152", "resnet200", "resnet200d",
    "efficientnet_b5", "efficientnet_b6",
}


# Inception-v3's valid-padded stem and grid reductions need >= 75 px (as torchvision).
MIN_TEST_SIZE = {"inception_v3": 75, "se_inception_v3": 75}


def small_input_size(name):
    """The smallest sensible test resolution for a registered model (2x2 last map)."""
    if name in MIN_TEST_SIZE:
        return MIN_TEST_SIZE[name]
    return 32 if keras_cnn.get_model_info(name).default_size <= 32 else 64


def accepts(name, argument):
    """Whether the builder of registered model `name` takes keyword `argument`."""
    return argument in inspect.signature(keras_cnn.get_model_info(name).builder).parameters


def _resident_bytes():
    """This process's resident memory (Linux `/proc`), or 0 where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


# A full-size model lives on in reference cycles until Python's cyclic collector runs, which it
# seldom does: a worker going through the large models climbed past 12 GB and into swap (measured:
# 6.4 GB after five VGG/SENet/EfficientNet tests without collecting, a 3.9 GB plateau with it).
# Collecting costs ~0.1 s, so only after a slow test or one that grew the process by this much;
# then glibc is asked to hand the freed heap back (the slow tier still climbed to 21 GB of 23).
COLLECT_AFTER_GROWTH_BYTES = 256 * 2**20


def _collect():
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the collection alone


@pytest.fixture(autouse=True)
def _fresh_keras_state(request):
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    before = _resident_bytes()
    yield
    keras.mixed_precision.set_global_policy("float32")
    if request.node.get_closest_marker("slow") or _resident_bytes() - before > COLLECT_AFTER_GROWTH_BYTES:
        _collect()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def randomize_weights(model, rng):
    """Sets every variable (BN statistics and biases too) to non-trivial random values."""
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in variable.path:
            value = rng.uniform(0.5, 1.5, shape)
        elif any(k in variable.path for k in ("moving_mean", "beta", "bias")):
            value = rng.normal(0.0, 0.2, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) or 1
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        variable.assign(value.astype(variable.dtype))


def random_images(rng, height, width=None, n=2, channels=3):
    """`n` random RGB [0, 255] float32 images (the keras_cnn input contract)."""
    return rng.uniform(0, 255, (n, height, width or height, channels)).astype("float32")


def assert_port_matches(ka_model, model, x, preprocess=None):
    """A ported model's outputs on [0, 255] images `x` equal the keras.applications model's on
    `preprocess(x)` within 1e-4 of the output scale, and those outputs are not constant."""
    expected = np.asarray(ka_model(x if preprocess is None else preprocess(x.copy()), training=False))
    assert np.std(expected) > 1e-2  # the comparison below is not between constants
    actual = np.asarray(model(x, training=False))
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    return expected


TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def load_tool(name):
    """Imports `tools/<name>.py` (the tools are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"keras_cnn_tool_{name}", os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    # Registered like an imported module: tf.function/AutoGraph reads a function's module
    # from sys.modules (without it tf.data map functions run unconverted, with a warning).
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- synthetic Fashion-MNIST IDX files (the loader's and the tools' tests) ---


def fashion_mnist_idx(array, magic):
    """`array` as an IDX file: the magic number, the dimensions, then the uint8 data."""
    header = int(magic).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.asarray(array, np.uint8).tobytes()


def synthetic_fashion_mnist(count, offset):
    """`count` 28x28 images with distinct known pixels, and labels cycling through 0..9."""
    pixels = np.arange(28 * 28).reshape(28, 28)
    images = np.stack([(pixels + 7 * (i + offset)) % 256 for i in range(count)]).astype(np.uint8)
    return images, (np.arange(count) % 10).astype(np.uint8)


def write_fashion_mnist(directory, *, gz=True, num_train=20, num_test=10, replace=None):
    """Fashion-MNIST's four IDX files in `directory` (two training and one test image per class by
    default, distinct known pixels); `replace` maps a file stem to raw bytes written instead."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train = synthetic_fashion_mnist(num_train, 0)
    x_test, y_test = synthetic_fashion_mnist(num_test, 1000)
    contents = {
        "train-images-idx3-ubyte": fashion_mnist_idx(x_train, 2051),
        "train-labels-idx1-ubyte": fashion_mnist_idx(y_train, 2049),
        "t10k-images-idx3-ubyte": fashion_mnist_idx(x_test, 2051),
        "t10k-labels-idx1-ubyte": fashion_mnist_idx(y_test, 2049),
    }
    contents.update(replace or {})
    for stem, payload in contents.items():
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / stem).write_bytes(payload)
    return (x_train, y_train), (x_test, y_test)


def positive_finite(value):
    """A real, finite, positive number (a measured figure in a tool's output)."""
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def run_scenario(script, mode, timeout=300):
    """Runs `python script mode` in a fresh process and returns its last `RESULT {json}` line.

    For scenarios needing logical devices or a strategy set up before TensorFlow starts
    (pytest-xdist workers have already initialised it). The child gets no TF_CONFIG.
    """
    import json
    import subprocess

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    # The scenario scripts are test modules in subfolders: they import this conftest's helpers.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)),
                                                      env.get("PYTHONPATH")]))
    command = ["timeout", "-s", "KILL", str(timeout), sys.executable, script, mode]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout + 30)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, done.stderr[-4000:]
    return json.loads(results[-1][len("RESULT "):])


def signal_after_first_backup(proc, metadata, signum):
    """Waits until a training subprocess has written its first backup (`metadata`, the backup's
    training_metadata.json), lets it run 0.3 s into the next epoch, then sends it `signum`.

    The caller waits for the process; it is killed here only if the wait for the backup fails.
    """
    import time

    try:
        deadline = time.time() + 600
        while not metadata.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert metadata.exists(), "no backup was written"
        time.sleep(0.3)  # into the second epoch
        proc.send_signal(signum)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        raise


@pytest.fixture(scope="session")
def tiny_digits_run(tmp_path_factory):
    """A finished 3-epoch digits_quickstart run at width 8, trained as `keras-cnn train` does
    (shared by the predict and export tests; they only read it, export adds its own files)."""
    from keras_cnn.jobs import train
    from keras_cnn.training.config import apply_overrides, load_recipe

    config = apply_overrides(load_recipe("digits_quickstart"),
                             ["epochs=3", "model_args.stem_width=8", "model_args.planes=(8, 16, 32, 64)"])
    output = str(tmp_path_factory.mktemp("tiny_digits_run"))
    train(config, output_dir=output, verbose=0)
    return output
