"""Reading observed curves from CSV files (used by the CLI)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from lcpfn.errors import InputError

MAX_FILE_BYTES = 50_000_000


def read_curves_csv(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read curves from a CSV file; see :func:`parse_curves_csv`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"curve file {str(path)!r} does not exist")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"curve file {str(path)!r} is larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise InputError(f"curve file {str(path)!r} is not a text (CSV) file") from None
    return parse_curves_csv(text, source=str(path))


def parse_curves_csv(text: str, *, source: str = "input") -> tuple[np.ndarray, list[str]]:
    """Parse observed curves: ``(n, T)`` values and ``n`` names.

    Accepted layouts, each with or without a header row, whitespace tolerated:
    one column of values; two columns ``epoch,value`` (the first column counts 1, 2, 3, ...);
    several columns, one curve each (all of the same length).
    """
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text.strip()))]
    rows = [r for r in rows if any(r)]
    if not rows:
        raise InputError(f"{source}: no values found (empty file)")
    header = None
    if not _all_numeric(rows[0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise InputError(f"{source}: only a header row, no values")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise InputError(f"{source}: row {i + 1 + (header is not None)} has {len(r)} cells, expected {width}")
    values = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        for j, cell in enumerate(r):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise InputError(
                    f"{source}: row {i + 1 + (header is not None)}, column {j + 1} is not a number: {cell!r}"
                ) from None
    if not np.all(np.isfinite(values)):
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise InputError(f"{source}: row {i + 1 + (header is not None)}, column {j + 1} is {float(values[i, j])!r}")
    names = header or [f"curve {j + 1}" for j in range(width)]
    if width == 2 and np.array_equal(values[:, 0], np.arange(1, len(rows) + 1)):
        return values[:, 1][None, :], [names[1] if header else "curve"]
    return values.T.copy(), list(names)


def _all_numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True
