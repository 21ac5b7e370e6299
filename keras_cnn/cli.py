"""The `keras-cnn` command line."""

import argparse
import os
import sys


def _models(args):
    from keras_cnn.utils.model_table import format_markdown, format_text, table_rows

    rows = table_rows(args.pattern, with_stats=not args.no_stats)
    if not rows:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    sys.stdout.write(format_markdown(rows) if args.markdown else format_text(rows))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-cnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list the registered models with params and GMACs")
    models.add_argument("pattern", nargs="?", default=None, help="wildcard filter, e.g. 'resnet*'")
    models.add_argument("--markdown", action="store_true", help="print a markdown table")
    models.add_argument("--no-stats", action="store_true",
                        help="skip building the models (no params/GMACs columns)")
    models.set_defaults(func=_models)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
