"""Model families, one module each. Importing a module registers its variants."""

from keras_cnn.models import resnet
from keras_cnn.models.resnet import ResNet

FAMILIES = (resnet,)

__all__ = ["ResNet", "FAMILIES"]
for _family in FAMILIES:
    for _builder_name in _family.__all__:
        globals()[_builder_name] = getattr(_family, _builder_name)
        __all__.append(_builder_name)
