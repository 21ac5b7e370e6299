"""Checkpoint layouts of timm/torchvision models, one module per keras_cnn family.

Each module provides `SOURCES` (which library's model each registry name follows),
`source_spec(name, source)` and `layer_mappings(model, config, style)`; the generic
conversion lives in `keras_cnn.weights.convert`. Add a family by adding a module here and
an entry in `CONVERTERS`.
"""

from keras_cnn.weights.families import resnet

# Registry family name -> converter module.
CONVERTERS = {"resnet": resnet}

__all__ = ["CONVERTERS"]
