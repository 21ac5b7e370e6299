"""Regenerates the model table in README.md from the registry.

    python tools/update_readme.py          # rewrite README.md
    python tools/update_readme.py --check  # exit 1 if README.md is stale
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_cnn.utils.model_table import format_markdown, table_rows  # noqa: E402

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"


def render(text):
    """Returns `text` with the table between the markers regenerated."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{format_markdown(table_rows())}{END}{tail}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print("README.md model table is stale: run python tools/update_readme.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
