"""keras_cnn: convolutional image classifiers and their training methods for Keras 3.

    import keras_cnn
    model = keras_cnn.ResNet50D(classes=10, input_shape=(64, 64, 3))
    keras_cnn.list_models("seresnext*")
    keras_cnn.create_model("resnet50d", weights=None)
"""

import importlib

# First, before anything imports TensorFlow: importing it imports TensorFlow with its load-time
# log lines held to $TF_CPP_MIN_LOG_LEVEL (which the `keras-cnn` command sets to 3).
from keras_cnn import _startup  # isort: skip  # noqa: F401
# keras_cnn.weights before the models: it installs the registry's named-weights provider, which
# the model families consult as they register (neither they nor the registry import it).
from keras_cnn import weights  # isort: skip
from keras_cnn import layers, models, utils
from keras_cnn.models import *  # noqa: F401,F403  (every CamelCase builder)
from keras_cnn.models import __all__ as _model_names
from keras_cnn.models.base import ensure_recursion_limit as _ensure_recursion_limit
from keras_cnn.models.features import feature_extractor, feature_layers
from keras_cnn.registry import ModelInfo, create_model, get_model_info, list_models

# Loading a saved EfficientNet-L2 maps a graph deeper than Python's default recursion
# limit; importing keras_cnn (needed anyway for its serializable layers) makes it loadable.
_ensure_recursion_limit()

__version__ = "0.1.0"

# Subpackages loaded on first attribute access (PEP 562): `keras_cnn.training.build_optimizer(...)`
# works after `import keras_cnn`, which does not pay for the training and SSL modules up front
# (not in `__all__`, so `from keras_cnn import *` does not load them either).
_LAZY_SUBPACKAGES = ("data", "distribute", "jobs", "ssl", "training")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        module = importlib.import_module(f"keras_cnn.{name}")
        globals()[name] = module  # the next access is a plain attribute
        return module
    raise AttributeError(f"module 'keras_cnn' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY_SUBPACKAGES})


__all__ = [
    "ModelInfo",
    "create_model",
    "feature_extractor",
    "feature_layers",
    "get_model_info",
    "layers",
    "list_models",
    "models",
    "utils",
    "weights",
    *_model_names,
]
