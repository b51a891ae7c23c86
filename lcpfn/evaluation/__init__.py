"""The evaluation harness: the paper's extrapolation benchmark, for any set of forecasters.

Protocol (Adriaensen et al. 2023, §4.1): for every curve of length ``L`` and every cutoff fraction
``f`` (10, 20, 40, 80 %), the forecaster observes the noisy values ``y_1 .. y_c`` with
``c = round(f L)`` (at least 1, at most ``L - 1``) and forecasts epochs ``c+1 .. L``
(``max_epochs = L``). Its scores (:mod:`lcpfn.metrics`) are the mean log density of the true
values, the MSE of the predictive median and the coverage of the central 90 % interval, averaged
over curves; its cost is the wall-clock seconds of ``predict`` per curve, after one untimed
warm-up forecast per forecaster and run (so that lazy setup, such as PyMC's compilation, is not
charged to the first curves).

Everything is scored in the **normalised** space the paper reports in: increasing curves in about
``[0, 1]``. Each curve carries its own map into that space (:class:`EvalDataset`):

* prior curves are already there;
* metrics with a known range (accuracies in ``[0, 1]`` or in %) are mapped by those bounds, flipped
  when lower is better; for those, the score equals that of ``predict(raw, direction=..., bounds=...)``
  plus ``log(high - low)`` in LL (a test checks it);
* losses (no upper bound) are mapped per curve *and cutoff* by ``z = 1 - y / max(y_1..y_c)``: the
  lower bound ``0`` of a loss and the largest loss observed so far, so nothing after the cutoff
  leaks into the normalisation.

With ``inputs="raw"`` (``--inputs raw``) forecasters get the prefix in the curve's own units with its
direction and known bounds (a loss: ``(0, None)``) and map it themselves, as for a user; the scores
are taken into the same normalised units through the exact Jacobian of the map above.

Forecasters are named by spec strings (:func:`build_forecaster`): ``pfn:NAME_OR_DIR``, ``mcmc``,
``last``, ``pow3``, with constructor options after a colon (``mcmc:draws=200,chains=2``), an
optional label (``P1=pfn:path/to/ckpt``) and an optional curve cap (``mcmc@5``: the first 5 curves
of every dataset). Results are cached per (forecaster, curve, cutoff) in a JSONL file, appended
after every chunk, so an interrupted sweep resumes where it stopped; the cache key holds a hash
of the forecaster's weights and code and of the curve's values, so a new model or changed data is
never served stale numbers.

Modules: :mod:`~lcpfn.evaluation.protocol` (cutoffs, splits, the paper's numbers; standard
library only), :mod:`~lcpfn.evaluation.datasets`, :mod:`~lcpfn.evaluation.forecasters`,
:mod:`~lcpfn.evaluation.run` (the loop and the cache), :mod:`~lcpfn.evaluation.report`,
:mod:`~lcpfn.evaluation.plots` and :mod:`~lcpfn.evaluation.cli`. The names below are imported
from them on first use, so ``import lcpfn.evaluation`` (and the CLI's ``--help``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # protocol
    "CUTOFFS": "protocol",
    "DEFAULT_SOURCES": "protocol",
    "HOLDOUT_FRACTION": "protocol",
    "PAPER_TABLE3": "protocol",
    "PaperRow": "protocol",
    "cutoff_index": "protocol",
    "split_of": "protocol",
    # datasets
    "DIVERGENCE_FACTOR": "datasets",
    "MIN_LENGTH": "datasets",
    "EvalDataset": "datasets",
    "default_data_dir": "datasets",
    "npz_dataset": "datasets",
    "prior_dataset": "datasets",
    "real_datasets": "datasets",
    # forecasters
    "CACHE_VERSION": "forecasters",
    "Forecaster": "forecasters",
    "build_forecaster": "forecasters",
    "forecaster_from_predictor": "forecasters",
    # run
    "LEVEL": "run",
    "QUANTILES": "run",
    "CurveResult": "run",
    "ResultCache": "run",
    "evaluate": "run",
    # report
    "HeadToHead": "report",
    "SummaryRow": "report",
    "describe_machine": "report",
    "format_head_to_head": "report",
    "format_markdown": "report",
    "head_to_head": "report",
    "summarize": "report",
    "write_csv": "report",
    "write_report": "report",
    # plots
    "plot_fan_charts": "plots",
    "plot_ll_vs_runtime": "plots",
    # cli
    "add_cli": "cli",
    "run_cli": "cli",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
