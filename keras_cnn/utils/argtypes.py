"""`argparse` types shared by the command-line tools (`tools/`, `keras-cnn`).

Each parses one command-line string or raises `argparse.ArgumentTypeError`, which argparse
turns into a usage message naming the option and the received text.
"""

import argparse
import ast


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                         f"received {text!r}") from None


def positive_int(text):
    """An integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, received {text!r}")
    return value


def non_negative_float(text):
    """A finite float >= 0."""
    value = _number(text, float)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, received {text!r}")
    return value


def int_tuple(length=None):
    """A type parsing comma-separated positive integers, e.g. `"8,16,32,64"`: exactly `length`
    of them, or any number >= 1 with `length=None`."""

    def parse(text):
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not values or (length is not None and len(values) != length) or min(values) < 1:
            count = "" if length is None else f"{length} "
            raise argparse.ArgumentTypeError(f"must be {count}comma-separated positive integers, "
                                             f"received {text!r}")
        return values

    return parse


def name_value(text):
    """`NAME=VALUE` as `(name, value)`: VALUE a Python literal (`0.5`, `None`, `'argmax'`) or,
    when it is not one, the bare string. `dict()` of a repeated option gives keyword arguments."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE, received {text!r}")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name.strip(), value.strip()


def parse_positive_int(text, argument):
    """Parses a flag that must be a positive integer, for tools that check after argparse.

    Args:
        text: The flag's string.
        argument: The flag's name, for the message.

    Returns:
        The integer.

    Raises:
        ValueError: `text` is not an integer >= 1 (the message names `argument` and `text`).
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"`{argument}` must be a positive integer, received {argument}={text!r}")
    return value
