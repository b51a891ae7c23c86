"""The stopping rule of the HPO integrations, free of any HPO framework.

The rule is the one of the LC-PFN paper (Adriaensen et al. 2023, §4.3): at a check, forecast a
running trial's value at the final step ``max_resource`` from the values it has reported so far,
and stop it when ``P(final value better than the best complete trial's final value) < min_prob``
(for ``n_confirm`` consecutive checks). :class:`lcpfn.integrations.ray.LCPFNScheduler` is built on
it; :class:`lcpfn.integrations.optuna.LCPFNPruner` implements the same rule on Optuna's storage.

What a framework adapter does around it: it keeps (or reads) each trial's reported values by
step, the complete trials, and the count of consecutive low checks of each running trial, and
calls, in this order, :func:`is_check_step` (warm-up and interval, the trial's own steps only),
its own count of complete trials against ``n_startup_trials``, :func:`incumbent` (what the
complete trials say) and :func:`forecast_check` (the forecast).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lcpfn.errors import InputError
from lcpfn.normalization import Bounds, check_bounds, study_bounds

if TYPE_CHECKING:
    from lcpfn.predictor import LCPFN


@dataclass(frozen=True)
class RuleOptions:
    """The options of the rule, validated (each error names the bad value).

    ``min_prob`` in ``[0, 1]``; ``n_startup_trials >= 0``; ``n_warmup_steps >= 0``;
    ``interval_steps >= 1``; ``n_confirm >= 1``; ``target`` finite or ``None``; ``bounds`` as
    :func:`lcpfn.normalization.check_bounds` takes them, stored as ``None`` when no side is known.
    """

    min_prob: float = 0.05
    n_startup_trials: int = 0
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_confirm: int = 1
    target: float | None = None
    bounds: Bounds | None = None

    def __post_init__(self) -> None:
        min_prob = number(self.min_prob, "min_prob")
        if not 0.0 <= min_prob <= 1.0:
            raise InputError(f"min_prob must be between 0 and 1 but got {min_prob}")
        target = self.target
        if target is not None:
            target = number(target, "target")
            if not math.isfinite(target):
                raise InputError(f"target must be finite but got {target}")
        bounds = check_bounds(self.bounds)  # "infer" means: derive both sides
        set_ = object.__setattr__  # frozen: the validated values replace the given ones
        set_(self, "min_prob", min_prob)
        set_(self, "n_startup_trials", integer(self.n_startup_trials, "n_startup_trials", minimum=0))
        set_(self, "n_warmup_steps", integer(self.n_warmup_steps, "n_warmup_steps", minimum=0))
        set_(self, "interval_steps", integer(self.interval_steps, "interval_steps", minimum=1))
        set_(self, "n_confirm", integer(self.n_confirm, "n_confirm", minimum=1))
        set_(self, "target", target)
        set_(self, "bounds", None if bounds == (None, None) else bounds)


@dataclass(frozen=True)
class Finished:
    """What the rule needs of one complete trial.

    ``first``: its value at its first reported step, if finite (:func:`first_value`); ``last_step``: its last reported
    step (``None``: it reported none); ``values``: its reported values by step (only the value at
    ``max_resource`` is read); ``value``: its final value where it has none at ``max_resource``
    (Optuna: the objective value; Ray: the last reported value).
    """

    first: float | None
    last_step: int | None
    values: Mapping[int, float]
    value: float | None


@dataclass(frozen=True)
class Incumbent:
    """What a study's complete trials say, for the checks until another trial completes."""

    max_resource: int | None  # the horizon; None: "auto" and no complete trial reported a step
    threshold: float | None  # the best finite final value at `max_resource`; None: none is finite
    start: float | None  # the median first finite value (the start level); None: there is none


@dataclass(frozen=True)
class Check:
    """One forecast of a trial: its ``P(improve)`` on ``threshold`` and the predicted median final value.

    ``bounds`` is the ``(low, high)`` the forecast was normalised with (:func:`study_bounds`).
    """

    step: int
    max_resource: int
    threshold: float
    p_improve: float
    median_final: float
    bounds: tuple[float, float]

    def record(self, *, below: int, pruned: bool) -> dict[str, Any]:
        """The record the integrations keep of a check (``LCPFNPruner``'s trial user attribute)."""
        return {
            "step": self.step,
            "max_resource": self.max_resource,
            "threshold": self.threshold,
            "median_final": self.median_final,
            "p_improve": self.p_improve,
            "below": below,
            "pruned": pruned,
        }


def is_check_step(step: int, steps: Iterable[int], n_warmup_steps: int, interval_steps: int) -> bool:
    """Whether a trial whose reported steps are ``steps`` (``step``, its last, among them) is checked now.

    Not before ``n_warmup_steps``; then at the first reported step at or after each scheduled
    check ``n_warmup_steps + k * interval_steps`` (Optuna's rule: a check whose step was not
    reported happens at the next reported step).
    """
    if step < n_warmup_steps:
        return False
    scheduled = (step - n_warmup_steps) // interval_steps * interval_steps + n_warmup_steps
    previous = max((s for s in steps if s != step), default=-1)
    return previous < scheduled


