"""A client of ``lcpfn serve``: forecasts from a server, with the methods of a ``Forecast``.

::

    from lcpfn.client import ForecastClient

    client = ForecastClient("http://127.0.0.1:8000")          # token: $LCPFN_API_TOKEN if set
    fc = client.predict([0.39, 0.52, 0.61, 0.65], max_epochs=50, targets=[0.8])
    fc.median(), fc.quantile(0.95), fc.mean(), fc.prob_improve(0.8), fc.bounds

Only the standard library and numpy: no torch, no model in the calling process. Curves are
checked here by the code ``predict`` checks with, so bad input raises the same
:class:`~lcpfn.errors.InputError` without a round trip; the server's own 4xx answers (its caps, a
wrong token) raise :class:`~lcpfn.errors.InputError` with the server's message; a server that
cannot be reached or fails raises :class:`ForecastServerError`.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lcpfn.errors import InputError
from lcpfn.normalization import check_bounds, check_direction
from lcpfn.validation import check_curves

__all__ = ["ForecastClient", "RemoteForecast", "ForecastServerError", "DEFAULT_QUANTILES"]

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantiles a forecast carries unless ``predict(quantiles=...)`` names others (as the server's)."""

_TOKEN_ENV = "LCPFN_API_TOKEN"


class ForecastServerError(RuntimeError):
    """The server could not be reached, timed out, or failed (a 5xx answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteForecast:
    """A server's forecast of ``n`` curves, read like a :class:`lcpfn.forecast.Forecast`.

    Arrays are ``(n, H)`` over :attr:`epochs` ``min(T)+1 .. max_epochs`` with NaN where a curve
    has already observed the epoch, or ``(H,)`` for one 1-D curve, as ``Forecast`` returns them.
    It holds what the server sent: :meth:`quantile` answers the requested quantiles (and the
    median), :meth:`prob_improve` the requested targets at the last epoch.
    """

    def __init__(self, answer: dict[str, Any], *, squeeze: bool) -> None:
        forecasts = answer["forecasts"]
        self.model: str = answer["model"]
        self.direction: Literal["maximize", "minimize"] = answer["direction"]
        self.lengths = np.array([f["observed_epochs"] for f in forecasts], dtype=np.int64)
        self.epochs = np.arange(int(self.lengths.min()) + 1, int(answer["max_epochs"]) + 1)
        b = forecasts[0]["bounds"]
        self.bounds: tuple[float | None, float | None] = (b[0], b[1])
        self._squeeze = squeeze
        self._quantiles = [float(q) for q in answer["quantiles"]]
        self._targets = [float(t) for t in answer["targets"]]
        self._median = self._table([f["median"] for f in forecasts])
        self._mean = self._table([f["mean"] for f in forecasts])
        self._by_q = [self._table([f["quantiles"][k] for f in forecasts]) for k in range(len(self._quantiles))]
        self._prob = np.array([f["prob_improve"] for f in forecasts], dtype=np.float64).reshape(len(forecasts), -1)

    def _table(self, rows: list[list[float | None]]) -> np.ndarray:
        """Per-curve rows (each from its own first forecast epoch) -> ``(n, H)`` NaN before each."""
        out = np.full((len(rows), len(self.epochs)), np.nan)
        for i, row in enumerate(rows):
            out[i, len(self.epochs) - len(row):] = np.array(row, dtype=np.float64)
        return out

    @property
    def n_curves(self) -> int:
        return len(self.lengths)

    @property
    def max_epochs(self) -> int:
        return int(self.epochs[-1])

    @property
    def quantiles(self) -> list[float]:
        """The quantile levels this forecast holds (the median always)."""
        return sorted(set(self._quantiles) | {0.5})

    @property
    def targets(self) -> list[float]:
        """The targets :meth:`prob_improve` answers."""
        return list(self._targets)

    def quantile(self, q: float) -> np.ndarray:
        """The ``q``-quantile of every future epoch, for a ``q`` that was requested (or 0.5)."""
        try:
            v = float(q)
        except (TypeError, ValueError):
            raise InputError(f"q must be a probability in (0, 1), but got {q!r}") from None
        if v == 0.5:
            return self._out(self._median)
        for k, have in enumerate(self._quantiles):
            if math.isclose(v, have, rel_tol=0.0, abs_tol=1e-12):
                return self._out(self._by_q[k])
        raise InputError(
            f"q={q!r} was not requested from the server: this forecast holds the quantiles "
            f"{', '.join(f'{x:g}' for x in self.quantiles)}; pass quantiles=[..., {q!r}] to predict"
        )

    def median(self) -> np.ndarray:
        return self._out(self._median)

    def mean(self) -> np.ndarray:
        return self._out(self._mean)

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` credible interval, from the requested quantiles ``(1 ± level) / 2``."""
        return self.quantile((1 - level) / 2), self.quantile((1 + level) / 2)

    def prob_improve(self, threshold, *, epoch: int | None = None):
        """P(the value at the last epoch is better than ``threshold``), for a requested target.

        ``threshold`` is a scalar or one value per curve ``(n,)``; returns ``(n,)``, or a float
        for one 1-D curve, as :meth:`lcpfn.forecast.Forecast.prob_improve`.
        """
        if epoch is not None and epoch != self.max_epochs:
            raise InputError(f"epoch must be the last epoch ({self.max_epochs}) for a server's forecast, "
                             f"but got {epoch!r}")
        thr = np.asarray(threshold, dtype=np.float64)
        if thr.ndim == 0:
            thr = np.full(self.n_curves, float(thr))
        if thr.shape != (self.n_curves,):
            raise InputError(f"threshold must be a scalar or have one value per curve ({self.n_curves},), "
                             f"but has shape {thr.shape}")
        out = np.empty(self.n_curves)
        for i, t in enumerate(thr):
            k = next((k for k, have in enumerate(self._targets) if math.isclose(t, have, rel_tol=0.0, abs_tol=1e-12)),
                     None)
            if k is None:
                requested = ", ".join(f"{x:g}" for x in self._targets) or "none"
                raise InputError(f"threshold {float(t)!r} was not requested from the server (targets: {requested}); "
                                 f"pass targets=[{float(t)!r}] to predict")
            out[i] = self._prob[i, k]
        return float(out[0]) if self._squeeze else out

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a[0].copy() if self._squeeze else a.copy()

    def __repr__(self) -> str:
        lo, hi = int(self.lengths.min()), int(self.lengths.max())
        span = str(lo) if lo == hi else f"{lo}..{hi}"
        return (f"RemoteForecast(model={self.model!r}, n_curves={self.n_curves}, observed_epochs={span}, "
                f"epochs={self.epochs[0]}..{self.epochs[-1]}, direction={self.direction!r}, bounds={self.bounds!r})")


