"""An HTTP forecast server: ``lcpfn serve`` (FastAPI + uvicorn; ``pip install 'lcpfn[serve]'``).

``POST /v1/forecast`` takes curves and the options of :meth:`lcpfn.LCPFN.predict` as JSON and
returns, per curve, the forecast epochs, median, requested quantiles, mean, the probability of
beating each requested target at the last epoch, and the bounds used. ``GET /v1/models`` lists
the served models, ``GET /healthz`` answers without auth; the OpenAPI schema is at
``/openapi.json`` and its pages at ``/docs``.

* **Validation.** A request is checked by the code ``predict`` checks with
  (:func:`lcpfn.validation.prepare_curves`), so an error is the same text ``predict`` raises, as a
  422 JSON body ``{"detail": ..., "field": ...}`` that names the field. The server's own caps
  (:class:`ServerConfig`: body size 413, curves, observed epochs, ``max_epochs``, marginals,
  quantiles and targets per request 422) are checked before any work they bound.
* **Auth.** With a token (``create_app(token=...)`` or the ``LCPFN_API_TOKEN`` environment
  variable) every ``/v1/`` request needs ``Authorization: Bearer <token>`` (401 otherwise);
  ``/healthz`` and the docs stay open.
* **Micro-batching.** Requests are queued; one task takes what is queued (waiting at most
  ``max_wait_ms`` for more while the load is concurrent), groups requests that can share a
  ``predict`` call (same model, ``max_epochs``, direction and resolved bounds; lengths may differ)
  into batches of at most ``max_batch_curves`` curves and ``max_batch_marginals`` marginals, runs
  each batch's ``predict`` and its quantiles in one worker thread, and splits the results. While a
  batch runs, new requests queue up for the next one, so batches grow with the load. A request's
  forecast is the one ``predict`` gives for its curves alone (``bounds="auto"`` is resolved per
  request before batching; each curve's map into model space depends on its own values only).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import reprlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from lcpfn import __version__, limits
from lcpfn.errors import InputError, LCPFNError, MissingDependencyError
from lcpfn.validation import prepare_curves

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(exc.name or "fastapi", "serve", "the lcpfn server (lcpfn.server)") from exc

# the server is split into lcpfn.server_models (JSON, caps, checks), lcpfn.server_batching and
# lcpfn.server_runner; the names they held here before stay importable from lcpfn.server
from lcpfn.server_batching import BatchStats as BatchStats
from lcpfn.server_batching import MicroBatcher, _Job
from lcpfn.server_batching import _batches as _batches
from lcpfn.server_batching import _floats as _floats
from lcpfn.server_models import (
    _ERRORS,
    DEFAULT_QUANTILES,
    TOKEN_ENV,
    CurveForecast,
    ForecastModel,
    ForecastRequest,
    ForecastResponse,
    HealthResponse,
    ModelInfo,
    ModelsResponse,
    ServerConfig,
    _APIError,
    _check_request,
)
from lcpfn.server_models import BoundsIn as BoundsIn
from lcpfn.server_models import ErrorBody as ErrorBody
from lcpfn.server_runner import ServerThread
from lcpfn.server_runner import bind as bind
from lcpfn.server_runner import url_of as url_of

__all__ = [
    "ServerConfig", "create_app", "ServerThread", "ForecastRequest", "ForecastResponse", "CurveForecast",
    "DEFAULT_QUANTILES", "TOKEN_ENV",
]

log = logging.getLogger(__name__)


_FIELDS = tuple(ForecastRequest.model_fields)
_FIELD_WORDS = {"curve": "curves", "curves": "curves", **{f: f for f in _FIELDS}}
_FIRST_FIELD = re.compile(r"\b(" + "|".join(sorted(_FIELD_WORDS, key=len, reverse=True)) + r")\b")
_EXPECTED = {
    "curves": "a list of curves, each a list of numbers (e.g. [[0.4, 0.5, 0.55]])",
    "max_epochs": "an integer",
    "direction": "'maximize' or 'minimize'",
    "bounds": "'auto', 'infer', null or a pair [low, high] of numbers (null for a side that is not known)",
    "quantiles": "a list of probabilities in (0, 1)",
    "targets": "a list of numbers",
    "model": "the name of a served model (GET /v1/models)",
}
_short = reprlib.Repr()
_short.maxlist = _short.maxdict = 4
_short.maxstring = _short.maxother = 60


def _field_of(message: str) -> str | None:
    """The request field an error message names first (``curve 3`` is ``curves``)."""
    m = _FIRST_FIELD.search(message)
    return _FIELD_WORDS[m.group(1)] if m else None


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    """A pydantic error as ``(message, field)``, worded like ``predict``'s (the first error only)."""
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if len(loc) < 2 or loc[0] != "body" or not isinstance(loc[1], str):
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "it is not valid JSON")
            return f"body must be a JSON object (a forecast request), but it is not valid JSON: {reason}", "body"
        if kind == "missing":
            return "body must be a JSON object with the fields curves and max_epochs, but it is empty", "body"
        got = _short.repr(err.get("input"))
        return f"body must be a JSON object with the fields curves and max_epochs, but got {got}", "body"
    name = loc[1]
    path = name + "".join(f"[{p}]" for p in loc[2:] if isinstance(p, int))
    if kind == "missing":
        return f"{name} is required: a forecast request needs curves and max_epochs", name
    if kind == "extra_forbidden":
        return f"{name} is not a field of a forecast request; its fields are {', '.join(_FIELDS)}", name
    got = _short.repr(err.get("input"))
    where = f" at {path}" if path != name else ""
    return f"{name} must be {_EXPECTED.get(name, 'valid')}, but got {got}{where} ({err.get('msg', kind)})", name