def incumbent(
    finished: Iterable[Finished], *, max_resource: int | Literal["auto"], maximize: bool
) -> Incumbent:
    """The horizon, the best final value and the start level of the complete trials ``finished``.

    ``max_resource="auto"``: the largest last step among them. A trial's final value is its value
    at the horizon if it reported one there, else its ``value``; non-finite values are ignored.
    """
    finished = list(finished)
    horizon: int | None
    if max_resource == "auto":
        horizon = max((f.last_step for f in finished if f.last_step is not None), default=None)
    else:
        horizon = max_resource
    starts = [f.first for f in finished if f.first is not None and math.isfinite(f.first)]
    finals = []
    for f in finished:
        v = f.values.get(horizon) if horizon is not None else None
        if v is None:
            v = f.value
        if v is not None and math.isfinite(v):
            finals.append(float(v))
    threshold = None if horizon is None or not finals else (max(finals) if maximize else min(finals))
    return Incumbent(
        max_resource=horizon, threshold=threshold, start=float(np.median(starts)) if starts else None
    )


def first_value(values: Mapping[int, float]) -> float | None:
    """The value at the first reported step if it is finite (a start level), else ``None``."""
    if not values:
        return None
    v = values[min(values)]
    return float(v) if math.isfinite(v) else None


def epoch_curve(values: Mapping[int, float], max_resource: int) -> tuple[np.ndarray, int]:
    """The reported values as a curve on epochs ``1..T`` and the horizon ``max_epochs``.

    Step ``s`` is epoch ``s - base + 1`` with ``base = 0`` if step 0 was reported, else 1. Missing
    steps (and non-finite values) are filled by linear interpolation; epochs before the first
    reported step take the first value. The last finite reported step is epoch ``T``. Needs at
    least one finite value. Returns ``curve`` of shape ``(T,)`` and
    ``max_epochs = max_resource - base + 1``.
    """
    base = 0 if 0 in values else 1
    items = sorted((s, v) for s, v in values.items() if math.isfinite(v))
    steps = np.array([s for s, _ in items], dtype=np.float64)
    vals = np.array([v for _, v in items], dtype=np.float64)
    epochs = steps - base + 1
    n_observed = int(epochs[-1])
    curve = np.interp(np.arange(1, n_observed + 1, dtype=np.float64), epochs, vals)
    return curve, max_resource - base + 1


def forecast_check(
    model: Any,
    values: Mapping[int, float],
    *,
    step: int,
    max_resource: int,
    threshold: float,
    start: float | None,
    maximize: bool,
    known: Bounds = (None, None),
) -> Check:
    """Forecast a trial's value at ``max_resource`` from ``values`` (by step; ``step`` the last).

    ``model`` is anything with :meth:`lcpfn.LCPFN.predict`'s signature. The forecast is made on
    the study's scale (:func:`lcpfn.normalization.study_bounds` from ``start``, ``threshold`` and
    the ``known`` sides of the metric's range), on one torch thread. That range is only a scale:
    the forecast is truncated to the ``known`` sides alone, widened to hold the curve and the
    threshold (:func:`lcpfn.normalization.widen_limits`). Needs ``step < max_resource`` and a
    finite value at ``step``.
    """
    curve, max_epochs = epoch_curve(values, max_resource)
    # The median of one value is that value: `start` stands for every complete trial's start.
    bounds = study_bounds(curve, threshold=threshold, starts=[] if start is None else [start], known=known)
    with one_torch_thread():
        # the study's range is a scale, not the metric's: keep only to the known sides
        forecast = model.predict(
            curve, max_epochs=max_epochs, direction="maximize" if maximize else "minimize", bounds=bounds,
            keep_within=(None, None),  # untruncated: truncating to known bounds lost LCBench bests (BENCHMARKS §13)
        )
        p_improve = float(forecast.prob_improve(threshold))
        median_final = float(forecast.median()[-1])
    return Check(
        step=step,
        max_resource=max_resource,
        threshold=float(threshold),
        p_improve=p_improve,
        median_final=median_final,
        bounds=bounds,
    )


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, in the calling thread only.

    A forecast of one curve is a tiny forward pass: more threads only add latency, a lot of it
    when other processes busy the cores. Torch's OpenMP backend keeps the thread count per calling
    thread, so this neither slows the caller's training after the block nor other threads during it.
    """
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LazyModel:
    """The forecaster of an integration: an object used as is, or a name or path loaded at first use.

    ``model``: an :class:`lcpfn.LCPFN` (anything with ``predict``), a name or checkpoint directory
    for :meth:`lcpfn.LCPFN.from_pretrained`, or ``None`` for the default shipped model. Loading
    happens once, under a lock. Pickling keeps the spec (or the given object), not a loaded model.
    """

    def __init__(self, model: LCPFN | str | os.PathLike[str] | None) -> None:
        if model is not None and not isinstance(model, (str, os.PathLike)) and not hasattr(model, "predict"):
            raise InputError(
                f"model must be an LCPFN, a model name or a checkpoint directory, but got {model!r}"
            )
        self._given = None if model is None or isinstance(model, (str, os.PathLike)) else model
        self._spec = None if self._given is not None else model
        self._loaded: LCPFN | None = None
        self._lock = threading.Lock()

    def get(self) -> LCPFN:
        if self._given is not None:
            return self._given
        model = self._loaded
        if model is None:
            with self._lock:
                if self._loaded is None:
                    from lcpfn.predictor import LCPFN

                    spec = self._spec
                    self._loaded = LCPFN.from_pretrained() if spec is None else LCPFN.from_pretrained(str(spec))
                model = self._loaded
        return model

    def __getstate__(self) -> dict[str, Any]:
        return {"_given": self._given, "_spec": self._spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._given, self._spec = state["_given"], state["_spec"]
        self._loaded = None
        self._lock = threading.Lock()


def integer(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer but got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum} but got {value}")
    return int(value)


def number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number but got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number but got {value!r}") from None
