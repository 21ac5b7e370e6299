"""The model table shown by `keras-cnn models` and in the README.

Parameter and MAC counts come from `keras_cnn/utils/model_stats_table.py`, written by
`python tools/update_readme.py` (building all models takes minutes); a name missing there is built.
`tests/models/test_param_counts.py` builds every model and fails while the stored counts are stale.
"""

import functools
import gc

from keras_cnn.registry import get_model_info, list_models
from keras_cnn.utils.flops import count_macs, count_params

TABLE_COLUMNS = ("name", "builder", "params", "GMACs", "size", "weights", "variant", "paper")


@functools.cache
def model_stats(name):
    """`(trainable params, MACs)` of a registered model at its default resolution."""
    model = get_model_info(name).builder()
    stats = count_params(model), count_macs(model)
    del model
    gc.collect()
    return stats


def stored_stats(name):
    """`(trainable params, MACs)` of `name` from the stored table, or built when not stored."""
    from keras_cnn.utils.model_stats_table import STATS

    return tuple(STATS[name]) if name in STATS else model_stats(name)


def table_rows(pattern=None, with_stats=True, *, stored=True):
    """One dict per registered model, with the columns of `TABLE_COLUMNS`.

    Args:
        pattern: Optional wildcard over registry names.
        with_stats: Fill the params/GMACs columns.
        stored: Take the counts from the stored table (instant) rather than building every model.

    Returns:
        A list of dicts.
    """
    rows = []
    for name in list_models(pattern):
        info = get_model_info(name)
        stats = stored_stats if stored else model_stats
        params, macs = stats(name) if with_stats else (None, None)
        rows.append({
            "name": name,
            "builder": f"keras_cnn.{info.builder_name}",
            "params": "" if params is None else f"{params:,}",
            "GMACs": "" if macs is None else f"{macs / 1e9:.3f}",
            "size": str(info.default_size),
            "weights": ", ".join(info.pretrained),
            "variant": info.variant,
            "paper": info.paper,
        })
    return rows


def format_markdown(rows, columns=TABLE_COLUMNS):
    """Renders rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"`{row[c]}`" if c in ("name", "builder") else row[c] for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_text(rows, columns=("name", "params", "GMACs", "size", "weights", "paper")):
    """Renders rows as an aligned plain-text table for the terminal."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if rows else len(c) for c in columns}
    right = {"params", "GMACs", "size"}

    def fmt(row):
        return "  ".join(
            row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]) for c in columns
        ).rstrip()

    header = fmt({c: c for c in columns})
    return "\n".join([header, "-" * len(header), *(fmt(r) for r in rows)]) + "\n"
