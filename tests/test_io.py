"""Reading curves from CSV files and pasted text (`lcpfn.io`): layouts, errors and guesses."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lcpfn import io as curve_io
from lcpfn.errors import InputError
from lcpfn.io import CurveSet, guess_direction, parse_values, read_csv

WIDE_CSV = (
    b"epoch,a,b,c\n"
    + b"".join(
        f"{e},{0.8 - 0.4 * e ** -0.8:.4f},{0.7 - 0.4 * e ** -0.5:.4f},{(0.6 - 0.3 / e):.4f}\n".encode()
        if e <= 10
        else f"{e},{0.8 - 0.4 * e ** -0.8:.4f},{0.7 - 0.4 * e ** -0.5:.4f},\n".encode()
        for e in range(1, 16)
    )
)


# --- curve_io: the three layouts ------------------------------------------------------------------
def test__read_csv__epoch_value_with_header():
    cs = read_csv(b"epoch,acc\n1,0.5\n2,0.6\n3,0.65\n")
    assert cs.names == ("acc",)
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.65])


def test__read_csv__epoch_value_without_header_and_with_spaces():
    cs = read_csv(b"  1 , 0.5 \n2,0.6\n\n3,  0.65\n")
    assert cs.names == ("curve",)
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.65])


def test__read_csv__unsorted_epochs_are_sorted():
    cs = read_csv(b"epoch,acc\n2,0.6\n1,0.5\n3,0.65\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.65])


@pytest.mark.parametrize(
    "data",
    [b"0.5\n0.6\n0.7\n", b"acc\n0.5\n0.6\n0.7\n", b"0.5\r\n0.6\r\n0.7\r\n", "\ufeffacc\n0.5\n0.6\n0.7".encode()],
    ids=["no-header", "header", "crlf", "bom"],
)
def test__read_csv__single_column(data):
    cs = read_csv(data)
    assert cs.n_curves == 1
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.7])


def test__read_csv__single_row_is_one_curve():
    cs = read_csv(b"0.5, 0.6, 0.7\n")
    assert cs.n_curves == 1
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.7])


@pytest.mark.parametrize("sep", [",", ";", "\t", "  "], ids=["comma", "semicolon", "tab", "spaces"])
def test__read_csv__wide_file_any_separator(sep):
    rows = [["a", "b", "c"], ["0.1", "0.2", "0.3"], ["0.2", "0.3", "0.4"], ["0.3", "0.4", "0.5"]]
    cs = read_csv("\n".join(sep.join(r) for r in rows))
    assert cs.names == ("a", "b", "c")
    np.testing.assert_array_equal(np.stack(cs.curves), [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.3, 0.4, 0.5]])


def test__read_csv__wide_file_with_epoch_column_and_ragged_curves():
    cs = read_csv(WIDE_CSV)
    assert cs.names == ("a", "b", "c")
    assert cs.lengths == (15, 15, 10)


def test__read_csv__wide_file_without_header_gets_numbered_names():
    cs = read_csv(b"0.1 0.2\n0.2 0.3\n0.3 0.35\n")
    assert cs.names == ("curve 1", "curve 2")


def test__read_csv__epochs_from_zero_are_shifted_with_a_note():
    cs = read_csv(b"epoch,acc\n0,0.5\n1,0.6\n2,0.7\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.7])
    assert "start at 0" in cs.notes[0]


def test__read_csv__evenly_spaced_steps_are_read_as_evaluations():
    cs = read_csv(b"step,loss\n100,2.0\n200,1.5\n300,1.2\n")
    np.testing.assert_array_equal(cs.curves[0], [2.0, 1.5, 1.2])
    assert "steps of 100" in cs.notes[0]


def test__read_csv__trailing_separator_is_ignored():
    cs = read_csv(b"1,0.5,\n2,0.6,\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6])


def test__read_csv__duplicate_header_names_are_made_unique():
    assert read_csv(b"acc,acc\n0.1,0.2\n0.2,0.3\n").names == ("acc", "acc (2)")


# --- curve_io: every error names the problem --------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"  \n \n", "is empty"),
        (b"# only a comment\n", "is empty"),
        (b"a,b\n", "header row but no values"),
        (b"acc\n0.5\nabc\n0.7\n", "line 3, column 'acc' is 'abc', which is not a number"),
        (b"acc\n0.5\nnan\n0.7\n", "line 3, column 'acc' is 'nan'; every value must be a finite number"),
        (b"acc\n0.5\ninf\n0.7\n", "is 'inf'; every value must be a finite number"),
        (b"acc\n0.5\nNA\n0.7\n", "is 'NA'; every value must be a finite number"),
        (b"epoch,acc\n1,0.5\n2,0.6\n4,0.7\n", "epoch 3 is missing"),
        (b"epoch,acc\n1,0.5\n1,0.6\n2,0.7\n", "epoch 1 appears more than once"),
        (b"epoch,acc\n5,0.5\n6,0.6\n", "start at 5"),
        (b"epoch,acc\n1.5,0.5\n2,0.6\n", "whole numbers"),
        (b"epoch,acc\n1,0.5\n,0.6\n", "every row needs its epoch"),
        (b"epoch\n1\n2\n", "no values"),
        (b"a,b\n1,2\n,3\n4,5\n", "line 3, column 'a' is empty but later lines have values"),
        (b"a,b\n1,2\n3,4,5\n", "line 3 has 3 cells but the header has only 2"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test__read_csv__bad_input_raises_input_error_naming_it(data, message):
    with pytest.raises(InputError, match=re.escape(message)):
        read_csv(data, source="run.csv")


def test__read_csv__error_names_the_source():
    with pytest.raises(InputError, match="^'run.csv': line 2"):
        read_csv(b"acc\nx\n0.5\n", source="'run.csv'")


def test__read_csv__errors_give_the_line_of_the_file_counting_blank_and_comment_lines():
    with pytest.raises(InputError, match="line 5, column 'acc' is 'x'"):
        read_csv(b"# run 7\nacc\n0.5\n\nx\n")


def test__read_csv__huge_file_is_refused_before_parsing():
    data = b"0.5\n" * (curve_io.MAX_BYTES // 4 + 1)
    with pytest.raises(InputError, match=r"is 5\.0 MB; at most 5 MB"):
        read_csv(data)


def test__read_csv__too_many_curves():
    n = curve_io.MAX_CURVES + 1
    data = "\n".join(",".join(["0.5"] * n) for _ in range(3))
    with pytest.raises(InputError, match=f"has {n} curves; at most {curve_io.MAX_CURVES}"):
        read_csv(data)


def test__read_csv__too_long_curve(monkeypatch):
    monkeypatch.setattr(curve_io, "MAX_POINTS", 5)
    with pytest.raises(InputError, match="has 6 values; at most 5"):
        read_csv(b"0.1\n0.2\n0.3\n0.4\n0.5\n0.6\n")


# --- curve_io: limits and linear time -------------------------------------------------------------
def test__read_csv__repeated_names_get_the_first_free_suffix():
    cs = read_csv(b"acc,acc,acc (2),acc,,column 5\n" + b"0.1,0.2,0.3,0.4,0.5,0.6\n" * 2)
    assert cs.names == ("acc", "acc (2)", "acc (2) (2)", "acc (3)", "column 5", "column 5 (2)")


def test__read_csv__thousands_of_identical_header_cells_get_unique_names(monkeypatch):
    # Before the names were made unique in one pass, 2,000 identical cells took minutes (cubic).
    monkeypatch.setattr(curve_io, "MAX_COLUMNS", 5_000)
    monkeypatch.setattr(curve_io, "MAX_CURVES", 5_000)
    n = 2_000
    cs = read_csv(",".join(["acc"] * n) + "\n" + ",".join(["0.5"] * n) + "\n")
    assert cs.names == ("acc", *(f"acc ({k})" for k in range(2, n + 1)))


def test__read_csv__too_many_header_columns_names_the_line():
    n = curve_io.MAX_COLUMNS + 1
    with pytest.raises(InputError, match=f"^run.csv: the header row \\(line 2\\) has {n} columns; at most "
                                         f"{curve_io.MAX_COLUMNS} are read"):
        read_csv("# exported\n" + ",".join(["acc"] * n) + "\n0.5\n", source="run.csv")


def test__read_csv__a_header_of_100k_columns_is_refused():
    data = ",".join(f"c{j}" for j in range(100_000)).encode() + b"\n0.5\n"
    with pytest.raises(InputError, match="has 100000 columns"):
        read_csv(data)


def test__read_csv__too_many_cells_in_a_row_without_header():
    n = curve_io.MAX_COLUMNS + 1
    with pytest.raises(InputError, match=f"line 1 has {n} cells; at most {curve_io.MAX_COLUMNS} columns"):
        read_csv("\n".join(",".join(["0.5"] * n) for _ in range(2)))


def test__read_csv__one_line_of_numbers_may_be_longer_than_the_column_limit():
    n = curve_io.MAX_COLUMNS + 500
    cs = read_csv(",".join(["0.5"] * n))
    assert cs.lengths == (n,)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (("acc," + "x" * 201 + "\n0.1,0.2\n").encode(), "line 1, column 2 is 201 characters long; a cell"),
        (("acc\n0.5\n" + "1" * 201 + "\n").encode(), "line 3, column 1 is 201 characters long"),
        (b"acc,b\n1," + b"9" * 200_000 + b"\n", "line 2 has a cell longer than"),
    ],
    ids=["header", "value", "beyond-the-csv-field-limit"],
)
def test__read_csv__too_long_cell_names_the_line_and_column(data, message):
    with pytest.raises(InputError, match=re.escape(message)):
        read_csv(data)


def test__parse_values__too_long_value():
    with pytest.raises(InputError, match="value 2 of the pasted values is 201 characters long"):
        parse_values("0.5 " + "1" * 201)


def test__read_csv__a_quote_may_not_span_lines():
    with pytest.raises(InputError, match=re.escape('line 3 opens a quote (") that is not closed on the same line')):
        read_csv(b'acc,b\n0.1,0.2\n"0.5,0.6\n0.7,0.8"\n')


def test__read_csv__trailing_delimiters_are_dropped_in_one_pass():
    cs = read_csv(("0.5" + "," * 5_000 + "\n") * 2 + "0.6" + "," * 5_003 + "\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.5, 0.6])


def test__read_csv__leading_tab_is_an_empty_first_cell():
    cs = read_csv(b"a\tb\n0.1\t0.2\n\t0.3\n")
    assert cs.names == ("a", "b")
    np.testing.assert_array_equal(cs.curves[0], [0.1])
    np.testing.assert_array_equal(cs.curves[1], [0.2, 0.3])


def test__read_csv__values_up_to_the_limit_are_read_exactly():
    cs = read_csv(f"acc\n{curve_io.MAX_ABS_VALUE!r}\n{-curve_io.MAX_ABS_VALUE!r}\n1e-320\n-5e-324\n")
    np.testing.assert_array_equal(cs.curves[0], [curve_io.MAX_ABS_VALUE, -curve_io.MAX_ABS_VALUE, 1e-320, -5e-324])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"acc\n0.5\n1e308\n", "line 3, column 'acc' is '1e308'; values up to 1e+150 in magnitude are read"),
        (b"acc\n0.5\n-1e308\n", "line 3, column 'acc' is '-1e308'; values up to"),
        (b"acc\n0.5\n1.0000001e150\n", "is '1.0000001e150'; values up to"),
        (b"epoch,acc\n1,0.5\n1e200,0.6\n", "line 3, epoch column 'epoch' is '1e200'; values up to"),
        (b"0.5, 1e308, 0.7\n", "value 2 of line 1 is '1e308'"),
    ],
    ids=["1e308", "-1e308", "just-beyond", "epoch", "one-row"],
)
def test__read_csv__values_beyond_the_limit_are_refused_naming_them(data, message):
    with pytest.raises(InputError, match=re.escape(message)):
        read_csv(data)


def test__parse_values__values_beyond_the_limit_are_refused_naming_them():
    with pytest.raises(InputError, match=re.escape("value 3 of the pasted values is '-1e308'; values up to")):
        parse_values("0.5 1e-320 -1e308 1e308")


def test__parse_values__commas_spaces_semicolons_and_newlines():
    cs = parse_values(" 0.1, 0.2 0.3;0.4\n0.5 ")
    np.testing.assert_array_equal(cs.curves[0], [0.1, 0.2, 0.3, 0.4, 0.5])


def test__one_value_is_a_curve_at_every_door():
    # the minimum length is lcpfn.validation.MIN_OBSERVED, as in predict
    assert parse_values("0.3").lengths == (1,)
    assert read_csv(b"acc\n0.5\n").lengths == (1,)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "are empty"), ("  \n ", "are empty"), ("0.1 x 0.3", "value 2 of the pasted values is 'x'"),
     ("0.1 nan", "value 2 of the pasted values is 'nan'")],
)
def test__parse_values__bad_input_raises_input_error(text, message):
    with pytest.raises(InputError, match=message):
        parse_values(text)


# --- curve_io: guesses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("names", "curve", "want"),
    [
        (("val_loss",), [0.5, 0.6, 0.7], "minimize"),  # the name wins over the trend
        (("accuracy",), [0.7, 0.6, 0.5], "maximize"),
        (("curve",), [2.0, 1.5, 1.2, 1.1], "minimize"),
        (("curve",), [0.2, 0.5, 0.6, 0.62], "maximize"),
        (("curve",), [0.5, 0.5, 0.5], "maximize"),
    ],
)
def test__guess_direction__names_then_trend(names, curve, want):
    cs = CurveSet(names=names, curves=(np.asarray(curve, dtype=float),))
    assert guess_direction(cs)[0] == want


def test__guess_direction__majority_of_curves():
    cs = CurveSet(names=("a", "b", "c"), curves=tuple(np.asarray(c, float) for c in ([3, 2, 1], [3, 2, 1], [1, 2, 3])))
    assert guess_direction(cs) == ("minimize", "the values mostly decrease")
