"""Reading learning curves from a CSV file or pasted text (the CLI and the Streamlit app).

Pure functions on numpy, no Streamlit: everything here is testable on its own. Every problem with the
input raises :class:`lcpfn.errors.InputError` with a message a person can act on (it names the
row, the column or the value).

Three layouts are accepted, with or without a header row, separated by commas, semicolons,
tabs or whitespace:

- ``epoch,value``: an epoch column (``1..T``, ``0..T-1`` or evenly spaced steps) and one curve;
- one column of values, one per epoch;
- a wide file: several columns, one curve each (optionally after an epoch column); curves may
  have different lengths, the shorter ones ending in empty cells.

Reading takes time and memory linear in the input's size (cells are split by the stdlib ``csv``
reader, one line at a time). The ``MAX_*`` constants below bound what one input may hold; each is
checked as the input is read, and a value beyond it is an ``InputError`` naming where it is.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lcpfn import limits
from lcpfn.errors import InputError
from lcpfn.normalization import Direction
from lcpfn.validation import MIN_OBSERVED

MAX_BYTES = 5_000_000
"""Largest file (or paste) read, in bytes: a learning curve is a few kilobytes."""
MAX_CURVES = 50
"""Most curves in one file: more cannot be shown or ranked readably."""
MAX_POINTS = 10_000
"""Most observed epochs per curve."""
MAX_COLUMNS = 1_000
"""Most columns in the header row, and in any row of a file of two or more rows: room for
:data:`MAX_CURVES` curves, an epoch column and the empty columns a spreadsheet leaves. (A file of
one line of numbers is one curve written as a row; :data:`MAX_POINTS` bounds it.)"""
MAX_CELL_CHARS = 200
"""Longest cell, in characters: a column name (a run's name and its metric) or a number."""
MAX_ABS_VALUE = limits.MAX_ABS_VALUE
"""Largest magnitude of a value, the same as ``predict``'s (:mod:`lcpfn.limits`), checked as each
value is read: the margin to float64's 1.8e308 keeps every later step finite (spans between
values, the forecast's bands and density grid, plotting)."""
MIN_POINTS = MIN_OBSERVED
"""Fewest observed epochs a curve needs before it is forecast (the same at every door)."""

_EPOCH_NAMES = re.compile(
    r"^(epochs?|steps?|global_step|iters?|iterations?|t|x|time|index|idx|unnamed: ?0|)$"
)
_NAN_WORDS = {"nan", "na", "n/a", "null", "none", "inf", "+inf", "-inf", "infinity", "-infinity"}
_MINIMIZE_WORDS = re.compile(r"loss|err|perplex|ppl|mse|rmse|mae|nll|regret|cost|wer|cer")
_MAXIMIZE_WORDS = re.compile(r"acc|auc|f1|score|precision|recall|r2|bleu|rouge|map|iou|reward|return")


@dataclass(frozen=True)
class CurveSet:
    """Learning curves observed at epochs ``1..T_i``.

    Attributes:
        names: one display name per curve, unique.
        curves: one float64 array ``(T_i,)`` per curve; curves may differ in length.
        notes: what the reader inferred that the user should know (e.g. a shifted epoch column).
    """

    names: tuple[str, ...]
    curves: tuple[np.ndarray, ...]
    notes: tuple[str, ...] = ()

    @property
    def n_curves(self) -> int:
        return len(self.curves)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.curves)

    @property
    def max_length(self) -> int:
        return max(self.lengths)

    def values(self) -> np.ndarray:
        """All observed values, concatenated: ``(sum T_i,)``."""
        return np.concatenate(self.curves)


