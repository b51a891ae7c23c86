"""What several benchmark scripts share: the real-curve tasks they replay and how a run is read.

Imports no other benchmark script and only lcpfn's public API. Scripts are run as
``python benchmarks/NAME.py``, which puts this directory on ``sys.path``, so they
``import common`` without editing the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

#: The sources replayed as studies: name -> (file under the data directory, direction).
SOURCES: dict[str, tuple[str, Literal["maximize", "minimize"]]] = {
    "lcbench_surrogate": ("lcbench_surrogate/yahpo_lcbench_surrogate_sample.npz", "maximize"),
    "taskset_dpl": ("taskset_dpl/taskset_dpl.npz", "minimize"),
}
#: The metric's known range, as ``LCPFN.predict(bounds=...)`` and ``LCPFNPruner(bounds=...)`` take
#: it: an accuracy in % lies in [0, 100]; a loss is >= 0 (its upper side is not known).
KNOWN_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "lcbench_surrogate": (0.0, 100.0),
    "taskset_dpl": (0.0, None),
}

Split = Literal["dev", "heldout", "all"]
Reading = Literal["prefix", "stretch"]
READINGS: tuple[Reading, ...] = ("prefix", "stretch")


@dataclass(frozen=True)
class Task:
    """The curves of one task: ``values`` ``(n, T)`` (NaN = diverged), reported at ``steps`` ``(T,)``."""

    source: str
    name: str
    direction: Literal["maximize", "minimize"]
    steps: np.ndarray
    values: np.ndarray


def load_tasks(source: str, data_dir: Path, split: Split) -> list[Task]:
    """The tasks of ``source``, sorted by name: even positions are ``dev``, odd ones ``heldout``.

    This split is by task (a study is one task), unlike ``lcpfn.evaluation``'s split of single
    curves by configuration hash.
    """
    file, direction = SOURCES[source]
    with np.load(data_dir / file, allow_pickle=False) as z:  # each z[...] decompresses: read once
        lengths, task_of, all_steps, values = z["lengths"], z["task"], z["steps"], z["values"]
    if len(set(lengths.tolist())) != 1:
        raise SystemExit(f"{source}: curves of different lengths are not supported by this replay")
    names = sorted(set(task_of.tolist()))
    keep = {"dev": names[0::2], "heldout": names[1::2], "all": names}[split]
    tasks = []
    for name in keep:
        rows = np.flatnonzero(task_of == name)
        steps = all_steps[rows[0]]
        # Optuna steps are integers: epochs as they are (LCBench 1..52), else the evaluation index.
        whole = np.all(steps == np.round(steps)) and steps[0] >= 0 and steps[-1] < 1000
        int_steps = steps.astype(np.int64) if whole else np.arange(len(steps))
        tasks.append(Task(source, name, direction, int_steps, values[rows].astype(np.float64)))
    return tasks


class ReadAs:
    """A model whose ``predict`` always uses one ``reading`` (``LCPFN.predict(..., reading=...)``).

    For callers that take any object with ``predict`` and pass no ``reading`` themselves: the
    Optuna pruner (``LCPFNPruner(model=...)``) and ``lcpfn.evaluation.forecaster_from_predictor``.
    """

    def __init__(self, model: Any, reading: Reading) -> None:
        if reading not in READINGS:
            raise SystemExit(f"unknown reading {reading!r}; known: {', '.join(READINGS)}")
        self.model = model
        self.reading = reading

    def __repr__(self) -> str:
        return f"ReadAs({self.model!r}, reading={self.reading!r})"

    def predict(self, curves: Any, **options: Any) -> Any:
        return self.model.predict(curves, reading=self.reading, **options)


def read_as(model: Any, reading: Reading) -> Any:
    """``model`` itself for the default ``prefix`` reading, else a :class:`ReadAs` wrapper."""
    return model if reading == "prefix" else ReadAs(model, reading)
