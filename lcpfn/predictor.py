"""The forecasting API: ``LCPFN.from_pretrained(...).predict(curves, max_epochs=...)``."""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lcpfn.bar_distribution import BarDistribution
from lcpfn.checkpoint import load_model
from lcpfn.errors import InputError, UnknownModelError
from lcpfn.forecast import Forecast, Predictor
from lcpfn.model import PFN
from lcpfn.normalization import BoundsArg, Direction
from lcpfn.validation import CurveBatch

Reading = Literal["prefix", "stretch"]

log = logging.getLogger(__name__)


def shipped_models() -> list[str]:
    """Names accepted by :meth:`LCPFN.from_pretrained` besides directories."""
    root = importlib.resources.files("lcpfn.models")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())


def _resolve(name_or_path: str | Path) -> tuple[str, Path]:
    name = str(name_or_path)
    root = importlib.resources.files("lcpfn.models")  # a shipped model is models/<name>/
    if "/" not in name and "\\" not in name and (root / name / "config.json").is_file():
        with importlib.resources.as_file(root / name) as path:
            return name, Path(path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.name, path
    raise UnknownModelError(
        f"{name!r} is neither a shipped model ({', '.join(shipped_models()) or 'none installed'}) "
        "nor an existing checkpoint directory"
    )


class BarForecast(Forecast):
    """A forecast whose model-space marginals are bar distributions (one per future epoch)."""

    def __init__(self, *, logits: torch.Tensor, bar: BarDistribution, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.logits = logits  # (n, H, K), float32 on CPU
        self.bar = bar
        self._p: torch.Tensor | None = None
        self._cum: torch.Tensor | None = None

    def _probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bin probabilities and their cumsum ``(n, H, K)``, computed once per forecast."""
        if self._p is None or self._cum is None:
            self._p = self.bar.probs(self.logits)
            self._cum = torch.cumsum(self._p, dim=-1)
        return self._p, self._cum

    def _z_quantile(self, p: float) -> np.ndarray:
        probs, cum = self._probs()
        return self.bar.icdf_probs(probs, p, cum).numpy()

    def _expand(self, z: np.ndarray, h: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        zt = torch.from_numpy(np.ascontiguousarray(z))
        if h is None:
            return self.logits, zt
        lg = self.logits[:, h : h + 1, :]  # (n, 1, K)
        return lg.expand(-1, zt.shape[1], -1), zt

    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        zt = torch.from_numpy(np.ascontiguousarray(z))
        probs, cum = self._probs()
        if h is not None:  # one epoch, G values: broadcast that epoch's bins over the grid
            g = zt.shape[1]
            probs, cum = (t[:, h : h + 1, :].expand(-1, g, -1) for t in (probs, cum))
        return self.bar.cdf_probs(probs, zt, cum).numpy()

    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        lg, zt = self._expand(z, h)
        return self.bar.log_prob(lg, zt.double()).double().numpy()

    def _z_mean(self) -> np.ndarray:
        return self.bar.mean_probs(self._probs()[0]).numpy()


class LCPFN(Predictor):
    """A trained LC-PFN: forecasts the rest of learning curves from their first epochs.

    Build one with :meth:`from_pretrained`. ``predict`` runs many curves in one vectorised
    forward pass and returns a :class:`~lcpfn.forecast.Forecast`.
    """

    def __init__(self, model: PFN, bar: BarDistribution, config: dict[str, Any], *, name: str = "model",
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.bar = bar.to(self.device)
        self._bar_cpu = BarDistribution(bar.borders.detach().cpu())
        self.config = config
        self.name = name
        self.normalization = config.get("normalization", "unit")
        # the run length (epochs) the model was trained on: its training budget if it had one
        # (``lcpfn train --budget``), else its ``seq_len``
        budget = config.get("budget")
        self.native_length = int(budget) if budget is not None else int(model.config.seq_len)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "default", *, device: str | torch.device = "cpu") -> LCPFN:
        """Load a shipped model by name (``"default"``, ``"reference"``) or a checkpoint directory.

        Offline: shipped weights are package data. Raises :class:`~lcpfn.errors.UnknownModelError`
        for an unknown name and :class:`~lcpfn.errors.CheckpointError` for a broken directory.
        """
        name, path = _resolve(name_or_path)
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise InputError(f"device must be like 'cpu' or 'cuda', but got {device!r}") from None
        model, bar, config = load_model(path, device=dev)
        return cls(model, bar, config, name=name, device=dev)

    def __repr__(self) -> str:
        c = self.model.config
        return (
            f"LCPFN(name={self.name!r}, native_length={self.native_length}, layers={c.n_layers}, "
            f"d_model={c.d_model})"
        )

    def predict(
        self,
        curves,
        *,
        max_epochs: int,
        direction: Direction = "maximize",
        bounds: BoundsArg = "auto",
        batch_size: int = 512,
        reading: Reading = "prefix",
    ) -> Forecast:
        """Forecast epochs ``T+1 .. max_epochs`` of curves observed for epochs ``1 .. T``.

        Args:
            curves: one curve ``(T,)``; curves of one length ``(n, T)``; or curves of different
                lengths: a list of 1-D arrays, a 2-D array padded with NaN after each curve's
                end, or a pandas DataFrame with one run per column. Each curve needs at least
                one value, all finite, and fewer than ``max_epochs``. Curves of different
                lengths come back as one forecast over epochs ``min(T)+1 .. max_epochs``, NaN
                where a curve has already observed the epoch (``forecast.lengths``).
            max_epochs: the last epoch to forecast (the run's total length).
            direction: ``"minimize"`` for losses/errors; the model sees the values flipped,
                quantiles and densities come back in the caller's units.
            bounds: how values map into the model's space (higher is better, mostly ``[0, 1]``);
                the one used is reported as ``forecast.bounds``:

                * ``"auto"`` (default): ``(0, 1)`` if every value lies in ``[0, 1]``; else
                  ``(0, None)`` for a minimised metric that is never negative (a loss); else
                  ``"infer"``.
                * ``(low, high)``: the metric's known range, mapped onto ``[0, 1]`` (flipped for
                  ``"minimize"``).
                * ``(low, None)`` or ``(None, high)``: one side known, e.g. ``(0, None)`` for a
                  loss. The known *good* bound (``high`` when maximising, ``low`` when
                  minimising) maps to 1 and the prefix's worst value to 0.2 (for a loss:
                  ``z = 1 - y / (1.25 max(prefix))``); a known *bad* bound maps to 0 and the
                  prefix's best value to 0.8. Observed values beyond a known bound raise.
                * ``"infer"`` or ``(None, None)``: nothing known; the prefix's worst value maps to
                  0.3 and its best to 0.5, leaving room for 2.5 more prefix spans of improvement.
                * ``None``: values are used as they are (``1 - y`` for ``"minimize"``) and must
                  lie in about ``[0, 1]``.

                The partial and inferred maps are affine per curve and computed from that curve's
                observed values only; constant or one-point prefixes get a span of at least
                ``0.1 max|y|`` (1 for all zeros). Exact formulas:
                :func:`lcpfn.normalization.infer_transform`; measurements:
                ``docs/normalization.md``. Quantiles and densities always come back in the
                caller's units (densities include the map's Jacobian ``|scale|``).
            batch_size: curves per forward pass (memory, not results).
            reading: how a run shorter than the model's native length ``L`` is read.
                ``"prefix"`` (default): epoch ``t`` is model epoch ``t``, the run is the start
                of an ``L``-epoch curve. ``"stretch"``: epoch ``t`` is model epoch
                ``t * L / max_epochs``, so the run's last epoch is the prior's last, where its
                budget-tied components (a late rise) end. Runs of ``L`` epochs or more are read
                the same either way.

        Horizons longer than the model's native length ``L`` are handled by subsampling: epoch
        ``t`` is shown to the model as ``t * L / max_epochs`` and about ``L * T / max_epochs``
        evenly spaced observed epochs are used as context (never more than ``L - 1``), so the
        run is read as an ``L``-epoch curve at a coarser resolution. Every epoch up to
        ``max_epochs`` is forecast; nothing is truncated.
        """
        if self.normalization != "unit":
            raise InputError(
                f"this lcpfn does not know the model's normalization {self.normalization!r}; upgrade lcpfn"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, but got {batch_size!r}")
        if reading not in ("prefix", "stretch"):
            raise InputError(f"reading must be 'prefix' or 'stretch', but got {reading!r}")
        return self._predict(
            curves, max_epochs=max_epochs, direction=direction, bounds=bounds,
            forecast=lambda batch: self._run(batch, batch_size=batch_size, reading=reading),
        )

    def _forecast(self, batch: CurveBatch) -> Forecast:
        return self._run(batch, batch_size=512, reading="prefix")

    @torch.no_grad()
    def _run(self, batch: CurveBatch, *, batch_size: int, reading: Reading) -> BarForecast:
        z = batch.z
        n, t_obs = z.shape
        max_epochs = batch.max_epochs
        L = self.native_length
        if reading == "stretch" and max_epochs < L:
            scale = L / max_epochs  # the run's last epoch is the model's last
            ctx_idx = np.arange(t_obs)
        else:
            scale = min(1.0, L / max_epochs)  # model epochs per real epoch
            ctx_idx = _context_indices(t_obs, scale, L)
        ctx_t = torch.as_tensor((ctx_idx + 1) * scale, dtype=torch.float32)
        qry_t = torch.arange(t_obs + 1, max_epochs + 1, dtype=torch.float32) * scale
        ctx_y = torch.as_tensor(z[:, ctx_idx], dtype=torch.float32)
        chunks = []
        for start in range(0, n, batch_size):
            yb = ctx_y[start : start + batch_size].to(self.device)
            b = yb.shape[0]
            logits = self.model(ctx_t.to(self.device).expand(b, -1), yb, qry_t.to(self.device).expand(b, -1))
            chunks.append(logits.float().cpu())
        return BarForecast(
            logits=torch.cat(chunks),  # (n, H, K)
            bar=self._bar_cpu,
            epochs=np.arange(t_obs + 1, max_epochs + 1),
            observed=batch.y,
            transform=batch.transform,
            direction=batch.direction,
            squeeze=batch.squeeze,
            bounds=batch.bounds,
        )


def _context_indices(t_obs: int, scale: float, native_length: int) -> np.ndarray:
    """Indices (0-based) of the observed epochs used as context.

    At native resolution (``scale == 1``) all of them. Otherwise the observed epoch nearest to
    each model epoch ``1, 2, ...`` that the prefix covers, so context points keep the unit
    spacing the model was trained on.
    """
    if scale >= 1.0:
        return np.arange(t_obs)
    n_ctx = max(1, min(native_length - 1, int(np.floor(t_obs * scale))))
    idx = np.rint(np.arange(1, n_ctx + 1) / scale).astype(np.int64) - 1
    return np.unique(np.clip(idx, 0, t_obs - 1))
