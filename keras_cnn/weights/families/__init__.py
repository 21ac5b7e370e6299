"""Each family's weights, one module per registry family, found like the model families.

Every public module here declares `WEIGHTS`, a `keras_cnn.weights.spec.WeightsSpec`: the
family's keras.applications ports, its timm/torchvision checkpoint layouts and its named
tags (see DEVELOPERS.md, "Adding weights"). Modules starting with `_` are shared helpers.
Adding a family's weights is adding one module; nothing here lists them.
"""

import importlib
import pkgutil

from keras_cnn.weights.spec import WeightsSpec

_MODULES = tuple(
    importlib.import_module(f"{__name__}.{module.name}")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if not module.name.startswith("_")
)

# Registry family name -> its `WeightsSpec`.
FAMILY_WEIGHTS = {module.WEIGHTS.family: module.WEIGHTS for module in _MODULES}
if len(FAMILY_WEIGHTS) != len(_MODULES):
    raise ValueError(f"Two weights modules declare the same family: {[m.WEIGHTS.family for m in _MODULES]}")
# Registry family name -> the module of a family whose timm/torchvision checkpoints convert.
CONVERTERS = {module.WEIGHTS.family: module for module in _MODULES if module.WEIGHTS.sources}


def family_weights(family):
    """The `WeightsSpec` of registry family `family`; an empty one for a family without weights."""
    return FAMILY_WEIGHTS.get(family) or WeightsSpec(family=family)


__all__ = ["CONVERTERS", "FAMILY_WEIGHTS", "family_weights"]