class ForecastClient:
    """Forecasts from an ``lcpfn serve`` server at ``url``.

    Args:
        url: the server's base URL, e.g. ``"http://127.0.0.1:8000"``.
        token: the bearer token, if the server has one; default ``$LCPFN_API_TOKEN``.
        timeout: seconds to wait for an answer.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InputError(f"url must start with http:// or https://, but got {url!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise InputError(f"timeout must be a positive number of seconds, but got {timeout!r}")
        self.url = url.rstrip("/")
        self.token = token if token is not None else (os.environ.get(_TOKEN_ENV) or None)
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"ForecastClient({self.url!r}, token={'***' if self.token else None})"

    def predict(
        self,
        curves,
        *,
        max_epochs: int,
        direction: Literal["maximize", "minimize"] = "maximize",
        bounds: Any = "auto",
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        targets: Sequence[float] = (),
        model: str | None = None,
    ) -> RemoteForecast:
        """The server's forecast of ``curves``: what :meth:`lcpfn.LCPFN.predict` returns for them,
        held as the requested ``quantiles`` (the median always), the mean and P(beat each of
        ``targets``) at ``max_epochs``. ``curves``, ``max_epochs``, ``direction`` and ``bounds`` as
        in ``predict``; ``model``: a served model's name (default: the server's first)."""
        arr, lengths, squeeze = check_curves(curves, max_epochs=max_epochs)
        direction = check_direction(direction)
        if not (isinstance(bounds, str) and bounds == "auto"):
            checked = check_bounds(bounds)
            bounds = None if checked is None else list(checked)
        qs = _numbers(quantiles, "quantiles", probabilities=True)
        ts = _numbers(targets, "targets")
        body = {
            "curves": [arr[i, : int(t)].tolist() for i, t in enumerate(lengths)],
            "max_epochs": int(max_epochs), "direction": direction, "bounds": bounds,
            "quantiles": qs, "targets": ts,
        }
        if model is not None:
            body["model"] = str(model)
        return RemoteForecast(self._call("POST", "/v1/forecast", body), squeeze=squeeze)

    def models(self) -> list[dict[str, Any]]:
        """The served models: ``[{"name", "default", "native_length", "description"}, ...]``."""
        return self._call("GET", "/v1/models")["models"]

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: status, version, models and counters."""
        return self._call("GET", "/healthz")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if 400 <= exc.code < 500:
                raise InputError(detail) from None
            raise ForecastServerError(f"the lcpfn server at {self.url} failed ({exc.code}): {detail}",
                                      status=exc.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ForecastServerError(f"cannot reach the lcpfn server at {self.url}: {reason}") from None


def _numbers(values: Sequence[float], name: str, *, probabilities: bool = False) -> list[float]:
    """``values`` as floats, each finite (in (0, 1) for ``probabilities``), worded as the server words it."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of numbers, but got {values!r}") from None
    for i, v in enumerate(out):
        if probabilities and not 0.0 < v < 1.0:
            raise InputError(f"{name}[{i}] must be a probability in (0, 1), but got {v!r}")
        if not math.isfinite(v):
            raise InputError(f"{name}[{i}] must be a finite number, but got {v!r}")
    return out


def _detail(exc: urllib.error.HTTPError) -> str:
    """The server's error message (its JSON ``detail``), or the HTTP reason."""
    try:
        payload = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        payload = {}
    detail = payload.get("detail") if isinstance(payload, dict) else None
    return str(detail) if detail else f"HTTP {exc.code} {exc.reason}"
