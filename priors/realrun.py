"""A prior of what real training runs do, wrapped around another prior (``extended`` by default).

The base prior (any registered one: :class:`~lcpfn.priors.ExtendedPrior` unless ``base`` says
otherwise, with ``base_settings``) draws ``L`` curves in model space ("higher is better", values
mostly in ``[0, 1]``) at epochs ``1..L``. Its noiseless curve ``b`` is read as a function of training
progress, ``b(j / L)`` at grid point ``j``, of a run trained at a constant learning rate. This
prior adds, per curve and independently, with the probabilities of its fields:

1. **Evaluation points** (one kind per curve). A run's budget ``B`` is where its last evaluation
   is: every curve's last point is at progress ``s_L = 1`` and its epochs are ``L s_i`` (floats in
   ``(0, L]``, strictly increasing; the budget is ``L`` epochs). Besides the regular ``s_i = i / L``:

   * ``offgrid_end`` (``p_offgrid_end``): a regular grid whose last gap is a fraction ``phi``
     (uniform in ``offgrid_last_gap_range``) of the others, ``s_i = i / (L - 1 + phi)`` for
     ``i < L``: evaluations every ``k`` steps plus one at the final step.
   * ``log`` (``p_log_spaced``): ``s_i = s_1^((L - i) / (L - 1))`` with the first position
     ``s_1`` log-uniform in ``log_first_range``: log-spaced checkpoints.
   * ``irregular`` (``p_irregular``): ``s_i = (1 - lam) i / L + lam v_i`` with ``v_1 < ... <
     v_(L-1)`` sorted uniforms, ``v_L = 1``, and ``lam`` uniform in ``irregular_mix_range``: from
     jittered to random positions.
   * ``dense_end`` (``p_dense_end``): ``n_d = round(q L)`` points (``q`` uniform in
     ``dense_end_share_range``) evenly in the last ``delta`` of the budget (log-uniform in
     ``dense_end_span_range``), the others evenly before it.

   The noiseless curve at progress ``w`` is ``b`` interpolated linearly between grid points;
   before the first grid point (``w < 1 / L``) it is extended log-linearly,
   ``b_1 + (b_2 - b_1) log2(w L)``, clipped to ``[min(b_1, u), b_1]`` (``u``: the drawn chance
   level, 3.): early checkpoints of a log-spaced run sit near chance.

2. **Learning-rate schedule** tied to the budget. The learning rate relative to its peak is
   ``eta(s) = min(s / s_w, d(s))``: a linear warm-up to ``s_w`` (``p_warmup``; ``s_w``
   log-uniform in ``warmup_range``; 0 without) and a decay ``d`` (``p_schedule``; otherwise
   ``d = 1``) drawn with ``schedule_weights`` among, with ``x = (s - s_w) / (1 - s_w)`` and the
   final ratio ``m`` uniform in ``min_lr_range``:

   * ``cosine``: ``d = m + (1 - m)(1 + cos(pi x)) / 2``;
   * ``linear``: ``d = 1 - (1 - m) x``;
   * ``step``: ``d = gamma^k`` after the ``k``-th of 1-3 (``step_count_range``) milestones at
     sorted positions uniform in ``step_position_range`` (at or after ``s_w``), ``gamma``
     log-uniform in ``step_factor_range``;
   * ``wsd`` (warm-up, stable, decay): ``d = 1`` until ``a = max(1 - delta, s_w)``, then linear to
     ``m`` at ``s = 1``, the cool-down ``delta`` uniform in ``cooldown_range``.

   It acts twice. (i) Progress runs with the learning-rate area: the curve at ``s`` is the base
   curve at ``w(s) = S(s) / S(1)``, ``S(s) = int_0^s eta`` (closed forms; a warm-up starts slowly,
   a decay slows progress towards the end). (ii) Annealing pays: a fraction ``g`` (log-uniform in
   ``anneal_gain_range``) of the headroom is removed as the rate falls,
   ``f = b(w) + g A(s) H(s) (1 - b(w))_+``, with ``A = 1 - eta`` after the warm-up (0 during it)
   for the continuous decays and ``A = sum_k Delta_k (1 - exp(-(s - s_k)_+ / tau))`` for steps
   (``Delta_k`` the drop of ``eta`` at milestone ``k``, ``tau`` log-uniform in
   ``step_response_range``). ``H = clip((b(w) - c) / (0.5 (max b(w) - c)), 0, 1)`` (``c``: the
   chance level, 3.) gives the full gain once the run is halfway from chance to its best and none
   at chance: a base curve that collapsed (a divergence of the base) gains nothing. In loss terms
   the loss falls by a factor ``1 - g A H``: the late rise of a cool-down (WSD), the steady end of
   cosine and linear decays, the jumps of steps.

3. **Chance level** ``c = min(u, f_1)`` with ``u`` uniform in ``chance_level_range`` and ``f_1``
   the first value of ``b(w)``: where a dip, a spike or a divergence goes (a run never starts below
   chance). **Warm-up dip** (``p_warmup_dip`` of the warm-up curves): a transient drop towards
   chance at the end of the warm-up, ``f <- f - h (f - c)_+ exp(-((s - s_w) / (s_w / 2))^2 / 2)``,
   ``h`` uniform in ``warmup_dip_depth_range``: a non-monotone start.

4. **Spikes** (``p_spike``): a number of spikes uniform in ``spike_count_range``, each at the
   first evaluation ``i_k`` at or after a position uniform in ``spike_position_range``, of height
   ``h_k`` (uniform in ``spike_height_range``: the fraction of the way to chance) and either
   isolated (one point; with probability ``spike_isolated_fraction``) or recovering over
   ``r_k`` evaluations (log-uniform in ``spike_recovery_range``):
   ``f <- f - (f - c)_+ (1 - prod_k (1 - h_k R_k(i)))`` with ``R_k(i) = exp(-(i - i_k) / r_k)``
   for ``i >= i_k`` (isolated: ``[i = i_k]``), 0 before.

5. **Divergence** (``p_divergence``): at the first evaluation ``i_d`` at or after a position
   log-uniform in ``divergence_position_range`` the curve goes to chance and stays:
   ``f <- f + (c - f)(1 - exp(-(i - i_d + 1) / r_d))`` for ``i >= i_d``, ``r_d`` (evaluations)
   log-uniform in ``divergence_speed_range``.

Long runs need nothing special: positions are progress and spike recoveries and divergence speeds
count evaluations, so a run of 1,000 evaluations has as many visible spikes as one of 50, each
shorter in progress; everything is elementwise on ``(B, L)`` (and ``(B, K, L)`` for ``K`` spikes).

Observed values are ``f + (base values - base noiseless)``: the base's observation noise of
evaluation ``i`` (its AR(1), heteroscedastic and outlier components included) carried over
unchanged; where ``f`` differs from the base, a base quantisation is therefore not kept.
``CurveBatch.noise_std`` is the base's. A curve none of whose components is on is the base's curve
exactly (epochs, values and all), and the generator draws the same numbers whatever the
probabilities: every per-curve parameter is drawn for every curve, after the base's draw. There is
no rejection here (the base's is bounded). :meth:`RealRunPrior.sample_with_info` says what each
curve got. ``docs/priors.md`` has the evidence for each setting (``benchmarks/prior_realism.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch

from lcpfn.priors.base import CurveBatch, CurvePrior, SampleOptions, SampleRequest

if TYPE_CHECKING:
    from typing_extensions import Unpack

Range = tuple[float, float]

EVALUATION_KINDS = ("regular", "offgrid_end", "log", "irregular", "dense_end")
"""How a curve's evaluation points are spaced; each but ``regular`` has a ``p_<kind>`` field
(``log`` is ``p_log_spaced``)."""
SCHEDULES = ("constant", "cosine", "linear", "step", "wsd")
"""The learning-rate decays; ``schedule_weights`` weighs the last four (``constant``: no decay)."""

# Columns of the (B, len(_PARAMS)) uniform draws behind every per-curve parameter (every curve gets
# every column whatever the probabilities, so one seed gives the same numbers with a component on
# or off).
_PARAMS = (
    "eval_kind", "offgrid_last_gap", "log_first", "irregular_mix", "dense_end_share", "dense_end_span",
    "warmup_switch", "warmup", "schedule_switch", "schedule_kind", "min_lr", "cooldown", "step_count", "step_factor",
    "step_response", "anneal_gain", "warmup_dip_switch", "warmup_dip_depth", "chance",
    "spike_switch", "spike_count", "divergence_switch", "divergence_position", "divergence_speed",
)
_COL = {name: j for j, name in enumerate(_PARAMS)}
_SPIKE_COLS = ("position", "isolated", "height", "recovery")


@dataclass(frozen=True)
class RealRunPrior(CurvePrior):
    """Configuration of the real-run prior; ``sample`` draws a batch from it.

    ``base``/``base_settings``: the wrapped prior, by its registered name and the settings it is
    built with (as :func:`lcpfn.priors.get_prior` takes them). ``p_*`` fields are probabilities of
    all curves except ``p_warmup_dip`` (of the warm-up curves). The evaluation kinds are exclusive:
    ``p_offgrid_end + p_log_spaced + p_irregular + p_dense_end <= 1``, the rest regular.
    ``*_range`` fields are ``(low, high)`` bounds of a uniform draw, or of a log-uniform one where
    noted. Positions are in training progress ``s = t / L``; recoveries and divergence speeds count
    evaluations. See the module docstring for the formulas, ``docs/priors.md`` for the evidence.
    """

    base: str = "extended"
    base_settings: Mapping[str, Any] | None = None

    p_offgrid_end: float = 0.2
    p_log_spaced: float = 0.1
    p_irregular: float = 0.05
    p_dense_end: float = 0.05
    offgrid_last_gap_range: Range = (0.05, 1.0)  # last gap / the regular gap
    log_first_range: Range = (1e-4, 0.05)  # log-uniform: progress of the first log-spaced point
    irregular_mix_range: Range = (0.2, 1.0)  # 0: regular, 1: sorted uniform positions
    dense_end_share_range: Range = (0.15, 0.6)  # fraction of the points in the dense end
    dense_end_span_range: Range = (0.005, 0.1)  # log-uniform: the dense end's share of the budget

    p_warmup: float = 0.3
    warmup_range: Range = (0.005, 0.1)  # log-uniform: progress where the warm-up ends
    p_warmup_dip: float = 0.15  # of the warm-up curves
    warmup_dip_depth_range: Range = (0.1, 0.6)  # fraction of the way to chance
    p_schedule: float = 0.7
    schedule_weights: tuple[float, float, float, float] = (0.4, 0.35, 0.1, 0.15)  # cosine, linear, step, wsd
    min_lr_range: Range = (0.0, 0.1)  # final learning rate / peak (cosine, linear, wsd)
    cooldown_range: Range = (0.1, 0.2)  # wsd: the cool-down's share of the budget
    step_count_range: tuple[int, int] = (1, 3)  # uniform integer: milestones of a step schedule
    step_position_range: Range = (0.3, 0.95)
    step_factor_range: Range = (0.1, 0.5)  # log-uniform: learning-rate factor at each milestone
    step_response_range: Range = (0.003, 0.03)  # log-uniform: lag of the gain after a milestone
    anneal_gain_range: Range = (0.05, 0.5)  # log-uniform: headroom removed at a fully annealed rate

    chance_level_range: Range = (0.0, 0.3)
    p_spike: float = 0.02
    spike_count_range: tuple[int, int] = (1, 3)  # uniform integer
    spike_position_range: Range = (0.05, 1.0)
    spike_height_range: Range = (0.2, 1.0)  # fraction of the way to chance
    spike_isolated_fraction: float = 0.5  # of the spikes, single-point ones
    spike_recovery_range: Range = (0.5, 5.0)  # log-uniform: recovery scale, evaluations
    p_divergence: float = 0.02
    divergence_position_range: Range = (0.01, 0.9)  # log-uniform
    divergence_speed_range: Range = (0.2, 2.0)  # log-uniform: evaluations to reach chance (scale)

    name = "realrun"

    def __post_init__(self) -> None:
        if self.base == self.name:
            raise ValueError(f"base must be a prior that draws at epochs 1..L, not {self.base!r} itself")
        settings = self.base_settings
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise ValueError(f"base_settings must be a mapping of {self.base!r} settings, got {settings!r}")
            # JSON gives lists back: store tuples, so a prior read from a checkpoint equals the original
            settings = {str(k): tuple(v) if isinstance(v, list) else v for k, v in settings.items()} or None
            object.__setattr__(self, "base_settings", settings)
        _ = self.base_prior  # builds, and so validates, the base

        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range"):
                if isinstance(value, (str, bytes)) or len(value) != 2 or not value[0] <= value[1]:
                    raise ValueError(f"{f.name} must be (low, high) with low <= high, got {value!r}")
                cast = int if f.name.endswith("count_range") else float
                if cast is int and any(float(v) != int(v) for v in value):
                    raise ValueError(f"{f.name} must hold integers, got {value!r}")
                object.__setattr__(self, f.name, (cast(value[0]), cast(value[1])))
            elif f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {value!r}")
        kinds = self.p_offgrid_end + self.p_log_spaced + self.p_irregular + self.p_dense_end
        if kinds > 1.0 + 1e-9:
            raise ValueError(f"p_offgrid_end + p_log_spaced + p_irregular + p_dense_end must be at most 1, "
                             f"got {kinds!r}")
        weights = self.schedule_weights
        if len(weights) != 4 or any(not w >= 0 for w in weights) or not sum(weights) > 0:
            raise ValueError(f"schedule_weights must be 4 non-negative weights (cosine, linear, step, wsd) with a "
                             f"positive sum, got {weights!r}")
        object.__setattr__(self, "schedule_weights", tuple(float(w) for w in weights))
        if not 0.0 <= self.spike_isolated_fraction <= 1.0:
            raise ValueError(f"spike_isolated_fraction must be in [0, 1], got {self.spike_isolated_fraction!r}")
        for name in ("log_first_range", "dense_end_span_range", "warmup_range", "step_factor_range",
                     "step_response_range", "anneal_gain_range", "spike_recovery_range", "divergence_position_range",
                     "divergence_speed_range"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"{name} is log-uniform and must be positive, got {getattr(self, name)!r}")
        for name in ("offgrid_last_gap_range", "irregular_mix_range", "dense_end_share_range", "min_lr_range",
                     "anneal_gain_range", "spike_height_range", "warmup_dip_depth_range", "step_position_range",
                     "spike_position_range", "step_factor_range"):
            low, high = getattr(self, name)
            if not (0 <= low and high <= 1):
                raise ValueError(f"{name} must lie in [0, 1], got {(low, high)!r}")
        for name in ("log_first_range", "dense_end_span_range", "warmup_range", "cooldown_range",
                     "divergence_position_range"):
            if getattr(self, name)[1] >= 1:
                raise ValueError(f"{name} is a share of the budget and must lie below 1, got {getattr(self, name)!r}")
        if self.cooldown_range[0] <= 0:
            raise ValueError(f"cooldown_range must be positive, got {self.cooldown_range!r}")
        if self.offgrid_last_gap_range[0] <= 0:
            raise ValueError(f"offgrid_last_gap_range must be positive, got {self.offgrid_last_gap_range!r}")
        for name in ("step_count_range", "spike_count_range"):
            if getattr(self, name)[0] < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")

    def __hash__(self) -> int:  # base_settings is a dict: hash the JSON form
        return hash(json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, sort_keys=True, default=str))

    @cached_property
    def base_prior(self) -> CurvePrior:
        """The wrapped prior, built from ``base`` and ``base_settings``."""
        from lcpfn.priors import get_prior

        try:
            base = get_prior(self.base, **(self.base_settings or {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"base={self.base!r}, base_settings={self.base_settings!r}: {exc}") from None
        if not isinstance(base, CurvePrior):
            raise ValueError(f"base must be a CurvePrior, got {type(base).__name__} for {self.base!r}")
        return base

    def sample_with_info(
        self, batch_size: int, **options: Unpack[SampleOptions]
    ) -> tuple[CurveBatch, dict[str, torch.Tensor]]:
        """Draw ``batch_size`` curves, as :meth:`sample` does, and say what each curve got.

        Returns the batch and a dict of ``(B,)`` tensors: ``"eval_kind"`` (long, the index into
        :data:`EVALUATION_KINDS`), ``"schedule"`` (long, into :data:`SCHEDULES`), bool masks
        ``"warmup"``, ``"warmup_dip"``, ``"spike"``, ``"divergence"``, and float parameters (NaN
        where their component is off): ``"warmup.end"`` (``s_w``), ``"schedule.min_lr"``,
        ``"schedule.cooldown"``, ``"schedule.anneal_gain"``, ``"step.factor"``, ``"step.count"``,
        ``"chance"`` (every curve), ``"spike.count"``, ``"divergence.index"`` (0-based ``i_d``).
        """
        return self._draw(SampleRequest(batch_size, **options))

    def _sample(self, request: SampleRequest) -> CurveBatch:
        batch, _ = self._draw(request)
        return batch

    def _draw(self, request: SampleRequest) -> tuple[CurveBatch, dict[str, torch.Tensor]]:
        base = self.base_prior._sample(request)
        kw = request.tensor_options
        b, length = request.batch_size, request.seq_len
        u = torch.rand(b, len(_PARAMS), **kw)  # (B, P): every per-curve parameter
        n_spikes_max = self.spike_count_range[1]
        u_spike = torch.rand(b, n_spikes_max, len(_SPIKE_COLS), **kw)  # (B, K, 4)
        u_steps = torch.rand(b, self.step_count_range[1], **kw)  # (B, Ks): milestone positions
        u_positions = torch.rand(b, length, **kw)  # (B, L): irregular evaluation points
        col = {name: u[:, j] for name, j in _COL.items()}

        def uniform(name: str, rng: Range) -> torch.Tensor:  # (B,)
            return rng[0] + (rng[1] - rng[0]) * col[name]

        def log_uniform(name: str, rng: Range) -> torch.Tensor:  # (B,)
            return torch.exp(math.log(rng[0]) + (math.log(rng[1]) - math.log(rng[0])) * col[name])

        def nan_unless(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return torch.where(mask, value, torch.full_like(value, math.nan))

        # 1. evaluation points: progress s (B, L), strictly increasing, s_L = 1
        thresholds = torch.tensor([self.p_offgrid_end, self.p_log_spaced, self.p_irregular, self.p_dense_end],
                                  device=u.device, dtype=torch.float64).cumsum(0).to(u.dtype)
        kind = torch.where(
            col["eval_kind"] < thresholds[-1],
            1 + torch.searchsorted(thresholds, col["eval_kind"].contiguous(), right=True).clamp_max(3),
            torch.zeros_like(col["eval_kind"], dtype=torch.long),
        )  # (B,) index into EVALUATION_KINDS
        s = evaluation_points(
            kind, length,
            last_gap=uniform("offgrid_last_gap", self.offgrid_last_gap_range),
            log_first=log_uniform("log_first", self.log_first_range),
            mix=uniform("irregular_mix", self.irregular_mix_range),
            sorted_uniforms=u_positions,
            dense_share=uniform("dense_end_share", self.dense_end_share_range),
            dense_span=log_uniform("dense_end_span", self.dense_end_span_range),
        )
        info: dict[str, torch.Tensor] = {"eval_kind": kind}

        # 2. learning-rate schedule: warp progress by the rate's area, then the annealing gain
        warm = col["warmup_switch"] < self.p_warmup
        s_w = torch.where(warm, log_uniform("warmup", self.warmup_range), torch.zeros_like(col["warmup"]))
        decays = col["schedule_switch"] < self.p_schedule
        w = torch.tensor(self.schedule_weights, device=u.device, dtype=torch.float64)
        cum = (w.cumsum(0) / w.sum()).to(u.dtype)
        which = 1 + torch.searchsorted(cum, col["schedule_kind"].contiguous(), right=True).clamp_max(3)
        schedule = torch.where(decays, which, torch.zeros_like(which))  # (B,) index into SCHEDULES
        min_lr = uniform("min_lr", self.min_lr_range)
        cooldown = uniform("cooldown", self.cooldown_range)
        gamma = log_uniform("step_factor", self.step_factor_range)
        lo, hi = self.step_count_range
        n_steps = (lo + ((hi - lo + 1) * col["step_count"]).long()).clamp_max(hi)  # (B,)
        p_lo, p_hi = self.step_position_range
        milestones = (p_lo + (p_hi - p_lo) * u_steps).sort(dim=1).values  # (B, Ks)
        milestones = torch.maximum(milestones, s_w[:, None])
        active = torch.arange(hi, device=u.device)[None, :] < n_steps[:, None]  # (B, Ks)
        tau = log_uniform("step_response", self.step_response_range)
        gain = log_uniform("anneal_gain", self.anneal_gain_range)
        area = lr_area(schedule, s, warmup_end=s_w, min_lr=min_lr, cooldown=cooldown, step_factor=gamma,
                       milestones=milestones, active_steps=active)
        total = lr_area(schedule, torch.ones_like(s[:, :1]), warmup_end=s_w, min_lr=min_lr, cooldown=cooldown,
                        step_factor=gamma, milestones=milestones, active_steps=active)
        scheduled = warm | decays
        progress = torch.where(scheduled[:, None], area / total, s)  # (B, L) where the base curve is read

        chance_raw = uniform("chance", self.chance_level_range)  # (B,)
        moved = scheduled | (kind != 0)
        read = base_at_progress(base.noiseless, progress, floor=chance_raw)
        f = torch.where(moved[:, None], read, base.noiseless)
        # 3. chance level: where dips, spikes and divergence go (the gain needs it: none at chance)
        chance = torch.minimum(chance_raw, f[:, 0])  # (B,)
        c = chance[:, None]
        anneal = annealing(schedule, s, warmup_end=s_w, min_lr=min_lr, cooldown=cooldown, step_factor=gamma,
                           milestones=milestones, active_steps=active, response=tau)
        f = f + gain[:, None] * anneal * health(f, c) * (1 - f).clamp_min(0)
        info["warmup"] = warm
        info["schedule"] = schedule
        info["warmup.end"] = nan_unless(s_w, warm)
        info["schedule.min_lr"] = nan_unless(min_lr, decays & (schedule != 3))
        info["schedule.cooldown"] = nan_unless(cooldown, schedule == 4)
        info["schedule.anneal_gain"] = nan_unless(gain, decays)
        info["step.factor"] = nan_unless(gamma, schedule == 3)
        info["step.count"] = nan_unless(n_steps.to(u.dtype), schedule == 3)

        info["chance"] = chance

        # warm-up dip: a transient drop towards chance at the end of the warm-up
        dip = warm & (col["warmup_dip_switch"] < self.p_warmup_dip)
        depth = uniform("warmup_dip_depth", self.warmup_dip_depth_range)
        if dip.any():  # the rare components are computed for their curves only (the draws are for all)
            j = dip.nonzero()[:, 0]
            s_wj = s_w[j, None]
            bump = torch.exp(-0.5 * ((s[j] - s_wj) / (s_wj / 2)).square())  # (n, L)
            f = f.index_copy(0, j, f[j] - depth[j, None] * (f[j] - c[j]).clamp_min(0) * bump)
        info["warmup_dip"] = dip

        # 4. spikes: excursions towards chance, isolated or recovering over a few evaluations
        spiky = col["spike_switch"] < self.p_spike
        lo, hi = self.spike_count_range
        n_sp = (lo + ((hi - lo + 1) * col["spike_count"]).long()).clamp_max(hi)  # (B,)
        slot_on = (torch.arange(hi, device=u.device)[None, :] < n_sp[:, None]) & spiky[:, None]  # (B, K)
        sp = {name: u_spike[..., j] for j, name in enumerate(_SPIKE_COLS)}  # (B, K) each
        (p_lo, p_hi), (h_lo, h_hi) = self.spike_position_range, self.spike_height_range
        pos = p_lo + (p_hi - p_lo) * sp["position"]
        height = h_lo + (h_hi - h_lo) * sp["height"]
        r_lo, r_hi = (math.log(v) for v in self.spike_recovery_range)
        recovery = torch.exp(r_lo + (r_hi - r_lo) * sp["recovery"])  # (B, K) evaluations
        isolated = sp["isolated"] < self.spike_isolated_fraction
        if spiky.any():
            j = spiky.nonzero()[:, 0]
            shape = spike_profile(first_index_at(s[j], pos[j]), length, recovery=recovery[j], isolated=isolated[j])
            keep = torch.prod(1 - (height[j] * slot_on[j])[..., None] * shape, dim=1)  # (n, L)
            f = f.index_copy(0, j, f[j] - (f[j] - c[j]).clamp_min(0) * (1 - keep))
        info["spike"] = spiky
        info["spike.count"] = nan_unless(n_sp.to(u.dtype), spiky)

        # 5. divergence: to chance, and it stays there
        diverges = col["divergence_switch"] < self.p_divergence
        i_d = first_index_at(s, log_uniform("divergence_position", self.divergence_position_range)[:, None])[:, 0]
        speed = log_uniform("divergence_speed", self.divergence_speed_range)
        if diverges.any():
            j = diverges.nonzero()[:, 0]
            after = torch.arange(length, device=u.device, dtype=u.dtype)[None, :] - i_d[j, None].to(u.dtype)  # (n, L)
            ramp = torch.where(after >= 0, -torch.expm1(-(after + 1) / speed[j, None]), torch.zeros_like(after))
            f = f.index_copy(0, j, f[j] + (c[j] - f[j]) * ramp)
        info["divergence"] = diverges
        info["divergence.index"] = nan_unless(i_d.to(u.dtype), diverges)

        values = base.values + (f - base.noiseless)  # the base's observation noise, per evaluation
        changed = moved | dip | spiky | diverges  # exactly the base's curve otherwise
        keep_base = ~changed[:, None]
        batch = CurveBatch(
            epochs=torch.where((kind == 0)[:, None], base.epochs, s * length),
            values=torch.where(keep_base, base.values, values),
            noiseless=torch.where(keep_base, base.noiseless, f),
            noise_std=base.noise_std,
        )
        return batch, info


def evaluation_points(
    kind: torch.Tensor,
    length: int,
    *,
    last_gap: torch.Tensor,
    log_first: torch.Tensor,
    mix: torch.Tensor,
    sorted_uniforms: torch.Tensor,
    dense_share: torch.Tensor,
    dense_span: torch.Tensor,
) -> torch.Tensor:
    """Progress ``s`` ``(B, L)`` of each curve's evaluations, strictly increasing with ``s_L = 1``.

    ``kind`` ``(B,)`` indexes :data:`EVALUATION_KINDS`; the other ``(B,)`` tensors are the kinds'
    parameters (see the module docstring); ``sorted_uniforms`` ``(B, L)`` are uniforms on
    ``[0, 1)`` (sorted here) for the irregular kind.
    """
    dtype = last_gap.dtype
    i = torch.arange(1, length + 1, device=kind.device, dtype=dtype)[None, :]  # (1, L)
    last = i == length
    regular = (i / length).expand(kind.shape[0], length)
    offgrid = torch.where(last, torch.ones_like(regular), i / (length - 1 + last_gap[:, None]))
    log = torch.exp(torch.log(log_first)[:, None] * (length - i) / (length - 1))
    v = torch.ones_like(regular)
    irregular_rows = (kind == EVALUATION_KINDS.index("irregular")).nonzero()[:, 0]
    if irregular_rows.numel():  # sorting is the costly part: only where it is used
        v = v.index_copy(0, irregular_rows, sorted_uniforms[irregular_rows].sort(dim=1).values)
    v = torch.where(last, torch.ones_like(regular), v)
    irregular = (1 - mix[:, None]) * regular + mix[:, None] * v
    n_dense = (dense_share * length).round().clamp(1, length - 1)[:, None]  # (B, 1) points in the dense end
    n_rest = length - n_dense
    head = i / n_rest * (1 - dense_span[:, None])
    tail = 1 - dense_span[:, None] + (i - n_rest) / n_dense * dense_span[:, None]
    dense = torch.where(i <= n_rest, head, tail)
    out = regular
    for k, grid in enumerate((offgrid, log, irregular, dense), start=1):
        out = torch.where((kind == k)[:, None], grid, out)
    return out


def lr_area(
    schedule: torch.Tensor,
    s: torch.Tensor,
    *,
    warmup_end: torch.Tensor,
    min_lr: torch.Tensor,
    cooldown: torch.Tensor,
    step_factor: torch.Tensor,
    milestones: torch.Tensor,
    active_steps: torch.Tensor,
) -> torch.Tensor:
    """``S(s) = int_0^s eta``, the area under the relative learning rate, at progress ``s`` ``(B, Q)``.

    ``schedule`` ``(B,)`` indexes :data:`SCHEDULES`; ``warmup_end`` ``s_w``, ``min_lr`` ``m``,
    ``cooldown`` ``delta`` and ``step_factor`` ``gamma`` are ``(B,)``; ``milestones`` ``(B, K)``
    (sorted, each ``>= s_w``) count where ``active_steps`` ``(B, K)`` is true.
    """
    s_w, m = warmup_end[:, None], min_lr[:, None]
    ramp = torch.minimum(s, s_w)
    warm = torch.where(s_w > 0, ramp.square() / (2 * s_w.clamp_min(1e-30)), torch.zeros_like(s))
    span = 1 - s_w
    after = (s - s_w).clamp_min(0)  # (B, Q)
    x = after / span
    cosine = span * (m * x + (1 - m) * (x / 2 + torch.sin(math.pi * x) / (2 * math.pi)))
    linear = span * (x - (1 - m) * x.square() / 2)
    a = torch.maximum(1 - cooldown[:, None], s_w)
    wsd = after - (1 - m) * (s - a).clamp_min(0).square() / (2 * (1 - a))
    drops = _step_drops(step_factor, active_steps)  # (B, K)
    step = after - (drops[:, :, None] * (s[:, None, :] - milestones[:, :, None]).clamp_min(0)).sum(dim=1)
    decay = after
    for k, part in enumerate((cosine, linear, step, wsd), start=1):
        decay = torch.where((schedule == k)[:, None], part, decay)
    return warm + decay


def annealing(schedule: torch.Tensor, s: torch.Tensor, *, response: torch.Tensor, **args: torch.Tensor) -> torch.Tensor:
    """``A(s)`` ``(B, Q)`` in ``[0, 1]``: how far the rate has been annealed below its peak, ``1 - eta``
    after the warm-up (0 during it, and for ``constant``); for steps the saturating sum of the drops
    with the lag ``response`` ``(B,)``. ``args`` are the keyword arguments of :func:`lr_area`
    (``warmup_end``, ``min_lr``, ``cooldown``, ``step_factor``, ``milestones``, ``active_steps``)."""
    cooldown, step_factor, milestones, active_steps = (
        args["cooldown"], args["step_factor"], args["milestones"], args["active_steps"]
    )
    s_w, m = args["warmup_end"][:, None], args["min_lr"][:, None]
    x = ((s - s_w) / (1 - s_w)).clamp(0, 1)
    cosine = (1 - m) * (1 - torch.cos(math.pi * x)) / 2
    linear = (1 - m) * x
    a = torch.maximum(1 - cooldown[:, None], s_w)
    wsd = (1 - m) * ((s - a) / (1 - a)).clamp(0, 1)
    drops = _step_drops(step_factor, active_steps)  # (B, K)
    lag = -torch.expm1(-(s[:, None, :] - milestones[:, :, None]).clamp_min(0) / response[:, None, None])
    step = (drops[:, :, None] * lag).sum(dim=1)
    out = torch.zeros_like(s)
    for k, part in enumerate((cosine, linear, step, wsd), start=1):
        out = torch.where((schedule == k)[:, None], part, out)
    return out


def _step_drops(step_factor: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """``Delta_k = gamma^(k-1) - gamma^k`` ``(B, K)`` for the active milestones, 0 for the others."""
    k = torch.arange(active.shape[1], device=active.device, dtype=step_factor.dtype)[None, :]
    g = step_factor[:, None]
    return (g ** k - g ** (k + 1)) * active


def health(f: torch.Tensor, chance: torch.Tensor) -> torch.Tensor:
    """``H`` ``(B, L)`` in ``[0, 1]``: ``(f - c) / (0.5 (max f - c))`` clipped, 1 once a curve ``f``
    ``(B, L)`` is halfway from its chance level ``chance`` ``(B, 1)`` to its best, 0 at chance."""
    half = 0.5 * (f.amax(dim=1, keepdim=True) - chance)
    return ((f - chance) / half.clamp_min(1e-12)).clamp(0, 1)


def base_at_progress(noiseless: torch.Tensor, progress: torch.Tensor, *, floor: torch.Tensor) -> torch.Tensor:
    """The base curves ``(B, G)`` (grid point ``j`` at progress ``j / G``) at ``progress`` ``(B, Q)``.

    Linear between grid points; before the first (``w < 1 / G``) log-linear,
    ``b_1 + (b_2 - b_1) log2(w G)``, clipped to ``[min(b_1, floor), b_1]`` (``floor`` ``(B,)``).
    """
    g = noiseless.shape[1]
    pos = progress * g - 1  # fractional 0-based grid index
    lo = pos.floor().clamp(0, g - 2).long()
    frac = (pos - lo.to(pos.dtype)).clamp(0, 1)
    inner = torch.lerp(noiseless.gather(1, lo), noiseless.gather(1, lo + 1), frac)
    b1, b2 = noiseless[:, :1], noiseless[:, 1:2]
    back = b1 + (b2 - b1) * torch.log2((progress * g).clamp(1e-30, 1))
    back = torch.minimum(torch.maximum(back, torch.minimum(b1, floor[:, None])), b1)
    return torch.where(pos < 0, back, inner)


def first_index_at(s: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """The 0-based index ``(B, K)`` of each curve's first evaluation at or after ``position``
    ``(B, K)`` on the increasing positions ``s`` ``(B, L)`` (the last one if there is none)."""
    before = (s[:, None, :] < position[:, :, None]).sum(dim=2)
    return before.clamp_max(s.shape[1] - 1)


def spike_profile(start: torch.Tensor, length: int, *, recovery: torch.Tensor, isolated: torch.Tensor) -> torch.Tensor:
    """``R_k(i)`` ``(B, K, L)``: 1 at the spike's evaluation ``start`` ``(B, K)``, then
    ``exp(-(i - start) / recovery)`` (or 0 where ``isolated``), 0 before it."""
    i = torch.arange(length, device=start.device, dtype=recovery.dtype)[None, None, :]
    n = i - start[:, :, None].to(recovery.dtype)  # (B, K, L) evaluations since the spike
    decay = torch.exp(-n.clamp_min(0) / recovery[:, :, None])
    decay = torch.where(isolated[:, :, None], (n == 0).to(decay.dtype), decay)
    return torch.where(n >= 0, decay, torch.zeros_like(decay))
