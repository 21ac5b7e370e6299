"""Model families, one module each. Importing a family module registers its variants.

Every public module of this package except `base` and `features` is a family: it defines its generic
builder, a `VARIANTS` table and calls `keras_cnn.registry.register_variants`, whose
returned CamelCase builder names are the module's `__all__`.
"""

import importlib
import pkgutil

NOT_FAMILIES = {"base", "features"}
FAMILIES = tuple(
    importlib.import_module(f"{__name__}.{module.name}")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if not module.name.startswith("_") and module.name not in NOT_FAMILIES
)

__all__ = ["FAMILIES"]
for _family in FAMILIES:
    for _builder_name in _family.__all__:
        globals()[_builder_name] = getattr(_family, _builder_name)
        __all__.append(_builder_name)