# --- public entry points ----------------------------------------------------------------------
def read_csv(data: bytes | str, *, source: str = "the file") -> CurveSet:
    """Read curves from CSV bytes or text (any of the three layouts; see the module docstring).

    ``source`` names the input in error messages (e.g. the uploaded file's name). Time and memory
    are linear in the size of the input: every step looks at each cell a bounded number of times,
    and only the kept columns (at most :data:`MAX_CURVES` and an epoch column) are copied out.
    """
    text = _decode(data, source)
    rows, line_numbers = _split_rows(text, source)
    header, body = _split_header(rows)
    lines = line_numbers[1:] if header is not None else line_numbers  # file line of each body row
    if not body:
        raise InputError(f"{source} has a header row but no values below it")
    if header is not None and len(header) > MAX_COLUMNS:
        raise InputError(
            f"{source}: the header row (line {line_numbers[0]}) has {len(header)} columns; at most "
            f"{MAX_COLUMNS} are read (one column per curve, at most {MAX_CURVES} curves)"
        )
    if header is None and len(body) == 1 and len(body[0]) > 1:
        # A single line of numbers is one curve written as a row, as people paste it.
        row = body[0]
        return _finish(("curve",), [_values(row, lambda k: f"{source}: value {k + 1} of line {lines[0]}")], (), source)
    for line, row in zip(lines, body):
        if header is not None and len(row) > len(header):
            raise InputError(
                f"{source}: line {line} has {len(row)} cells but the header has only {len(header)} columns"
            )
        if len(row) > MAX_COLUMNS:
            raise InputError(
                f"{source}: line {line} has {len(row)} cells; at most {MAX_COLUMNS} columns are read "
                f"(one column per curve, at most {MAX_CURVES} curves)"
            )
    ncols = max(len(header) if header is not None else 0, max(len(r) for r in body))
    names = _column_names(header, ncols)
    filled = _filled_columns(body)
    keep = [j for j in range(ncols) if j in filled or (header is not None and header[j])]
    if not keep:
        raise InputError(f"{source} contains no values")
    if len(keep) == 1 and header is not None and header[keep[0]] and _EPOCH_NAMES.match(header[keep[0]].lower()):
        raise InputError(f"{source} has only an epoch column {header[keep[0]]!r} and no values next to it")
    notes: list[str] = []
    epoch_col = _epoch_column(body, names, keep, header is not None)
    if epoch_col is not None:
        order, note = _epoch_order(_cells(body, epoch_col), names[epoch_col], lines, source)
        body = [body[i] for i in order]
        lines = [lines[i] for i in order]
        if note:
            notes.append(note)
        keep = [j for j in keep if j != epoch_col]
        if not keep:
            raise InputError(f"{source} has an epoch column {names[epoch_col]!r} but no values next to it")
    if len(keep) > MAX_CURVES:
        raise InputError(f"{source} has {len(keep)} curves; at most {MAX_CURVES} can be forecast at once")
    curves = [_column(body, j, names[j], header is not None, lines, source) for j in keep]
    curve_names = tuple(names[j] for j in keep) if header is not None else _default_names(len(keep))
    return _finish(curve_names, curves, tuple(notes), source)


