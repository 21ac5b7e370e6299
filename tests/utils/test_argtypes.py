"""The argparse types shared by the tools."""

import argparse

import pytest

from keras_cnn.utils.argtypes import int_tuple, name_value, non_negative_float, positive_int


def test_valid_values_parse():
    assert positive_int("3") == 3
    assert non_negative_float("0") == 0.0
    assert non_negative_float("2.5") == 2.5
    assert int_tuple(4)("8,16,32,64") == (8, 16, 32, 64)
    assert dict(map(name_value, ["uda_threshold=None", "uda_weight = 0.5", "pseudo_labels=argmax"])) == {
        "uda_threshold": None, "uda_weight": 0.5, "pseudo_labels": "argmax"}


@pytest.mark.parametrize(
    "parse, text",
    [
        (positive_int, "0"),
        (positive_int, "-2"),
        (positive_int, "1.5"),
        (positive_int, "x"),
        (non_negative_float, "-0.1"),
        (non_negative_float, "nan"),
        (non_negative_float, "inf"),
        (non_negative_float, "x"),
        (int_tuple(4), "8,16,32"),
        (int_tuple(4), "8,16,32,0"),
        (int_tuple(2), "a,b"),
        (name_value, "uda_weight"),
        (name_value, "=1"),
    ],
)
def test_bad_text_is_a_usage_error_quoting_it(parse, text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace(".", r"\.")):
        parse(text)


def test_argparse_reports_the_option(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=positive_int)
    with pytest.raises(SystemExit):
        parser.parse_args(["--seeds", "0"])
    assert "--seeds" in capsys.readouterr().err
