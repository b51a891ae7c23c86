"""Reading many curves a chunk at a time: a ``.npy`` file as rows of curves.

:func:`open_npy` opens a 2-D ``.npy`` array ``(n_curves, n_epochs)``, one curve per row, NaN
after a curve's end (what ``np.save("curves.npy", curves)`` writes for the ``(n, T)`` array
``predict`` takes), and reads only the rows asked for: ``rows[a:b]`` is a float64 ``(b - a, T)``
array read from the file then and there. Memory is that of the rows read, whatever the file's
size (a memory map would instead keep every page it touched resident). Format versions 1.0
and 2.0 are read (what ``np.save`` writes for numeric arrays). It is what
:meth:`lcpfn.LCPFN.predict_iter` and ``lcpfn predict FILE.npy --out ...`` stream from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcpfn.errors import InputError

__all__ = ["NpyRows", "open_npy"]


class NpyRows:
    """The rows of a ``.npy`` array, read on demand (see the module docstring).

    Attributes:
        path: the file.
        shape: ``(n_curves, n_epochs)``; a 1-D array is one curve, ``(1, n_epochs)``.
        dtype: the stored dtype (any integer or float; rows come back as float64).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                offset = f.tell()
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except (OSError, ValueError, EOFError) as exc:  # not .npy (CSV, an .npz archive), a bad header
            raise InputError(
                f"{self.path} is not a .npy array of numbers (save one with np.save): {exc}"
            ) from None
        if dtype.kind not in "iuf":
            raise InputError(f"{self.path} holds {dtype} values; curves must be integers or floats")
        if len(shape) not in (1, 2):
            raise InputError(
                f"{self.path} holds an array of shape {shape}; curves must be 2-D (n_curves, n_epochs), "
                "one curve per row"
            )
        self.dtype: np.dtype = dtype
        self._offset = int(offset)
        self._fortran = len(shape) == 2 and bool(fortran)  # Fortran order: a column is contiguous
        self.shape: tuple[int, int] = (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])
        size = self._offset + self.shape[0] * self.shape[1] * dtype.itemsize
        if self.path.stat().st_size < size:
            raise InputError(
                f"{self.path} is truncated: its header promises {size} bytes but it has {self.path.stat().st_size}"
            )

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"NpyRows({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: slice) -> np.ndarray:
        """Rows ``key`` (a slice with step 1) as a float64 ``(rows, n_epochs)`` array."""
        if not isinstance(key, slice):
            raise TypeError("NpyRows reads slices of rows: rows[a:b]")
        n, t = self.shape
        start, stop, step = key.indices(n)
        if step != 1:
            raise TypeError("NpyRows reads contiguous rows: a slice with step 1")
        m = max(0, stop - start)
        size = self.dtype.itemsize
        with open(self.path, "rb") as f:
            if not self._fortran:
                f.seek(self._offset + start * t * size)
                out = np.fromfile(f, dtype=self.dtype, count=m * t).reshape(m, t)
            else:  # column j holds rows start..stop at offset + (j n + start) * itemsize
                out = np.empty((m, t), dtype=self.dtype)
                for j in range(t):
                    f.seek(self._offset + (j * n + start) * size)
                    out[:, j] = np.fromfile(f, dtype=self.dtype, count=m)
        return out.astype(np.float64)


def open_npy(path: str | Path) -> NpyRows:
    """Open a ``.npy`` file of curves (one per row) for reading a chunk of rows at a time."""
    return NpyRows(path)