def parse_values(text: str, *, source: str = "the pasted values") -> CurveSet:
    """Read one curve from pasted text: numbers separated by commas, semicolons or whitespace."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise InputError(f"{source} are larger than {MAX_BYTES // 1_000_000} MB; paste a single learning curve")
    tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
    if not tokens:
        raise InputError(f"{source} are empty: paste one number per epoch, e.g. 0.52, 0.61, 0.66")
    long = next((k for k, t in enumerate(tokens) if len(t) > MAX_CELL_CHARS), None)
    if long is not None:
        raise InputError(
            f"value {long + 1} of {source} is {len(tokens[long])} characters long; a number has at most "
            f"{MAX_CELL_CHARS}"
        )
    return _finish(("curve",), [_values(tokens, lambda k: f"value {k + 1} of {source}")], (), source)


def guess_direction(curve_set: CurveSet) -> tuple[Direction, str]:
    """Guess whether the metric is maximised or minimised; returns ``(direction, reason)``.

    Column names decide first (``loss``/``error`` -> minimise, ``acc``/``score`` -> maximise);
    otherwise the majority of curves whose last third is above (below) their first third.
    """
    names = " ".join(curve_set.names).lower()
    if _MINIMIZE_WORDS.search(names) and not _MAXIMIZE_WORDS.search(names):
        return "minimize", "the column name looks like a loss or an error"
    if _MAXIMIZE_WORDS.search(names) and not _MINIMIZE_WORDS.search(names):
        return "maximize", "the column name looks like an accuracy or a score"
    votes = 0
    for c in curve_set.curves:
        k = max(1, len(c) // 3)
        votes += int(np.sign(c[-k:].mean() - c[:k].mean()))
    if votes < 0:
        return "minimize", "the values mostly decrease"
    return "maximize", "the values mostly increase" if votes > 0 else "the values are flat"


# --- helpers ----------------------------------------------------------------------------------
def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        raw_len = len(data.encode("utf-8", errors="replace"))
        text = data
    else:
        raw_len = len(data)
        if raw_len > MAX_BYTES:
            raise InputError(_too_big(source, raw_len))
        if b"\x00" in data[:4096]:
            raise InputError(f"{source} is not a text file (it contains binary data); upload a CSV file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    if raw_len > MAX_BYTES:
        raise InputError(_too_big(source, raw_len))
    if not text.strip():
        raise InputError(f"{source} is empty: it should hold one value per epoch (CSV)")
    return text.lstrip("\ufeff")


def _too_big(source: str, n: int) -> str:
    return (
        f"{source} is {n / 1e6:.1f} MB; at most {MAX_BYTES / 1e6:.0f} MB is read. A learning curve "
        "is a few kilobytes: upload the per-epoch values only"
    )


def _split_rows(text: str, source: str) -> tuple[list[list[str]], list[int]]:
    """The cells of every non-blank, non-comment line, and each one's 1-based line number."""
    raw_lines = text.splitlines()
    numbered = [(k + 1, ln) for k, ln in enumerate(raw.strip() for raw in raw_lines)]
    numbered = [(k, ln) for k, ln in numbered if ln and not ln.startswith("#")]
    if not numbered:
        raise InputError(f"{source} is empty: it should hold one value per epoch (CSV)")
    line_numbers = [k for k, _ in numbered]
    lines = [ln for _, ln in numbered]
    sample = "\n".join(lines[:50])
    delimiter = next((d for d in (",", ";", "\t") if d in sample), None)
    if delimiter == "\t":
        # A tab at the start of a line is an empty first cell (a curve that ended), not indentation.
        lines = [raw_lines[k - 1].rstrip() for k in line_numbers]
    if delimiter is None:
        rows = [ln.split() for ln in lines]
    else:
        rows = _csv_rows(lines, line_numbers, delimiter, source)
    for line, row in zip(line_numbers, rows):
        if max(map(len, row), default=0) > MAX_CELL_CHARS:
            j = next(j for j, cell in enumerate(row) if len(cell) > MAX_CELL_CHARS)
            raise InputError(
                f"{source}: line {line}, column {j + 1} is {len(row[j])} characters long; a cell (a column "
                f"name or a number) has at most {MAX_CELL_CHARS}"
            )
    # A trailing delimiter leaves an empty last cell on every row; drop it (as often as every row
    # allows, in one pass: the number of cells dropped is the same for every row).
    drop = min(_trailing_empty(r) for r in rows)
    if drop:
        rows = [r[: len(r) - drop] for r in rows]
    return rows, line_numbers


