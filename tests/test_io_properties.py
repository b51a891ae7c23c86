"""Property tests of the CSV reader (`lcpfn.io`): any input gives a valid CurveSet or an InputError.

Hypothesis draws random bytes, random text and CSV-ish text (random separators, headers, empty
cells, quotes, comments, huge and tiny numbers). Every call must either return curves the
forecasters accept (finite float64 values within ``MAX_ABS_VALUE``, unique names, lengths within
the limits) or raise :class:`lcpfn.errors.InputError`; any other exception fails the test. A
second group writes well-formed tables and checks that they are read back exactly.

The budget is fixed and the examples derandomised, so CI runs the same cases every time;
``LCPFN_HYPOTHESIS_EXAMPLES=10000`` runs a longer search.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lcpfn import io as curve_io
from lcpfn.errors import InputError
from lcpfn.io import CurveSet, guess_direction, parse_values, read_csv

EXAMPLES = int(os.environ.get("LCPFN_HYPOTHESIS_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 300,  # CI: the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _assert_valid(cs: CurveSet) -> None:
    """What every door downstream relies on (the app, the CLI, ``predict``)."""
    assert isinstance(cs, CurveSet)
    assert 1 <= cs.n_curves <= curve_io.MAX_CURVES
    assert len(cs.names) == cs.n_curves
    assert all(isinstance(n, str) and n for n in cs.names)
    assert len(set(cs.names)) == cs.n_curves, cs.names
    for c in cs.curves:
        assert isinstance(c, np.ndarray) and c.dtype == np.float64 and c.ndim == 1
        assert curve_io.MIN_POINTS <= len(c) <= curve_io.MAX_POINTS
        assert np.isfinite(c).all()
        assert np.abs(c).max() <= curve_io.MAX_ABS_VALUE
    assert all(isinstance(n, str) for n in cs.notes)
    direction, reason = guess_direction(cs)  # the app calls it on every upload
    assert direction in ("maximize", "minimize") and reason


def _read_or_input_error(read, data) -> CurveSet | None:
    try:
        cs = read(data)
    except InputError as exc:
        assert str(exc)  # a message a person can act on, never empty
        event("InputError")
        return None
    _assert_valid(cs)
    event("curves")  # --hypothesis-show-statistics: how many examples were read, how many refused
    return cs


# --- strategies ------------------------------------------------------------------------------------
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-2.0, max_value=2.0).map(lambda v: f"{v:.4g}"),
    st.integers(min_value=-3, max_value=200).map(str),
    st.sampled_from(["1e308", "-1e308", "1.7976931348623157e308", "1e-320", "-4.9e-324", "1e100", "1.1e100",
                     "1e309", "0", "-0", "0.0", "1_000", ".5", "5.", "+.5e-3"]),
)
_WORDS = st.sampled_from(
    ["epoch", "Epoch", "step", "steps", "t", "x", "", "acc", "val_loss", "loss", "score", "curve", "column 2",
     "acc (2)", "nan", "NaN", "NA", "n/a", "inf", "-inf", "null", "none", "#", '"', '""', "'", "abc", " ",
     "Unnamed: 0", "a,b", '"a,b"', "\ufeff", "\x00", "é", "\u2028"]
)
_CELLS = st.one_of(_NUMBERS, _WORDS, st.text(max_size=6), st.just(""))
# Body cells: mostly plain numbers, so that many tables are read (not only refused).
_PLAIN = st.one_of(st.floats(min_value=-1e6, max_value=1e6).map(lambda v: f"{v:.6g}"),
                   st.integers(min_value=0, max_value=30).map(str))
_BODY_CELLS = st.one_of(_PLAIN, _PLAIN, _PLAIN, _PLAIN, _CELLS)
_SEPARATORS = st.sampled_from([",", ";", "\t", " ", "  ", ", ", " ; ", ",,"])
_NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def csv_text(draw) -> str:
    """A table-like text: a random separator, rows of random cells, maybe blank or comment lines."""
    sep = draw(_SEPARATORS)
    newline = draw(_NEWLINES)
    width = draw(st.integers(min_value=1, max_value=6))
    lines = []
    if draw(st.booleans()):  # a header row
        lines.append(sep.join(draw(st.lists(st.one_of(_WORDS, _CELLS), min_size=width, max_size=width))))
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        kind = draw(st.integers(min_value=0, max_value=9))
        if kind == 0:
            lines.append(draw(st.sampled_from(["", "   ", "# a comment", "#epoch,acc"])))
            continue
        # most rows full, some shorter (a curve that ended), a few longer than the rest
        n = width if kind < 7 else draw(st.integers(min_value=0, max_value=width + 2 * (kind == 9)))
        lines.append(sep.join(draw(st.lists(_BODY_CELLS, min_size=n, max_size=n))))
    text = newline.join(lines)
    if draw(st.booleans()):
        text += newline
    return text


@st.composite
def pasted_text(draw) -> str:
    seps = st.sampled_from([",", ";", " ", "\n", ", ", "\t", "  ;"])
    tokens = draw(st.lists(st.one_of(_NUMBERS, _WORDS), max_size=15))
    return "".join(t + draw(seps) for t in tokens)


# --- any input: a valid CurveSet or an InputError ---------------------------------------------------
@PROPERTY
@given(st.binary(max_size=600))
def test__read_csv__random_bytes_give_curves_or_an_input_error(data):
    _read_or_input_error(read_csv, data)


@PROPERTY
@given(st.text(max_size=300))
def test__read_csv__random_text_gives_curves_or_an_input_error(text):
    _read_or_input_error(read_csv, text)


@PROPERTY
@given(csv_text(), st.booleans())
def test__read_csv__csv_like_text_gives_curves_or_an_input_error(text, as_bytes):
    _read_or_input_error(read_csv, text.encode("utf-8", "surrogatepass") if as_bytes else text)


@PROPERTY
@given(st.one_of(pasted_text(), st.text(max_size=200)))
def test__parse_values__any_text_gives_one_curve_or_an_input_error(text):
    cs = _read_or_input_error(parse_values, text)
    assert cs is None or cs.n_curves == 1


# --- well-formed tables are read back exactly ---------------------------------------------------------
# Any value within the limit (repr round-trips every float64).
_VALUES = st.floats(min_value=-curve_io.MAX_ABS_VALUE, max_value=curve_io.MAX_ABS_VALUE,
                    allow_nan=False, allow_infinity=False)
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda s: not curve_io._EPOCH_NAMES.match(s) and s not in curve_io._NAN_WORDS and not _is_float(s)
)


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


@st.composite
def wide_table(draw) -> tuple[list[str], list[list[float]]]:
    """Distinct names and ragged columns (each at least one value; a column may end before others)."""
    n = draw(st.integers(min_value=1, max_value=6))
    names = draw(st.lists(_NAMES, min_size=n, max_size=n, unique=True))
    columns = [draw(st.lists(_VALUES, min_size=1, max_size=15)) for _ in range(n)]
    # A first column 0, 1, 2, ... or 1, 2, 3, ... is an epoch column, even under another name: start
    # the first column elsewhere so that it is read as a curve.
    columns[0][0] += 0.5 if columns[0][0] in (0.0, 1.0) else 0.0
    return names, columns


@PROPERTY
@given(wide_table(), st.sampled_from([",", ";", "\t", " "]), st.booleans(), st.sampled_from(["\n", "\r\n"]))
def test__read_csv__well_formed_wide_files_are_read_back_exactly(table, sep, epochs, newline):
    names, columns = table
    if sep == " ":  # whitespace-separated files cannot leave a cell empty: every curve is as long as the file
        length = max(map(len, columns))
        columns = [c + c[-1:] * (length - len(c)) for c in columns]
    rows = max(map(len, columns))
    header = (["epoch"] if epochs else []) + names
    lines = [sep.join(header)]
    for i in range(rows):
        cells = ([str(i + 1)] if epochs else []) + [repr(c[i]) if i < len(c) else "" for c in columns]
        lines.append(sep.join(cells))
    cs = read_csv(newline.join(lines) + newline)
    assert cs.names == tuple(names)
    assert len(cs.curves) == len(columns)
    for got, want in zip(cs.curves, columns):
        np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float64))


@PROPERTY
@given(st.lists(_VALUES, min_size=1, max_size=40), st.sampled_from([",", ";", " ", "\n", ", "]))
def test__parse_values__numbers_are_read_back_exactly(values, sep):
    cs = parse_values(sep.join(map(repr, values)))
    np.testing.assert_array_equal(cs.curves[0], values)


@PROPERTY
@given(st.lists(st.sampled_from(["acc", "loss", "", "acc (2)", "column 3", "a"]), min_size=1, max_size=40))
def test__column_names__are_unique_and_match_the_first_free_suffix_rule(header):
    names = curve_io._column_names(header, len(header))
    assert len(set(names)) == len(names)
    # the rule, spelled out naively (quadratic, fine for 40 names): the smallest free k >= 2
    want: list[str] = []
    for j, cell in enumerate(header):
        base = cell or f"column {j + 1}"
        name, k = base, 2
        while name in want:
            name, k = f"{base} ({k})", k + 1
        want.append(name)
    assert names == want

