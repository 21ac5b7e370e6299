"""Checkpoint layouts of timm/torchvision models, one module per keras_cnn family.

Each module provides `SOURCES` (which library's model each registry name follows),
`source_spec(name, source)` and `layer_mappings(model, config, style)`, optionally
`optional_sources(style)` (head modules a model without its top leaves unused) and
`canonical_state_dict(state_dict, style)` (renaming older key spellings); the generic
conversion lives in `keras_cnn.weights.convert`. Add a family by adding a module here and
an entry in `CONVERTERS`.
"""

from keras_cnn.weights.families import (
    alexnet,
    densenet,
    efficientnet,
    googlenet,
    inception_v3,
    mobilenet,
    resnet,
    squeezenet,
    vgg,
)

# Registry family name -> converter module.
CONVERTERS = {
    "resnet": resnet,
    "efficientnet": efficientnet,
    "mobilenet": mobilenet,
    "densenet": densenet,
    "vgg": vgg,
    "alexnet": alexnet,
    "squeezenet": squeezenet,
    "googlenet": googlenet,
    "inception_v3": inception_v3,
}

__all__ = ["CONVERTERS"]
