"""`import keras_cnn` gives its subpackages as attributes, loaded on first use (PEP 562), and the
`keras-cnn` command starts without TensorFlow's load-time log lines (keras_cnn._startup)."""

import importlib
import subprocess
import sys

import pytest

import keras_cnn
from keras_cnn import _startup


@pytest.mark.parametrize("name", ["data", "distribute", "jobs", "ssl", "training", "weights"])
def test_subpackages_are_attributes(name):
    assert getattr(keras_cnn, name) is importlib.import_module(f"keras_cnn.{name}")
    assert name in dir(keras_cnn)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'keras_cnn' has no attribute 'trainig'"):
        keras_cnn.trainig  # noqa: B018


def test_fresh_import_loads_subpackages_on_first_access():
    # Before: AttributeError: module 'keras_cnn' has no attribute 'distribute'.
    code = (
        "import sys, keras_cnn\n"
        "lazy = ['keras_cnn.' + n for n in ('data', 'distribute', 'jobs', 'ssl', 'training')]\n"
        "print(sorted(m for m in lazy if m in sys.modules))\n"
        "print(keras_cnn.ssl.__name__, keras_cnn.distribute.get_strategy.__name__, keras_cnn.training.__name__,\n"
        "      keras_cnn.data.__name__, keras_cnn.weights.__name__)\n"
        # keras_cnn.weights stays eager: it installs the named weights before the models register.
        "print(keras_cnn.get_model_info('resnet50_v1').pretrained[:1])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded, names, pretrained = result.stdout.splitlines()
    assert loaded == "[]"
    assert names == "keras_cnn.ssl get_strategy keras_cnn.training keras_cnn.data keras_cnn.weights"
    assert pretrained == "('imagenet',)"


START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796408753.042969    5114 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796408753.093694    5114 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.
W0000 00:00:1796408753.1 5114 some.cc:1] a warning
E0000 00:00:1796408756.562801    5114 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
Traceback (most recent call last):
"""


@pytest.mark.parametrize(
    "level, kept",
    [
        (0, START_UP),
        (1, START_UP.split("\n", 4)[4]),
        (2, START_UP.split("\n", 5)[5]),
        (3, "Traceback (most recent call last):\n"),
    ],
)
def test_startup_log_is_held_to_the_level(level, kept):
    assert _startup.filter_startup_log(START_UP, level) == kept


@pytest.mark.parametrize(
    "argv, orig_argv, expected",
    [
        (["/venv/bin/keras-cnn", "recipes"], ["/venv/bin/python", "/venv/bin/keras-cnn", "recipes"], True),
        (["-m"], ["python", "-m", "keras_cnn.cli", "recipes"], True),
        (["-m"], ["python", "-u", "-mkeras_cnn.cli"], True),
        (["-m"], ["python", "-m", "pytest", "tests"], False),
        (["-c"], ["python", "-c", "import keras_cnn.cli"], False),
        (["script.py"], ["python", "script.py", "-m", "keras_cnn.cli"], False),
    ],
)
def test_invoked_as_cli(argv, orig_argv, expected):
    assert _startup.invoked_as_cli(argv, orig_argv) is expected
