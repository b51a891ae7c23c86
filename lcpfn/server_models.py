"""The lcpfn server's JSON (pydantic models, hence its OpenAPI schema), its caps and the request
checks beyond ``predict``'s. Part of :mod:`lcpfn.server`, which re-exports the public names."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from lcpfn import limits
from lcpfn.errors import InputError, MissingDependencyError

try:
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(exc.name or "pydantic", "serve", "the lcpfn server (lcpfn.server)") from exc

TOKEN_ENV = "LCPFN_API_TOKEN"
"""The environment variable holding the bearer token (auth is off when it is unset or empty)."""

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Quantiles a request gets when it names none."""


@dataclass(frozen=True)
class ServerConfig:
    """The server's caps and batching options (the per-request caps are checked before any work).

    Attributes:
        max_body_bytes: largest request body (413 beyond it).
        max_curves: most curves in one request.
        max_observed: most observed values of one curve.
        max_epochs: largest ``max_epochs`` of a request.
        max_marginals: most marginals (curves times the epochs each forecasts) one request asks
            for: bounds the forecast's memory and the response's size (about 150 bytes each).
        max_quantiles, max_targets: most quantiles and targets in one request.
        max_wait_ms: how long a batch waits for more requests while the load is concurrent (the
            last batch held several requests); a lone client never waits.
        max_batch_curves, max_batch_marginals: most curves and marginals in one ``predict`` call
            (a request larger than that runs alone). The default marginals are what the output
            head decodes in one chunk for 1000 bins (:data:`lcpfn.bar_forecast.DECODE_BINS`), so
            all the quantiles of a batch share one run of the head.
        max_pending_curves: most curves waiting for a batch; beyond it a request gets 503 (retry).
    """

    max_body_bytes: int = 8 * 2**20
    max_curves: int = 1000
    max_observed: int = 10_000
    max_epochs: int = 10_000
    max_marginals: int = 500_000
    max_quantiles: int = 32
    max_targets: int = 32
    max_wait_ms: float = 2.0
    max_batch_curves: int = 256
    max_batch_marginals: int = 4096
    max_pending_curves: int = 65_536

    def __post_init__(self) -> None:
        caps = {"max_curves": limits.MAX_CURVES, "max_observed": limits.MAX_OBSERVED,
                "max_epochs": limits.MAX_EPOCHS, "max_marginals": limits.MAX_MARGINALS}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "max_wait_ms":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1000:
                    raise InputError(f"max_wait_ms must be a number of milliseconds in [0, 1000], but got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{f.name} must be a positive integer, but got {v!r}")
            elif f.name in caps and v > caps[f.name]:
                raise InputError(f"{f.name} must be at most {caps[f.name]} (lcpfn.limits), but got {v}")
        if self.max_epochs < 2:
            raise InputError(f"max_epochs must be at least 2, but got {self.max_epochs}")
        if self.max_quantiles < len(DEFAULT_QUANTILES):
            raise InputError(f"max_quantiles must be at least {len(DEFAULT_QUANTILES)} (the default quantiles), "
                             f"but got {self.max_quantiles}")


class ForecastModel(Protocol):
    """What the server forecasts with: :class:`lcpfn.LCPFN` or any :class:`lcpfn.Predictor`."""

    def predict(self, curves: Any, *, max_epochs: int, direction: Any = ..., bounds: Any = ...) -> Any: ...


# --- the API's JSON, as pydantic models (the OpenAPI schema) -------------------------------------

BoundsIn = Literal["auto", "infer"] | tuple[float | None, float | None] | None


class ForecastRequest(BaseModel):
    """Curves to forecast and the options of ``LCPFN.predict``."""

    model_config = ConfigDict(extra="forbid")

    curves: list[list[float]] = Field(
        description="One or more curves, each the observed values of epochs 1..T (lengths may differ; "
        "every value finite, though NaN after a curve's last value is padding, as in predict; T < max_epochs). "
        "Per request at most ServerConfig.max_curves curves "
        "(default 1000) of at most max_observed values (default 10000).",
        examples=[[[0.39, 0.52, 0.61, 0.65, 0.68], [0.30, 0.41, 0.47]]],
    )
    max_epochs: int = Field(
        description="The last epoch to forecast (the run's total length): 2..ServerConfig.max_epochs (default 10000).",
        examples=[50],
    )
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="'minimize' for a loss or an error.")
    bounds: BoundsIn = Field(
        default="auto",
        description="The metric's range: 'auto' (default: [0, 1] for values in [0, 1], [0, null] for a "
        "non-negative minimised metric, else 'infer'), 'infer', [low, high] with null for a side that is not "
        "known, or null (values used as they are). The one used is each forecast's 'bounds'.",
    )
    quantiles: list[float] = Field(
        default_factory=lambda: list(DEFAULT_QUANTILES),
        description="Probabilities in (0, 1) whose quantiles to return for every forecast epoch.",
    )
    targets: list[float] = Field(
        default_factory=list,
        description="Values to beat: P(the value at max_epochs is better than each, in the direction) per curve.",
    )
    model: str | None = Field(default=None, description="A served model's name (GET /v1/models); default: the first.")


