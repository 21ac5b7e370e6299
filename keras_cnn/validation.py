"""Argument checks shared by builders and layers: a `ValueError` naming the argument and the
value received. No keras_cnn imports, so any module (layers included) can use them."""

import numbers


def check_choice(argument, value, choices):
    """Raises `ValueError` naming `argument` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{argument}` must be one of {list(choices)}, received {argument}={value!r}")


def check_rate(argument, value):
    """Raises `ValueError` unless `value` is a probability in `[0, 1)`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) < 1.0
    ):
        raise ValueError(f"`{argument}` must be a number in [0, 1), received {argument}={value!r}")


def check_positive_int(argument, value, minimum=1):
    """Raises `ValueError` unless `value` is an integer `>= minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{argument}` must be an integer >= {minimum}, received {argument}={value!r}")


def check_int_sequence(argument, value, length=None, minimum=1):
    """Raises `ValueError` unless `value` is a sequence of integers `>= minimum`."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum for v in value
    )
    if not ok or (length is not None and len(value) != length) or len(value) == 0:
        shape = f"{length} " if length is not None else ""
        raise ValueError(
            f"`{argument}` must be a sequence of {shape}integers >= {minimum}, received "
            f"{argument}={value!r}"
        )


def check_positive_number(argument, value):
    """Raises `ValueError` unless `value` is a real number `> 0` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{argument}` must be a positive number, received {argument}={value!r}")


def check_bool(argument, value, *, allow_none=False):
    """Raises `ValueError` unless `value` is `True` or `False` (or `None` with `allow_none`)."""
    if allow_none and value is None:
        return
    if not isinstance(value, bool):
        allowed = "True, False or None" if allow_none else "a bool (True or False)"
        raise ValueError(f"`{argument}` must be {allowed}, received {argument}={value!r}")


def check_non_negative(argument, value):
    """Raises `ValueError` unless `value` is a real number `>= 0` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"`{argument}` must be a number >= 0, received {argument}={value!r}")


def check_non_negative_int(argument, value):
    """Raises `ValueError` unless `value` is an integer `>= 0` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{argument}` must be an integer >= 0, received {argument}={value!r}")
