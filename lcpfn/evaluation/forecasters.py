"""Forecasters named by spec strings, and the cache key that identifies each one's weights and code.

A spec is ``[LABEL=]KIND[:ARG][@N]``: ``pfn:NAME_OR_DIR``, ``mcmc``, ``last``, ``pow3``, with
constructor options after a colon (``mcmc:draws=200,chains=2``), an optional label
(``P1=pfn:path/to/ckpt``) and an optional curve cap (``mcmc@5``: the first 5 curves of every
dataset). The cache key hashes the PFN's weights (or the options) and the source of every
``lcpfn`` module the predictor's code reaches, so a new model or changed code is never served
stale numbers.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import lcpfn.forecast
import lcpfn.metrics
import lcpfn.validation
from lcpfn.errors import InputError, LCPFNError
from lcpfn.evaluation.protocol import _check_positive_int

__all__ = ["Forecaster", "build_forecaster", "forecaster_from_predictor"]

CACHE_VERSION = 2
_COMMON_CODE: tuple[ModuleType, ...] = (lcpfn.forecast, lcpfn.validation, lcpfn.metrics)
"""Code every forecaster's numbers go through: the forecast object, input checks and the scores."""
_DEFAULT_CHUNK = {"pfn": 256, "mcmc": 1, "last": 256, "pow3": 16}


@dataclass(frozen=True, eq=False)
class Forecaster:
    """A predictor with a label, a cache key and how to feed it.

    ``predictor`` has ``predict(curves (n, c), *, max_epochs, direction, bounds) -> Forecast``.
    ``key`` identifies its weights and code in the cache; ``max_curves`` caps the curves it is
    evaluated on per dataset (the first ones); ``chunk_size`` curves go into one ``predict`` call
    (and between two cache writes).
    """

    label: str
    predictor: Any
    key: str
    max_curves: int | None = None
    chunk_size: int = 256


_SPEC = re.compile(r"^(?:(?P<label>[^=:@]+)=)?(?P<kind>[A-Za-z0-9_]+)(?::(?P<arg>.*?))?(?:@(?P<cap>\d+))?$")


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _parse_options(arg: str | None, spec: str) -> dict[str, Any]:
    if not arg:
        return {}
    out = {}
    for part in arg.split(","):
        if "=" not in part:
            raise InputError(f"forecaster {spec!r}: options must look like key=value, but got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def build_forecaster(spec: str, *, chunk_size: int | None = None) -> Forecaster:
    """A :class:`Forecaster` from a spec string ``[LABEL=]KIND[:ARG][@N]``.

    * ``pfn:NAME_OR_DIR``: ``LCPFN.from_pretrained(NAME_OR_DIR)`` (``pfn`` alone: the default model);
    * ``mcmc[:key=value,...]``: :class:`lcpfn.mcmc.MCMCPredictor` (``seed=0`` unless given);
    * ``last[:...]``, ``pow3[:...]``: the baselines of :mod:`lcpfn.baselines`;
    * ``@N``: evaluate this forecaster on the first ``N`` curves of each dataset only.
    """
    if not isinstance(spec, str):
        raise InputError(f"a forecaster spec must be a string, but got {spec!r}")
    m = _SPEC.match(spec.strip())
    if m is None:
        raise InputError(f"cannot parse forecaster spec {spec!r}; expected e.g. pfn:reference, mcmc@5, last, pow3")
    kind, arg = m["kind"].lower(), m["arg"]
    cap = int(m["cap"]) if m["cap"] else None
    if cap is not None and cap < 1:
        raise InputError(f"forecaster {spec!r}: the curve cap @N must be at least 1 but got {cap}")
    predictor: lcpfn.forecast.Predictor
    if kind == "pfn":
        from lcpfn.predictor import LCPFN

        name = arg or "default"
        predictor = LCPFN.from_pretrained(name)
        weights = _state_hash(predictor)
        label = m["label"] or f"pfn:{name}"
        ident = f"pfn|{weights}"
    elif kind in ("mcmc", "last", "pow3"):
        opts = _parse_options(arg, spec)
        try:
            if kind == "mcmc":
                from lcpfn.mcmc import MCMCPredictor

                predictor = MCMCPredictor(**{"seed": 0, **opts})
            else:
                from lcpfn.baselines import LastValuePredictor, Pow3FitPredictor

                predictor = (LastValuePredictor if kind == "last" else Pow3FitPredictor)(**opts)
        except TypeError as exc:
            raise InputError(f"forecaster {spec!r}: bad option: {exc}") from None
        label = m["label"] or (kind if not arg else f"{kind}:{arg}")
        ident = f"{kind}|{json.dumps(_jsonable(opts), sort_keys=True)}|{repr(predictor)}"
    else:
        raise InputError(f"unknown forecaster kind {kind!r} in {spec!r}; known: pfn, mcmc, last, pow3")
    key = _code_hash(ident, [*_COMMON_CODE, sys.modules[type(predictor).__module__]])
    size = chunk_size if chunk_size is not None else _DEFAULT_CHUNK[kind]
    _check_positive_int(size, "chunk_size")
    return Forecaster(label=label, predictor=predictor, key=key, max_curves=cap, chunk_size=size)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in d.items()}