class CurveForecast(BaseModel):
    """The forecast of one curve, in the caller's units."""

    observed_epochs: int = Field(description="T, the number of observed epochs.")
    epochs: list[int] = Field(description="The forecast epochs T+1..max_epochs.")
    median: list[float]
    mean: list[float]
    quantiles: list[list[float]] = Field(description="One row per requested quantile, in the request's order.")
    prob_improve: list[float] = Field(description="P(value at max_epochs better than target), one per target.")
    bounds: tuple[float | None, float | None] = Field(description="The bounds used (null: inferred from the curve).")


class ForecastResponse(BaseModel):
    model: str
    max_epochs: int
    direction: Literal["maximize", "minimize"]
    quantiles: list[float]
    targets: list[float]
    forecasts: list[CurveForecast]


class ModelInfo(BaseModel):
    name: str
    default: bool
    native_length: int | None = Field(description="The run length (epochs) the model reads natively.")
    description: str


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class HealthResponse(BaseModel):
    status: Literal["ok", "starting"]
    version: str
    models: list[str]
    requests: int = Field(description="Forecast requests answered since start.")
    curves: int = Field(description="Curves forecast since start.")
    forward_passes: int = Field(description="predict calls made (one per batch).")
    pending: int = Field(description="Requests waiting for a batch now.")


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, naming the field (the text predict raises).")
    field: str | None = Field(default=None, description="The request field at fault, if one is.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "a bearer token is needed (LCPFN_API_TOKEN) and was missing or wrong"},
    413: {"model": ErrorBody, "description": "the body is larger than the server accepts"},
    422: {"model": ErrorBody, "description": "a field cannot be forecast as given; 'detail' names it"},
    503: {"model": ErrorBody, "description": "the server is starting, stopping or too busy; retry"},
}


class _APIError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.field, self.headers = status, detail, field, headers


# --- the request checks beyond predict's ---------------------------------------------------------

def _check_request(req: ForecastRequest, config: ServerConfig, models: Mapping[str, ForecastModel],
                   default_model: str) -> str:
    """The server's caps and the fields ``predict`` does not read; returns the model's name."""
    name = default_model if req.model is None else req.model
    if name not in models:
        raise InputError(f"model {name!r} is not served here; the served models are "
                         f"{', '.join(map(repr, models))} (GET /v1/models)")
    n = len(req.curves)
    if n > config.max_curves:
        raise InputError(f"curves holds {n} curves, more than the {config.max_curves} one request may hold: "
                         "split them into several requests")
    for i, c in enumerate(req.curves):
        if len(c) > config.max_observed:
            raise InputError(f"curves: curve {i} has {len(c)} observed values, more than the "
                             f"{config.max_observed} this server accepts")
    if req.max_epochs > config.max_epochs:
        raise InputError(f"max_epochs must be at most {config.max_epochs} on this server, but got {req.max_epochs}")
    marginals = sum(max(0, req.max_epochs - len(c)) for c in req.curves)
    if marginals > config.max_marginals:
        raise InputError(
            f"curves ({n}) times the epochs each forecasts up to max_epochs={req.max_epochs} make {marginals} "
            f"marginals, more than the {config.max_marginals} one request may ask for: send fewer curves per request")
    for what, values, cap in (("quantiles", req.quantiles, config.max_quantiles),
                              ("targets", req.targets, config.max_targets)):
        if len(values) > cap:
            raise InputError(f"{what} holds {len(values)} values, more than the {cap} one request may ask for")
    for i, q in enumerate(req.quantiles):
        if not 0.0 < q < 1.0:  # NaN fails too
            raise InputError(f"quantiles[{i}] must be a probability in (0, 1), but got {q!r}")
    for i, t in enumerate(req.targets):
        if not math.isfinite(t):
            raise InputError(f"targets[{i}] must be a finite number, but got {t!r}")
    return name