def _error(status: int, detail: str, field: str | None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


# --- auth and body size, before anything reads the body ------------------------------------------

class _Guard:
    """ASGI middleware: the bearer token for ``/v1/`` (401), then the body size (413), read in
    full before the app sees it (so a body sent in chunks is bounded too)."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope["path"].startswith("/v1/"):
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
                await _send(send, 401, {
                    "detail": "authorization must be 'Bearer <token>' with the server's token "
                    f"(the {TOKEN_ENV} it was started with)", "field": "authorization"},
                    [(b"www-authenticate", b'Bearer realm="lcpfn"')])
                return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_big = {"detail": f"body must be at most {self.max_body_bytes} bytes on this server: send fewer "
                   "curves per request", "field": "body"}
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_body_bytes:
            await _send(send, 413, too_big)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _send(send, 413, too_big)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send(send: Callable, status: int, content: dict[str, Any],
                headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


# --- the app -------------------------------------------------------------------------------------

def create_app(
    models: Mapping[str, ForecastModel] | Sequence[str] = ("default",),
    *,
    config: ServerConfig | None = None,
    token: str | None = None,
    device: str = "cpu",
) -> FastAPI:
    """The FastAPI app of ``lcpfn serve``.

    Args:
        models: the models to serve, by name: loaded forecasters (``{"default": LCPFN(...)}``,
            any :class:`lcpfn.Predictor`), or names and checkpoint directories that
            :meth:`lcpfn.LCPFN.from_pretrained` loads when the app starts. The first is the default.
        config: caps and batching (:class:`ServerConfig`).
        token: the bearer token ``/v1/`` requests must carry; default: ``$LCPFN_API_TOKEN``
            (no auth when neither is set).
        device: where names in ``models`` are loaded.
    """
    config = config or ServerConfig()
    token = token or os.environ.get(TOKEN_ENV) or None
    if isinstance(models, Mapping):
        loaded: dict[str, ForecastModel] = dict(models)
        to_load: list[str] = []
    else:
        loaded, to_load = {}, [str(m) for m in models]
    names = list(loaded) or to_load
    if not names:
        raise InputError("models must name at least one model to serve")
    if len(set(names)) != len(names):
        raise InputError(f"models must not name a model twice, but got {names}")
    served: dict[str, ForecastModel] = {}
    batcher = MicroBatcher(served, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if to_load:
            from lcpfn.predictor import LCPFN

            for name in to_load:
                served[name] = await asyncio.to_thread(LCPFN.from_pretrained, name, device=device)
        else:
            served.update(loaded)
        batcher.start()
        log.info("serving %s", ", ".join(served))
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="lcpfn", version=__version__, lifespan=lifespan,
        description="Bayesian learning-curve extrapolation with Prior-data Fitted Networks: the forecasts of "
        "LCPFN.predict over HTTP. Errors are JSON {detail, field} bodies whose detail is the text predict raises.",
    )
    app.state.config = config
    app.state.batcher = batcher
    app.state.models = served
    app.add_middleware(_Guard, token=token, max_body_bytes=config.max_body_bytes)
    # declared for the schema and the docs' Authorize button; _Guard enforces it
    security = [] if token is None else [HTTPBearer(auto_error=False, description=f"the server's {TOKEN_ENV}")]

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, name = _validation_message(exc)
        return _error(422, message, name)

    @app.exception_handler(LCPFNError)
    async def _on_input(request: Request, exc: LCPFNError) -> JSONResponse:
        return _error(422, str(exc), _field_of(str(exc)))

    @app.exception_handler(_APIError)
    async def _on_api(request: Request, exc: _APIError) -> JSONResponse:
        return _error(exc.status, exc.detail, exc.field, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's words
            # a body json cannot read (not UTF-8, nested too deeply): a 422 like any other bad body
            return _error(422, "body must be a JSON object (a forecast request), but it could not be parsed "
                          "(not UTF-8, or nested too deeply)", "body")
        return _error(exc.status_code, detail, "body" if exc.status_code == 400 else None, exc.headers)

    deps = [Depends(s) for s in security]
    _document_limits(app, config)

    @app.post("/v1/forecast", response_model=ForecastResponse, responses=_ERRORS, dependencies=deps,
              summary="Forecast the rest of learning curves")
    async def forecast(req: ForecastRequest) -> JSONResponse:
        name = _check_request(req, config, served, names[0])
        # predict's own checks and its map's bounds, for this request's curves alone
        curves = [np.asarray(c, dtype=np.float64) for c in req.curves]
        batch = prepare_curves(curves, max_epochs=req.max_epochs, direction=req.direction, bounds=req.bounds)
        job = _Job(
            model=name, curves=[c[: int(t)] for c, t in zip(curves, batch.lengths)], max_epochs=req.max_epochs,
            direction=req.direction, bounds=None if req.bounds is None else batch.bounds,
            quantiles=tuple(req.quantiles), targets=tuple(req.targets),
            future=asyncio.get_running_loop().create_future(),
        )
        answers = await batcher.submit(job)
        return JSONResponse({
            "model": name, "max_epochs": req.max_epochs, "direction": req.direction,
            "quantiles": list(req.quantiles), "targets": list(req.targets), "forecasts": answers,
        })

    @app.get("/v1/models", response_model=ModelsResponse, responses={401: _ERRORS[401]}, dependencies=deps,
             summary="The served models")
    async def list_models() -> ModelsResponse:
        return ModelsResponse(models=[
            ModelInfo(name=n, default=n == names[0], native_length=_int_or_none(getattr(m, "native_length", None)),
                      description=repr(m))
            for n, m in served.items()
        ])

    @app.get("/healthz", response_model=HealthResponse, summary="Liveness and counters (no auth)")
    async def healthz() -> HealthResponse:
        s = batcher.stats
        return HealthResponse(
            status="ok" if served else "starting", version=__version__, models=list(served),
            requests=s.requests, curves=s.curves, forward_passes=s.forward_passes, pending=batcher.pending,
        )

    return app


def _document_limits(app: FastAPI, config: ServerConfig) -> None:
    """State the caps this server checks in its OpenAPI schema (``predict`` and the server check
    them, with their own words; pydantic does not)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        props = schema["components"]["schemas"]["ForecastRequest"]["properties"]
        number = {"type": "number", "minimum": -limits.MAX_ABS_VALUE, "maximum": limits.MAX_ABS_VALUE}
        props["curves"].update(minItems=1, maxItems=config.max_curves, items={
            "type": "array", "minItems": 1, "maxItems": config.max_observed, "items": number})
        props["max_epochs"].update(minimum=2, maximum=config.max_epochs)
        props["quantiles"].update(maxItems=config.max_quantiles, items={
            "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1})
        props["targets"].update(maxItems=config.max_targets)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None