def _csv_rows(lines: list[str], line_numbers: list[int], delimiter: str, source: str) -> list[list[str]]:
    """Each line's cells, split by the stdlib ``csv`` reader; a quoted cell may not span lines."""
    reader = csv.reader(lines, delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if reader.line_num != len(rows) + 1:
                raise InputError(
                    f"{source}: line {line_numbers[len(rows)]} opens a quote (\") that is not closed on the "
                    "same line"
                )
            rows.append([cell.strip() for cell in row])
    except csv.Error as exc:
        line = line_numbers[min(len(rows), len(line_numbers) - 1)]
        if "field larger than field limit" in str(exc):
            raise InputError(
                f"{source}: line {line} has a cell longer than {csv.field_size_limit()} characters; a cell "
                f"(a column name or a number) has at most {MAX_CELL_CHARS}"
            ) from None
        raise InputError(f"{source}: line {line} cannot be read as CSV ({exc})") from None
    return rows


def _trailing_empty(row: list[str]) -> int:
    """How many empty cells end ``row``, keeping at least its first cell."""
    k = len(row)
    while k > 1 and not row[k - 1]:
        k -= 1
    return len(row) - k


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _split_header(rows: list[list[str]]) -> tuple[list[str] | None, list[list[str]]]:
    first = rows[0]
    if any(c and not _is_number(c) and c.lower() not in _NAN_WORDS for c in first):
        return first, rows[1:]
    return None, rows


def _column_names(header: list[str] | None, ncols: int) -> list[str]:
    """One unique name per column: the header's, ``"column j"`` for an empty one, ``"name (k)"``
    for the ``k``-th use of a name (the smallest ``k >= 2`` not taken)."""
    if header is None:
        return [f"column {j + 1}" for j in range(ncols)]
    names: list[str] = []
    taken: set[str] = set()
    # For each repeated name, the next suffix to try: every smaller one is taken already (names are
    # only ever added), so each taken name is passed over at most once and the loop is linear.
    next_suffix: dict[str, int] = {}
    for j in range(ncols):
        base = header[j] if j < len(header) and header[j] else f"column {j + 1}"
        name = base
        if name in taken:
            k = next_suffix.get(base, 2)
            name = f"{base} ({k})"
            while name in taken:
                k += 1
                name = f"{base} ({k})"
            next_suffix[base] = k + 1
        taken.add(name)
        names.append(name)
    return names


def _filled_columns(body: list[list[str]]) -> set[int]:
    """The indices of the columns with a non-empty cell in some row (one look at every cell)."""
    filled: set[int] = set()
    for row in body:
        filled.update(j for j, cell in enumerate(row) if cell)
    return filled


def _cells(body: list[list[str]], j: int) -> list[str]:
    """Column ``j`` of ``body``, with ``""`` where a row ends before it."""
    return [row[j] if j < len(row) else "" for row in body]


def _default_names(n: int) -> tuple[str, ...]:
    return ("curve",) if n == 1 else tuple(f"curve {k + 1}" for k in range(n))


def _epoch_column(body: list[list[str]], names: list[str], keep: list[int], has_header: bool) -> int | None:
    """The index of an epoch column (always the first kept column), or ``None``."""
    if len(keep) < 2:
        return None
    j = keep[0]
    if has_header and _EPOCH_NAMES.match(names[j].strip().lower()):
        return j
    try:
        values = [float(c) for c in _cells(body, j)]
    except ValueError:
        return None
    if not all(math.isfinite(v) and v.is_integer() for v in values):
        return None
    ints = [int(v) for v in values]
    start = ints[0]
    return j if start in (0, 1) and ints == list(range(start, start + len(ints))) else None


def _epoch_order(cells: list[str], name: str, lines: list[int], source: str) -> tuple[list[int], str]:
    """Row order that sorts the epoch column ``cells``, after checking it is ``1..T`` (or shifted/strided)."""
    epochs: list[int] = []
    for k, cell in enumerate(cells):
        where = f"{source}: line {lines[k]}, epoch column {name!r}"
        if not cell:
            raise InputError(f"{where} is empty; every row needs its epoch")
        v = _number(cell, where)
        if not v.is_integer():
            raise InputError(f"{where}: epochs must be whole numbers, but got {cell!r}")
        epochs.append(int(v))
    order = sorted(range(len(epochs)), key=epochs.__getitem__)
    e = [epochs[i] for i in order]
    dup = next((a for a, b in zip(e, e[1:]) if a == b), None)
    if dup is not None:
        raise InputError(f"{source}: epoch {dup} appears more than once in column {name!r}")
    note = ""
    if e[0] == 0:
        e = [x + 1 for x in e]
        note = f"the epochs in {name!r} start at 0; they are read as 1..{e[-1]}"
    step = e[1] - e[0] if len(e) > 1 else 1
    if step > 1 and e[0] == step and all(b - a == step for a, b in zip(e, e[1:])):
        note = (
            f"{name!r} counts in steps of {step}; the {len(e)} evaluations are read as epochs "
            f"1..{len(e)} (forecast horizons are in evaluations, too)"
        )
        e = list(range(1, len(e) + 1))
    if e[0] != 1:
        raise InputError(
            f"{source}: the epochs in {name!r} start at {e[0]}; they must start at 1 (or 0), "
            "because the model needs the curve from its first epoch"
        )
    missing = next((a + 1 for a, b in zip(e, e[1:]) if b != a + 1), None)
    if missing is not None:
        raise InputError(
            f"{source}: epoch {missing} is missing from column {name!r}; the model needs a value "
            "at every epoch 1, 2, 3, ..."
        )
    return order, note


def _number(cell: str, where: str) -> float:
    if cell.lower() in _NAN_WORDS:
        raise InputError(f"{where} is {cell!r}; every value must be a finite number (no NaN or infinity)")
    try:
        v = float(cell)
    except ValueError:
        raise InputError(f"{where} is {cell!r}, which is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{where} is {cell!r}; every value must be a finite number (no NaN or infinity)")
    if abs(v) > MAX_ABS_VALUE:
        raise InputError(
            f"{where} is {cell!r}; values up to {MAX_ABS_VALUE:g} in magnitude are read (larger ones would "
            "overflow the forecast's arithmetic): rescale the metric"
        )
    return v


def _column(
    body: list[list[str]], j: int, name: str, has_header: bool, lines: list[int], source: str
) -> np.ndarray:
    label = f"column {name!r}" if has_header else name
    return _values(_cells(body, j), lambda k: f"{source}: line {lines[k]}, {label}")


def _values(cells: list[str], where: Callable[[int], str]) -> np.ndarray:
    """The numbers in ``cells``; trailing empty cells end the curve, other empty cells are errors."""
    n = len(cells)
    while n and not cells[n - 1]:
        n -= 1
    values: list[float] = []
    for k, cell in enumerate(cells[:n]):
        if not cell:
            raise InputError(
                f"{where(k)} is empty but later lines have values; a curve needs a value at every "
                "epoch (only trailing cells may be empty)"
            )
        try:
            v = float(cell)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and abs(v) <= MAX_ABS_VALUE):
            v = _number(cell, where(k))  # raises, naming the cell; the message is built only then
        values.append(v)
    return np.asarray(values, dtype=np.float64)


def _finish(
    names: tuple[str, ...], curves: list[np.ndarray], notes: tuple[str, ...], source: str
) -> CurveSet:
    for name, c in zip(names, curves):
        if len(c) < MIN_POINTS:
            raise InputError(
                f"{source}: curve {name!r} has {len(c)} value{'s' if len(c) != 1 else ''}; at least {MIN_POINTS} "
                f"observed epoch{'s are' if MIN_POINTS != 1 else ' is'} needed to forecast it"
            )
        if len(c) > MAX_POINTS:
            raise InputError(f"{source}: curve {name!r} has {len(c)} values; at most {MAX_POINTS} epochs are read")
    return CurveSet(names=names, curves=tuple(curves), notes=notes)


def read_curves_file(path, *, source: str | None = None) -> CurveSet:
    """Read curves from a CSV file on disk; see :func:`read_csv`."""
    from pathlib import Path

    p = Path(path)
    source = source or str(path)
    if not p.is_file():
        raise InputError(f"curve file {source!r} does not exist")
    if p.stat().st_size > MAX_BYTES:
        raise InputError(_too_big(source, p.stat().st_size))
    return read_csv(p.read_bytes(), source=source)
