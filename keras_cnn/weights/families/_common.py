"""What every family's checkpoint layout shares: where a name's weights come from, and a
table of name patterns turned into `LayerMapping`s."""

import dataclasses
import re

from keras_cnn.weights.spec import LayerMapping

IMAGENET = "imagenet"  # timm/torchvision IMAGENET_DEFAULT_MEAN / _STD
INCEPTION = "tf"  # IMAGENET_INCEPTION_MEAN / _STD (0.5): [-1, 1] input
TORCH_BN_EPSILON = 1e-5
TF_BN_EPSILON = 1e-3  # TF-ported checkpoints (timm `tf_*`) and torchvision's Inception convs


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """Where a registry name's checkpoints come from.

    Attributes:
        library: `"torchvision"` or `"timm"`.
        model: The model's name in that library.
        style: Module naming, a key of the family's `STYLES`.
        input_normalization: The input normalisation the checkpoint expects.
        bn_epsilon: Batch-norm epsilon of the source model.
        builder_args: Builder arguments the source's numerics need (e.g. Inception-v3's
            `avg_pool_padding="include"` for PyTorch's average pools).
    """

    library: str
    model: str
    style: str = "default"
    input_normalization: str = IMAGENET
    bn_epsilon: float = TORCH_BN_EPSILON
    builder_args: dict = dataclasses.field(default_factory=dict)


def rule_mappings(model, rules, style):
    """Maps every layer with weights to its source module with a table of rules.

    Args:
        model: The keras_cnn model.
        rules: `(keras layer name regex, source)` pairs, tried in order; `source` is a
            `(template, kind)` pair whose template is formatted with the match's named
            groups, or a function of the match returning `(source module, kind)`.
        style: The layout's name, for the error message.

    Returns:
        A list of `LayerMapping`.

    Raises:
        ValueError: naming the first layer with weights that no rule maps.
    """
    compiled = [(re.compile(pattern), source) for pattern, source in rules]
    mappings = []
    for layer in model.layers:
        if not layer.weights:
            continue
        for pattern, source in compiled:
            match = pattern.fullmatch(layer.name)
            if match:
                if callable(source):
                    module, kind = source(match)
                else:
                    template, kind = source
                    module = template.format(**match.groupdict())
                mappings.append(LayerMapping(layer.name, module, kind))
                break
        else:
            raise ValueError(
                f"Layer {layer.name!r} of {model.name!r} has no counterpart in the {style!r} "
                "checkpoint layout"
            )
    return mappings