def _state_hash(model: Any) -> str:
    """Hash of a PFN's weights, bin borders and config."""
    h = hashlib.sha256()
    h.update(json.dumps(getattr(model, "config", {}), sort_keys=True, default=str).encode())
    for mod in (model.model, model.bar):
        for k, v in sorted(mod.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _code_modules(roots: Iterable[ModuleType]) -> list[ModuleType]:
    """``roots`` and every module of their own package they reach through module-level names
    (imported modules, classes and functions), transitively; sorted by name.

    For :class:`lcpfn.predictor.LCPFN` that is the predictor, the model, the bar distribution,
    the checkpoint loader, the forecast and the input normalisation: whatever a refactor moves
    where, the code that makes the numbers is found by following the imports, not by file name.
    Imports inside functions (optional extras such as PyMC) are not followed.
    """
    seen: dict[str, ModuleType] = {}
    todo = list(roots)
    while todo:
        mod = todo.pop()
        if mod.__name__ in seen:
            continue
        seen[mod.__name__] = mod
        package = mod.__name__.split(".")[0]
        for value in list(vars(mod).values()):
            name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            if not isinstance(name, str) or name in seen or name.split(".")[0] != package:
                continue
            target = sys.modules.get(name)
            # a package's __init__ only re-exports its modules: following it would hash everything
            if target is not None and not hasattr(target, "__path__"):
                todo.append(target)
    return [seen[k] for k in sorted(seen)]


def _code_hash(ident: str, roots: Iterable[ModuleType]) -> str:
    """The cache key: ``ident`` and the source of every module :func:`_code_modules` finds."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{ident}".encode())
    for mod in _code_modules(roots):
        try:
            path = inspect.getsourcefile(mod)
        except TypeError:  # built in, or made at run time
            path = None
        if path is None or not Path(path).is_file():
            raise LCPFNError(f"cannot key the result cache: no source file for module {mod.__name__!r}")
        h.update(mod.__name__.encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:20]


def forecaster_from_predictor(
    label: str, predictor: Any, *, key: str | None = None, max_curves: int | None = None, chunk_size: int = 256
) -> Forecaster:
    """Wrap any object with the ``predict`` signature. Without ``key`` the cache key is built from
    ``label``, ``repr(predictor)`` and the source file of its class: give a key that changes
    whenever its forecasts would."""
    if not callable(getattr(predictor, "predict", None)):
        raise InputError(f"forecaster {label!r} has no predict method")
    if key is None:
        try:
            src = Path(inspect.getfile(type(predictor))).read_bytes()
        except (TypeError, OSError):
            src = b""
        key = hashlib.sha256(f"{label}|{predictor!r}|".encode() + src).hexdigest()[:20]
        key = _code_hash(key, _COMMON_CODE)
    _check_positive_int(chunk_size, "chunk_size")
    return Forecaster(label=label, predictor=predictor, key=key, max_curves=max_curves, chunk_size=chunk_size)
