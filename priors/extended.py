"""An extended learning-curve prior: reference curves plus the shapes real curves show.

The reference prior (:mod:`lcpfn.priors.reference`) draws smooth, increasing curves in ``[0, 1]``
with i.i.d. Gaussian noise. Real curves also warm up slowly, jump at learning-rate steps, overfit,
diverge, stay flat, and carry correlated, progress-dependent or quantised noise. This prior lives
in the same model space ("higher is better", values mostly in ``[0, 1]``, epochs ``1..L``; a loss
is flipped and scaled into it by the predictor, e.g. ``z = 1 - loss / (1.25 max loss)``) and is
built on the reference prior:

1. Every curve starts as a reference noiseless curve ``b(t)`` with a reference noise std ``sigma``
   (one :meth:`ReferencePrior.sample` call, so the rejection is the reference's, bounded).
2. With probability ``p_reference`` the curve *is* that reference draw, unchanged.
3. Otherwise each component below is switched on independently with its own probability
   (conditional on the curve not being a reference curve: the fraction of all curves that get a
   component is ``(1 - p_reference) * p_component``), and applied in this order. Positions are
   in training progress ``s = t / L`` so the prior means the same at ``L = 20`` and ``L = 1000``.

Shape components (on the noiseless curve ``f``, initially ``b``; ``f1`` is its first value):

* **slow start** (``p_slow_start``): ``f <- l + (f - l) g(s) / g(1)`` with the log-time sigmoid
  ``g(s) = sigmoid((ln s - ln s_w) / w)``: the curve waits near the plateau ``l = (1 - d) f1``
  (``d`` uniform in ``slow_start_drop_range``: ``d = 1`` starts at 0) and rises around the
  inflection ``s_w`` (log-uniform in ``slow_start_position_range``; ``w`` uniform in
  ``slow_start_width_range``). The last value is unchanged and every value lies between ``l`` and
  the base curve's. Motivated by Pythia: on log-spaced checkpoints, LAMBADA, ARC, SciQ and PIQA
  accuracies (and LAMBADA perplexity) reach a fifth of their rise only after 15 % or more
  of the checkpoints; LCDB's sample-wise curves start flat at small training sets the same way, as
  NAS-Bench-201 curves do over epochs.
* **step schedule** (``p_step``): ``f <- f + sum_k J_k (1 - exp(-(s - s_k)_+ / tau))`` for one or
  (with ``p_two_steps``) two steps at ``s_k`` (uniform in ``step_position_range``), a first jump
  ``J_1`` uniform in ``step_jump_range``, a second ``J_2 = r J_1`` (``r`` uniform in
  ``step_second_ratio_range``), saturating on the scale ``tau`` (log-uniform in
  ``step_width_range``); a curve that would exceed 1 is scaled by ``1 / max f``. Motivated by
  step-decay schedules (ResNet on CIFAR/ImageNet at 30/60/90 or 50/75 % of training); none of
  our real data sets has clean steps (modded-nanoGPT's cooldown bends its curves more gently), so
  the ranges follow those published schedules rather than a fit.
* **late rise** (``p_late_rise``, 0 unless set): ``f <- f + G ((s - s_r)_+ / (1 - s_r))^q``, a
  second rise that starts at ``s_r`` (uniform in ``late_rise_start_range``) and ends with the
  budget, gaining ``G = g (1 - f(s_r))_+``, a fraction ``g`` (log-uniform in
  ``late_rise_gain_range``) of the headroom left at ``s_r``, with the shape ``q`` (uniform in
  ``late_rise_power_range``; 1 is linear, larger accelerates into the end); a curve that would
  exceed 1 is scaled by ``1 / max f``. Motivated by budget-tied learning-rate decay (cosine,
  linear cooldown): about a fifth of the LCBench surrogate curves (213 of 1,020) rise more in their
  last 10 epochs than in epochs 21-31, and the best configurations of some tasks plateau by epoch
  3-8 and then climb 3-7 points (10-20 % of their headroom) steadily to the end. Added after the
  shipped ``default`` model was trained, so it is off by default and draws its numbers after all
  the others: with ``p_late_rise = 0`` a seed gives the curves it gave before.
* **overfitting** (``p_overfit``): from the onset ``s_o`` (uniform in ``overfit_onset_range``, and
  after the last step plus 0.05 when the curve has steps) the curve is frozen at its value there
  and declines by ``D ((s - s_o) / (1 - s_o))^p``, reaching ``f(s_o) - D`` at the last epoch
  (``D`` log-uniform in ``overfit_decline_range``, ``p`` uniform in ``overfit_power_range``).
  Motivated by TaskSet (7 % of curves decline by more than 0.02 after a peak before 80 % of
  training; declines of 0.04-0.55 per unit progress) and by LCBench and Pythia (peaks at 0-70 %).
* **collapse** (``p_collapse``): at ``s_c`` (uniform in ``collapse_position_range``) the curve
  decays on the scale ``tau_c`` (log-uniform in ``collapse_width_range``) to the level
  ``min(l, f(s_c) - collapse_min_drop)`` (``l`` uniform in ``collapse_level_range``) and stays
  there: ``f <- f + (level - f)(1 - exp(-(s - s_c)_+ / tau_c))``. Motivated by TaskSet, where 8 %
  of runs diverge (NaN, or a loss that jumps to chance) mostly at the first evaluations but some
  at 10-70 % of training; in model space chance level is ~0.2 for a loss curve.
* **near-constant** (``p_flat``): applied last, ``f <- f1 + (f - f1) min(1, Delta / range f)``,
  so the curve's total range is at most ``Delta`` (log-uniform in ``flat_change_range``) around its
  first value. This overrides the visible effect of the other shape components. Motivated by
  TaskSet (56 % of configurations never leave chance loss: range < 0.02, median 0.005) and the
  chance-level Pythia tasks (LogiQA, WSC).

Noise components (on ``values = f + noise``; ``CurveBatch.noise_std`` is ``sigma``):

* **low noise** (``p_low_noise``): ``sigma`` is replaced by ``exp(v)`` with ``v`` uniform in
  ``low_noise_log_sigma_range`` (``(-10, -5)``: 4.5e-5 to 6.7e-3), far below the reference's
  ``log sigma ~ N(-4, 1)`` (90 % above 0.005). Motivated by the residual std about a straight line
  through the last 10 points of the dev-split real curves, in model units (value / range, a loss
  / 1.25 max): median ``log sigma`` -9.2 (LCBench surrogate), -7.5 (TaskSet, a mean of 5 seeds),
  -6.6 (modded-nanoGPT), -5.1 (Pythia), -4.3 (LCDB). A model trained on the reference noise alone
  over-covers such curves (90 % intervals held 99-100 % of their future values in a first trial).

* **heteroscedastic** (``p_heteroscedastic``): the std of point ``t`` is ``sigma m_t`` with
  ``m_t`` proportional to ``exp(kappa (s_t - 1/2))`` and normalised so that its root mean square
  over the curve's points is 1 (``kappa``, the log-ratio of the std at the end to that at the
  start, uniform in ``heteroscedastic_log_ratio_range``). So ``noise_std`` is always the RMS of
  the per-point Gaussian std, which for homoscedastic noise is just the std. Motivated by the
  log-ratio of late to early point-to-point scatter (last vs first third of each curve): median
  -0.3 (TaskSet), -0.8 (LCDB), -0.2 (Pythia), -3.1 (modded-nanoGPT), 10-90 % ranges about
  -2.5..+1 -- mostly noisier early, hence the range skewed to negative ``kappa``.
* **AR(1)** (``p_ar1``): the standard-normal noise is a stationary AR(1) process with coefficient
  ``phi`` (uniform in ``ar1_coef_range``): unit marginal variance, lag-1 correlation ``phi``.
  Motivated by the residuals about a 5-point moving average, whose median lag-1 correlation is
  -0.21 (TaskSet), -0.09 (LCDB), -0.02 (Pythia), +0.08 (modded-nanoGPT) against -0.3 for white
  noise: real evaluations wander around the trend.
* **outliers** (``p_outliers``): one random point plus each other point with probability ``rho``
  (log-uniform in ``outlier_rate_range``) is displaced by a size uniform in
  ``outlier_size_range``, downward with probability ``p_outlier_down`` (a transient bad
  evaluation). Motivated by the isolated downward spikes of modded-nanoGPT and LCDB curves.
* **quantised** (``p_quantize``): observed values are rounded to multiples of ``1 / n`` with ``n``
  log-uniform in ``quantize_levels_range`` (rounded): an accuracy on a validation set of ``n``
  examples. Motivated by Pythia, whose accuracies lie exactly on ``1 / n`` grids (WSC n = 104,
  SciQ 1000, WinoGrande 1267, PIQA 1838, ARC-Easy 2376), and by small OpenML validation sets.

Values are always finite. With the default ranges noiseless curves lie in ``[-0.4, 1]`` (in
``[0, 1]`` without overfitting or collapse).

Throughput (float32, CPU, one torch thread, median of 7 calls; 2-core development machine shared
with a training job): about 68,000 curves/s at ``seq_len = 100`` (batch 20,000; reference prior
185,000) and 6,900 curves/s at ``seq_len = 1000`` (batch 2,000; reference 21,000). Every component
is computed for every curve and selected by mask, which keeps the generator's stream independent
of the probabilities. The command is in ``docs/priors.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch

from lcpfn.priors.base import CurveBatch, CurvePrior, SampleOptions, SampleRequest
from lcpfn.priors.reference import ReferencePrior
from lcpfn.priors.reference_params import NOISE_STD

if TYPE_CHECKING:
    from typing_extensions import Unpack

COMPONENTS = (
    "slow_start", "step", "late_rise", "overfit", "collapse", "flat", "low_noise", "heteroscedastic", "ar1", "outliers",
    "quantize",
)
"""The switchable components, in the order they are applied; each has a ``p_<name>`` field."""

# Components added after models were trained on this prior. Their switches and parameters come
# from a later draw (after every older one) and their probabilities default to 0, so a seed gives
# the same curves as before with them off, and a checkpoint that predates them means the same prior.
_ADDED_LATER = ("late_rise",)
_LATE_PARAMS = ("late_rise_switch", "late_rise_start", "late_rise_gain", "late_rise_power")

# Columns of the (B, len(_PARAMS)) uniform draws behind every per-curve parameter. Every curve gets
# every parameter whether or not its component is on, so the generator's stream does not depend
# on the probabilities: the same seed with a component on or off gives the same base curves.
_PARAMS = (
    "slow_start_position", "slow_start_width", "slow_start_drop",
    "two_steps", "step_position_1", "step_position_2", "step_jump", "step_second_ratio", "step_width",
    "overfit_onset", "overfit_decline", "overfit_power",
    "collapse_position", "collapse_level", "collapse_width",
    "flat_change", "heteroscedastic_log_ratio", "ar1_coef",
    "outlier_rate", "outlier_forced_position", "outlier_forced_shape", "quantize_levels", "low_noise_log_sigma",
)
_COL = {name: j for j, name in enumerate(_PARAMS)}

Range = tuple[float, float]


@dataclass(frozen=True)
class ExtendedPrior(CurvePrior):
    """Configuration of the extended prior; ``sample`` draws a batch from it.

    ``p_*`` fields are probabilities: ``p_reference`` of all curves, ``p_<component>`` of the
    non-reference curves, ``p_two_steps`` of the step curves, ``p_outlier_down`` of the outliers.
    ``*_range`` fields are ``(low, high)`` bounds of a uniform draw, or of a log-uniform draw where
    noted. Positions and widths are in training progress ``t / L``.
    See the module docstring for what each component does and which real curves motivated it.
    """

    p_reference: float = 0.25  # the curve is exactly a reference-prior curve
    p_slow_start: float = 0.15
    p_step: float = 0.05
    p_late_rise: float = 0.0  # off by default: added later (see the module docstring)
    p_overfit: float = 0.1
    p_collapse: float = 0.02
    p_flat: float = 0.1
    p_low_noise: float = 0.5
    p_heteroscedastic: float = 0.3
    p_ar1: float = 0.3
    p_outliers: float = 0.05
    p_quantize: float = 0.15

    slow_start_position_range: Range = (0.03, 0.4)  # log-uniform: progress of the inflection
    slow_start_width_range: Range = (0.1, 0.5)  # sigmoid width in log-progress
    slow_start_drop_range: Range = (0.0, 1.0)  # plateau = (1 - drop) * first value
    p_two_steps: float = 0.5  # of the step curves, those with a second step
    step_position_range: Range = (0.25, 0.9)
    step_jump_range: Range = (0.05, 0.3)  # size of the first jump
    step_second_ratio_range: Range = (0.2, 0.7)  # second jump / first jump
    step_width_range: Range = (0.003, 0.03)  # log-uniform: saturation scale after a jump
    late_rise_start_range: Range = (0.0, 0.7)  # progress where the second rise starts
    late_rise_gain_range: Range = (0.02, 0.4)  # log-uniform: gain by the last epoch / headroom (1 - f)
    late_rise_power_range: Range = (0.7, 2.5)  # shape of the rise (1: linear, > 1: accelerating)
    overfit_onset_range: Range = (0.1, 0.8)
    overfit_decline_range: Range = (0.02, 0.3)  # log-uniform: total decline by the last epoch
    overfit_power_range: Range = (0.7, 1.5)  # shape of the decline (1: linear)
    collapse_position_range: Range = (0.05, 0.9)
    collapse_level_range: Range = (-0.1, 0.4)  # the level collapsed to (chance level)
    collapse_min_drop: float = 0.1  # the level is at least this far below the value at collapse
    collapse_width_range: Range = (0.002, 0.03)  # log-uniform: decay scale of the collapse
    flat_change_range: Range = (0.001, 0.03)  # log-uniform: total range of a near-constant curve
    low_noise_log_sigma_range: Range = (-10.0, -5.0)  # uniform: log of the noise std of a smooth curve
    heteroscedastic_log_ratio_range: Range = (-4.0, 2.0)  # log(std at end / std at start)
    ar1_coef_range: Range = (0.3, 0.95)
    outlier_rate_range: Range = (0.005, 0.05)  # log-uniform: probability of each further outlier
    outlier_size_range: Range = (0.05, 0.4)
    p_outlier_down: float = 0.8
    quantize_levels_range: Range = (20.0, 2000.0)  # log-uniform, rounded: validation-set size

    noise_log_mean: float = NOISE_STD.log_mean  # sigma = exp(N(noise_log_mean, noise_log_std)), as the reference
    noise_log_std: float = NOISE_STD.log_std
    max_rounds: int = 64  # rejection rounds of the reference base sampler

    name = "extended"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range"):
                # JSON gives lists back; store tuples so the dataclass stays hashable and equal
                if len(value) != 2 or not value[0] <= value[1]:
                    raise ValueError(f"{f.name} must be (low, high) with low <= high, got {value!r}")
                object.__setattr__(self, f.name, (float(value[0]), float(value[1])))
            elif f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {value!r}")
        for name in ("slow_start_position_range", "step_width_range", "late_rise_gain_range", "overfit_decline_range",
                     "collapse_width_range", "flat_change_range", "outlier_rate_range"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"{name} is log-uniform and must be positive, got {getattr(self, name)!r}")
        for name in ("step_position_range", "late_rise_start_range", "overfit_onset_range", "collapse_position_range"):
            low, high = getattr(self, name)
            if not (0 <= low and high <= 1):
                raise ValueError(f"{name} is a training progress and must lie in [0, 1], got {(low, high)!r}")
        if not (-1 < self.ar1_coef_range[0] and self.ar1_coef_range[1] < 1):
            raise ValueError(f"ar1_coef_range must lie in (-1, 1), got {self.ar1_coef_range!r}")
        if self.outlier_rate_range[1] > 1:
            raise ValueError(f"outlier_rate_range must lie in (0, 1], got {self.outlier_rate_range!r}")
        if self.late_rise_power_range[0] <= 0:
            raise ValueError(f"late_rise_power_range must be positive, got {self.late_rise_power_range!r}")
        if self.late_rise_gain_range[1] > 1:
            raise ValueError(f"late_rise_gain_range is a fraction of the headroom and must lie in (0, 1], "
                             f"got {self.late_rise_gain_range!r}")
        if self.overfit_power_range[0] <= 0:
            raise ValueError(f"overfit_power_range must be positive, got {self.overfit_power_range!r}")
        if not (0 <= self.slow_start_drop_range[0] and self.slow_start_drop_range[1] <= 1):
            raise ValueError(f"slow_start_drop_range must lie in [0, 1], got {self.slow_start_drop_range!r}")
        if self.quantize_levels_range[0] < 1:
            raise ValueError(f"quantize_levels_range must be at least 1, got {self.quantize_levels_range!r}")
        if self.collapse_min_drop < 0:
            raise ValueError(f"collapse_min_drop must be >= 0, got {self.collapse_min_drop!r}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be at least 1 but got {self.max_rounds!r}")

    def sample_with_info(
        self, batch_size: int, **options: Unpack[SampleOptions]
    ) -> tuple[CurveBatch, dict[str, torch.Tensor]]:
        """Draw ``batch_size`` curves, as :meth:`sample` does, and say what each curve got.

        The options are those of :meth:`sample` (:class:`~lcpfn.priors.base.SampleRequest`). The
        generator consumes the same numbers whatever the probabilities, so one seed with a
        component switched on or off gives the same base curves and noise.

        Returns the batch and a dict of ``(B,)`` tensors: a bool mask under ``"reference"`` and
        under each name in :data:`COMPONENTS`, and the drawn parameters of the components that
        are on (float, NaN where the component is off): ``"slow_start.position"``,
        ``"slow_start.plateau"``, ``"step.position_1"``, ``"step.position_2"`` (NaN for one step),
        ``"step.jump_1"``, ``"step.jump_2"``, ``"late_rise.start"``, ``"late_rise.gain"`` (the gain by
        the last epoch before any rescaling), ``"overfit.onset"`` (grid-aligned), ``"overfit.decline"``,
        ``"collapse.position"``, ``"collapse.level"``, ``"heteroscedastic.log_ratio"``,
        ``"ar1.coef"``, ``"flat.change"``, ``"low_noise.sigma"``, ``"quantize.levels"``.
        """
        return self._draw(SampleRequest(batch_size, **options))

    def _sample(self, request: SampleRequest) -> CurveBatch:
        batch, _ = self._draw(request)
        return batch

    def _draw(self, request: SampleRequest) -> tuple[CurveBatch, dict[str, torch.Tensor]]:
        kw = request.tensor_options
        base = ReferencePrior(
            noise_log_mean=self.noise_log_mean, noise_log_std=self.noise_log_std, max_rounds=self.max_rounds
        )._sample(request)
        b, length = request.batch_size, request.seq_len
        older = [c for c in COMPONENTS if c not in _ADDED_LATER]
        u_switch = torch.rand(b, 1 + len(older), **kw)  # (B, 11): reference + older components
        u = torch.rand(b, len(_PARAMS), **kw)  # (B, P): every per-curve parameter
        eta = torch.randn(b, length, **kw)  # (B, L): standard-normal noise
        u_out = torch.rand(b, length, **kw)  # (B, L): outlier positions, sizes and signs
        u_late = torch.rand(b, len(_LATE_PARAMS), **kw)  # (B, 4): switch and parameters of later components
        late = {name: u_late[:, j] for j, name in enumerate(_LATE_PARAMS)}

        is_ref = u_switch[:, 0] < self.p_reference
        on = {c: (u_switch[:, 1 + k] < getattr(self, f"p_{c}")) & ~is_ref for k, c in enumerate(older)}
        on["late_rise"] = (late["late_rise_switch"] < self.p_late_rise) & ~is_ref
        info: dict[str, torch.Tensor] = {"reference": is_ref, **on}

        def column(col: str) -> torch.Tensor:  # (B,) uniforms
            return late[col] if col in late else u[:, _COL[col]]

        def uniform(col: str, rng: Range) -> torch.Tensor:  # (B,)
            return rng[0] + (rng[1] - rng[0]) * column(col)

        def log_uniform(col: str, rng: Range) -> torch.Tensor:  # (B,)
            return torch.exp(math.log(rng[0]) + (math.log(rng[1]) - math.log(rng[0])) * column(col))

        def record(key: str, value: torch.Tensor, mask: torch.Tensor) -> None:
            info[key] = torch.where(mask, value, torch.full_like(value, math.nan))

        t = base.epochs[0]  # (L,)
        s = (t / length)[None, :]  # (1, L) training progress
        f = base.noiseless.clone()  # (B, L)
        f1 = f[:, :1]  # (B, 1)

        # 1. slow start: wait near a plateau, rise around the inflection s_w (log-time sigmoid)
        s_w = log_uniform("slow_start_position", self.slow_start_position_range)[:, None]
        width = uniform("slow_start_width", self.slow_start_width_range)[:, None]
        plateau = (1 - uniform("slow_start_drop", self.slow_start_drop_range)[:, None]) * f1  # (B, 1)
        gate = torch.sigmoid((torch.log(s) - torch.log(s_w)) / width)  # (B, L)
        gate = gate / torch.sigmoid(-torch.log(s_w) / width)  # = 1 at s = 1
        f = torch.where(on["slow_start"][:, None], plateau + (f - plateau) * gate, f)
        record("slow_start.position", s_w[:, 0], on["slow_start"])
        record("slow_start.plateau", plateau[:, 0], on["slow_start"])

        # 2. step schedule: saturating jumps at one or two positions
        two = (u[:, _COL["two_steps"]] < self.p_two_steps) & on["step"]
        pos_a = uniform("step_position_1", self.step_position_range)
        pos_b = uniform("step_position_2", self.step_position_range)
        s1 = torch.where(two, torch.minimum(pos_a, pos_b), pos_a)
        s2 = torch.maximum(pos_a, pos_b)
        jump1 = uniform("step_jump", self.step_jump_range)
        jump2 = jump1 * uniform("step_second_ratio", self.step_second_ratio_range) * two
        tau = log_uniform("step_width", self.step_width_range)[:, None]
        rise = jump1[:, None] * -torch.expm1(-(s - s1[:, None]).clamp_min(0) / tau)
        rise = rise + jump2[:, None] * -torch.expm1(-(s - s2[:, None]).clamp_min(0) / tau)
        stepped = f + rise
        stepped = stepped / stepped.amax(dim=1, keepdim=True).clamp_min(1.0)  # keep <= 1
        f = torch.where(on["step"][:, None], stepped, f)
        s_last = torch.where(two, s2, s1)
        record("step.position_1", s1, on["step"])
        record("step.position_2", s2, two)
        record("step.jump_1", jump1, on["step"])
        record("step.jump_2", jump2, two)

        # 2b. late rise: a second rise that ends with the budget, gaining a fraction of the headroom
        s_r = uniform("late_rise_start", self.late_rise_start_range)  # (B,)
        i_r = (s_r * length).ceil().clamp(1, length).long() - 1  # (B,) first epoch at or after s_r
        headroom = (1 - f.gather(1, i_r[:, None])).clamp_min(0)  # (B, 1)
        gain = log_uniform("late_rise_gain", self.late_rise_gain_range)[:, None] * headroom
        power = uniform("late_rise_power", self.late_rise_power_range)[:, None]
        ramp = ((s - s_r[:, None]).clamp_min(0) / (1 - s_r[:, None])) ** power  # (B, L) 0 -> 1 at s = 1
        risen = f + gain * ramp
        risen = risen / risen.amax(dim=1, keepdim=True).clamp_min(1.0)  # keep <= 1
        f = torch.where(on["late_rise"][:, None], risen, f)
        record("late_rise.start", s_r, on["late_rise"])
        record("late_rise.gain", gain[:, 0], on["late_rise"])

        # 3. overfitting: freeze at the onset, then decline by D at the last epoch
        onset = uniform("overfit_onset", self.overfit_onset_range)
        onset = torch.where(on["step"], torch.maximum(onset, s_last + 0.05), onset)
        t_o = (onset * length).round().clamp(1, length)  # (B,) epoch of the peak, 1-based
        frozen = torch.gather(f, 1, torch.minimum(t[None, :], t_o[:, None]).long() - 1)
        after = ((t[None, :] - t_o[:, None]) / (length - t_o[:, None]).clamp_min(1)).clamp_min(0)
        decline = log_uniform("overfit_decline", self.overfit_decline_range)
        power = uniform("overfit_power", self.overfit_power_range)
        overfit = frozen - decline[:, None] * after ** power[:, None]
        f = torch.where(on["overfit"][:, None], overfit, f)
        record("overfit.onset", t_o / length, on["overfit"])
        record("overfit.decline", decline, on["overfit"])

        # 4. collapse: decay to a low level and stay there
        s_c = uniform("collapse_position", self.collapse_position_range)
        i_c = (s_c * length).ceil().clamp(1, length).long() - 1
        at_collapse = f.gather(1, i_c[:, None])[:, 0]
        level = uniform("collapse_level", self.collapse_level_range)
        level = torch.minimum(level, at_collapse - self.collapse_min_drop)
        tau_c = log_uniform("collapse_width", self.collapse_width_range)[:, None]
        drop = -torch.expm1(-(s - s_c[:, None]).clamp_min(0) / tau_c)  # (B, L) 0 -> 1
        f = torch.where(on["collapse"][:, None], f + (level[:, None] - f) * drop, f)
        record("collapse.position", s_c, on["collapse"])
        record("collapse.level", level, on["collapse"])

        # 5. near-constant: shrink the curve's range to at most Delta around its first value
        change = log_uniform("flat_change", self.flat_change_range)
        spread = (f.amax(dim=1) - f.amin(dim=1)).clamp_min(change)
        f_first = f[:, :1]
        f = torch.where(on["flat"][:, None], f_first + (f - f_first) * (change / spread)[:, None], f)
        record("flat.change", change, on["flat"])

        # 6. noise: AR(1) correlation, heteroscedastic scale, outliers, quantisation
        eps = eta
        phi = uniform("ar1_coef", self.ar1_coef_range)
        if on["ar1"].any():
            idx = on["ar1"].nonzero()[:, 0]
            eps = eps.index_copy(0, idx, _ar1(eta[idx], phi[idx]))
        record("ar1.coef", phi, on["ar1"])
        kappa = uniform("heteroscedastic_log_ratio", self.heteroscedastic_log_ratio_range)
        profile = torch.exp(kappa[:, None] * (s - 0.5))  # (B, L)
        profile = profile / profile.square().mean(dim=1, keepdim=True).sqrt()  # RMS 1
        profile = torch.where(on["heteroscedastic"][:, None], profile, torch.ones_like(profile))
        record("heteroscedastic.log_ratio", kappa, on["heteroscedastic"])
        log_sigma = uniform("low_noise_log_sigma", self.low_noise_log_sigma_range)
        sigma = torch.where(on["low_noise"], log_sigma.exp(), base.noise_std)
        record("low_noise.sigma", log_sigma.exp(), on["low_noise"])
        values = f + sigma[:, None] * profile * eps

        rate = log_uniform("outlier_rate", self.outlier_rate_range)[:, None]
        hit = u_out < rate  # (B, L); given a hit, u_out / rate is again uniform on [0, 1)
        shape = u_out / rate
        forced = (u[:, _COL["outlier_forced_position"]] * length).long().clamp_max(length - 1)[:, None]
        hit = hit.scatter(1, forced, True)
        shape = shape.scatter(1, forced, u[:, _COL["outlier_forced_shape"], None])
        down = shape < self.p_outlier_down
        # reuse the uniform once more: below p_down a downward spike, above it an upward one
        p_down = self.p_outlier_down
        v = torch.where(down, shape / max(p_down, 1e-12), (shape - p_down) / max(1 - p_down, 1e-12))
        low, high = self.outlier_size_range
        size = low + (high - low) * v.clamp(0, 1)
        spike = torch.where(down, -size, size) * (hit & on["outliers"][:, None])
        values = values + spike

        levels = log_uniform("quantize_levels", self.quantize_levels_range).round()
        quantized = torch.round(values * levels[:, None]) / levels[:, None]
        values = torch.where(on["quantize"][:, None], quantized, values)
        record("quantize.levels", levels, on["quantize"])

        keep = is_ref[:, None]
        batch = CurveBatch(
            epochs=base.epochs,
            values=torch.where(keep, base.values, values),
            noiseless=torch.where(keep, base.noiseless, f),
            noise_std=sigma,
        )
        return batch, info


def _ar1(eta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Stationary unit-variance AR(1) noise ``(n, L)`` from standard normals ``eta`` ``(n, L)``.

    ``e_1 = eta_1`` and ``e_t = phi e_{t-1} + sqrt(1 - phi^2) eta_t``, computed as one causal
    convolution with the kernel ``phi^j`` by FFT (no loop over epochs, exact up to rounding).
    """
    n, length = eta.shape
    x = eta * torch.sqrt(1 - phi.square())[:, None]
    x[:, 0] = eta[:, 0]  # the stationary start: Var(e_1) = 1
    j = torch.arange(length, device=eta.device, dtype=eta.dtype)
    kernel = phi[:, None] ** j  # (n, L)
    nfft = 2 * length  # no wrap-around: the causal convolution of two length-L signals
    y = torch.fft.irfft(torch.fft.rfft(x, n=nfft) * torch.fft.rfft(kernel, n=nfft), n=nfft)
    return y[:, :length]
