"""Training a PFN on a curve prior: one config, one function, exact resume, optional DDP.

Each step samples a fresh batch from the prior (on the training device), picks one cutoff
``c ~ U{1..L-1}`` for the batch, feeds the first ``c`` points as context and scores the bar
distribution's negative log density of the remaining ``L - c`` noisy values.

Run under ``torchrun --nproc_per_node N`` to train with DistributedDataParallel: each rank
draws its own curves (``batch_size / N`` per rank) and rank 0 writes checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist

from lcpfn import checkpoint as ckpt
from lcpfn.bar_distribution import BarDistribution, borders_from_samples
from lcpfn.errors import CheckpointError, InputError
from lcpfn.model import PFN, ModelConfig
from lcpfn.priors import get_prior, prior_to_dict

if TYPE_CHECKING:
    from lcpfn.priors import Prior

log = logging.getLogger(__name__)

# Settings that must be identical when a run is resumed; the rest (device, checkpoint cadence,
# threads) may change between sessions without changing the result.
_RUN_DEFINING = (
    "prior", "seq_len", "num_bins", "d_model", "n_layers", "n_heads", "d_ff", "dropout", "head_hidden",
    "value_hidden", "steps", "batch_size", "lr", "min_lr", "warmup_steps", "weight_decay", "beta2", "grad_clip", "seed",
    "border_curves", "init_from", "prior_settings", "budget",
)
# Run-defining fields added after runs already existed, with the value those runs used.
_ADDED_LATER = {"head_hidden": 0, "value_hidden": 0, "init_from": None, "prior_settings": None, "budget": None}


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Model fields mirror :class:`~lcpfn.model.ModelConfig`.

    ``init_from``: a checkpoint directory whose weights and bin borders start this run (a second
    training stage, or fine-tuning on another prior); its architecture must match these fields.
    The optimizer and learning-rate schedule start fresh.

    ``prior_settings``: fields of the prior's dataclass to change from their defaults, e.g.
    ``{"p_step": 0.3, "step_width_range": (0.05, 0.3)}`` for ``prior="extended"``. Stored as JSON
    (pairs become lists); empty means none.

    ``budget``: train on runs of this many epochs (at most ``seq_len``) instead of ``seq_len``:
    prior curves are drawn with ``seq_len=budget``, so the components an extended prior ties to
    training progress (a late rise ending with the run, a step, overfitting, ...) happen within
    ``budget`` epochs, and only epochs up to ``budget`` are observed and predicted. Epochs are still
    embedded as ``t / seq_len``, so a budget run can start from (``init_from``) a ``seq_len`` model.
    The checkpoint records the budget and :class:`~lcpfn.LCPFN` reads it as the model's native
    length: a run of ``budget`` epochs is forecast as such, a longer one is subsampled onto it.
    ``None`` (the default) is ``seq_len``.
    """

    out_dir: str
    prior: str = "reference"
    prior_settings: dict[str, Any] | None = None
    seq_len: int = 100
    num_bins: int = 1000
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.0
    head_hidden: int = 0
    value_hidden: int = 0
    steps: int = 2000
    batch_size: int = 100
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 200
    weight_decay: float = 0.0
    beta2: float = 0.99
    grad_clip: float = 1.0
    seed: int = 0
    border_curves: int = 20_000
    init_from: str | None = None
    budget: int | None = None
    device: str = "auto"
    precision: Literal["auto", "float32", "bf16"] = "auto"
    compile: bool = False
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        positive = ("seq_len", "num_bins", "steps", "batch_size", "checkpoint_every", "log_every", "border_curves")
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1 but got {getattr(self, name)}")
        if self.seq_len < 2:
            raise InputError(f"seq_len must be at least 2 but got {self.seq_len}")
        if self.budget is not None and (
            isinstance(self.budget, bool) or not isinstance(self.budget, int) or not 2 <= self.budget <= self.seq_len
        ):
            raise InputError(f"budget must be an integer in [2, seq_len={self.seq_len}] or None, but got {self.budget!r}")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise InputError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0:
            raise InputError(f"warmup_steps must be at least 0 but got {self.warmup_steps}")
        if self.precision not in ("auto", "float32", "bf16"):
            raise InputError(f"precision must be 'auto', 'float32' or 'bf16', but got {self.precision!r}")
        settings = self.prior_settings
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise InputError(f"prior_settings must be a mapping of prior fields to values but got {settings!r}")
            try:  # the JSON form, as stored in checkpoints (pairs become lists), so a resume compares alike
                settings = json.loads(json.dumps(dict(settings), allow_nan=False))
            except (TypeError, ValueError):
                raise InputError(f"prior_settings must hold finite JSON values but got {settings!r}") from None
            object.__setattr__(self, "prior_settings", settings or None)
        self.make_prior()  # validates the prior and its settings
        self.model_config()  # validates the model fields

    @property
    def run_length(self) -> int:
        """Epochs per training curve: ``budget``, or ``seq_len`` without one."""
        return self.seq_len if self.budget is None else self.budget

    def make_prior(self) -> "Prior":
        """The prior ``prior`` with ``prior_settings`` applied (lists as tuples: the ranges)."""
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in (self.prior_settings or {}).items()}
        try:
            return get_prior(self.prior, **settings)
        except (TypeError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(("prior ", "unknown prior")):
                message = f"prior {self.prior!r}: {message}"
            raise InputError(message) from None

    def model_config(self) -> ModelConfig:
        try:
            return ModelConfig(**{f.name: getattr(self, f.name) for f in fields(ModelConfig)})
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
        warm = min(self.warmup_steps, self.steps // 4)
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = (step - warm) / max(1, self.steps - warm)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    step: int
    curves_seen: int
    wall_time_s: float
    loss: float
    finished: bool


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was asked for, but CUDA is not available")
    return device


def _warm_start(config: TrainConfig, model_cfg: ModelConfig, device: torch.device) -> tuple[PFN, BarDistribution]:
    """The weights and bin borders of the checkpoint ``config.init_from`` (a directory, or the name
    of a shipped model such as ``"default"``), checked against ``model_cfg``."""
    src = Path(config.init_from)
    if not src.is_dir():
        from lcpfn.predictor import _resolve, shipped_models

        if str(config.init_from) in shipped_models():
            src = _resolve(config.init_from)[1]
    try:
        model, bar, _ = ckpt.load_model(src, device=device)
    except CheckpointError as exc:
        raise InputError(f"init_from: {exc}") from None
    if model.config != model_cfg:
        diff = ", ".join(
            f"{f.name}={getattr(model_cfg, f.name)!r} (checkpoint has {getattr(model.config, f.name)!r})"
            for f in fields(ModelConfig) if getattr(model_cfg, f.name) != getattr(model.config, f.name)
        )
        raise InputError(f"init_from {str(src)!r} has another architecture: {diff}")
    return model, bar


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {
        f"optim.{idx}.{name}": value for idx, st in sd["state"].items() for name, value in st.items()
        if isinstance(value, torch.Tensor)
    }
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    time_limit_s: float | None = None,
    stop_at_step: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a PFN as ``config`` says; returns where it stopped.

    ``time_limit_s`` and ``stop_at_step`` end this session early with a checkpoint, so a
    later ``resume=True`` continues exactly where it stopped (same batches, same weights).
    """
    world, rank, local_rank = _dist_info()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if (config.device != "cpu" and torch.cuda.is_available()) else "gloo"
        dist.init_process_group(backend)
    if config.batch_size % world:
        raise InputError(f"batch_size ({config.batch_size}) must be divisible by the number of processes ({world})")
    device = _resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")

    out = Path(config.out_dir)
    state_json = out / ckpt.STATE_JSON
    prior = config.make_prior()
    model_cfg = config.model_config()

    if state_json.exists() and not resume:
        raise InputError(
            f"{str(out)!r} already holds a training run; pass resume=True (--resume) to continue it "
            "or choose another output directory"
        )
    torch.manual_seed(config.seed)  # weight initialisation
    model = PFN(model_cfg).to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed * 1_000_003 + rank)
    step, curves_seen, wall = 0, 0, 0.0
    loss_ema = float("nan")

    if resume and state_json.exists():
        meta = ckpt.read_json(state_json)
        saved = meta.get("config", {})
        saved = {**_ADDED_LATER, **saved}
        changed = [k for k in _RUN_DEFINING if saved.get(k) != asdict(config)[k]]
        if changed:
            raise InputError(
                f"cannot resume {str(out)!r} with different settings: "
                + ", ".join(f"{k}={asdict(config)[k]!r} (run has {saved.get(k)!r})" for k in changed)
            )
        if meta.get("world_size", 1) != world:
            raise InputError(f"{str(out)!r} was trained with {meta.get('world_size')} processes, not {world}")
        model, bar, model_meta = ckpt.load_model(out, device=device)
        if model_meta.get("step") != meta["step"]:
            raise CheckpointError(f"{str(out)!r}: weights (step {model_meta.get('step')}) and state (step {meta['step']}) disagree")
        model.train()
        state = ckpt.read_tensors(out / ckpt.STATE_FILE)
        gen.set_state(state[f"rng.{rank}"].to(torch.uint8).cpu())
        step, curves_seen, wall = meta["step"], meta["curves_seen"], meta["wall_time_s"]
        loss_ema = meta.get("loss_ema", float("nan"))
        log.info("resuming %s at step %d", out, step)
    elif config.init_from is not None:
        # Warm start: another run's weights and bin borders, a fresh optimizer and schedule.
        model, bar = _warm_start(config, model_cfg, device)
        model.train()
        state, meta = None, None
    else:
        # Bin borders from prior samples with their own seed, identical on every rank.
        border_gen = torch.Generator(device=device).manual_seed(config.seed + 7919)
        values = prior.sample(config.border_curves, seq_len=config.run_length, generator=border_gen).values
        bar = BarDistribution(borders_from_samples(values, config.num_bins)).to(device)
        state, meta = None, None

    opt = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, config.beta2), weight_decay=config.weight_decay
    )
    if state is not None:
        _load_optimizer(opt, state, meta["optimizer"])
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    fwd = torch.compile(ddp_model, dynamic=True) if config.compile else ddp_model

    def save(final: bool) -> None:
        states = [gen.get_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, gen.get_state().cpu())
            states = gathered
        if rank != 0:
            return
        out.mkdir(parents=True, exist_ok=True)
        extra = {"step": step, "curves_seen": curves_seen, "train_config": asdict(config), "final": final}
        if config.budget is not None:
            extra["budget"] = config.budget  # LCPFN's native length
        opt_tensors, opt_meta = _optimizer_tensors(opt)
        rng = {f"rng.{r}": s.cpu() for r, s in enumerate(states)}
        ckpt.write_tensors(out / ckpt.STATE_FILE, {**opt_tensors, **rng}, metadata={"step": str(step)})
        ckpt.save_model(out, model, bar, prior=prior_to_dict(prior), extra=extra)
        ckpt.write_json(state_json, {
            "step": step, "curves_seen": curves_seen, "wall_time_s": wall, "loss_ema": loss_ema,
            "config": asdict(config), "world_size": world, "optimizer": opt_meta, "final": final,
        })

    per_rank = config.batch_size // world
    L = config.run_length
    bar_iter = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar_iter = tqdm(total=config.steps, initial=step, unit="step", dynamic_ncols=True, desc="train")
    t_start = time.perf_counter()
    t_session = t_start
    finished = False
    model.train()
    try:
        while step < config.steps:
            if stop_at_step is not None and step >= stop_at_step:
                break
            if time_limit_s is not None and time.perf_counter() - t_session > time_limit_s:
                break
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step)
            batch = prior.sample(per_rank, seq_len=L, generator=gen)
            cut = int(torch.randint(1, L, (1,), generator=gen, device=device).item())
            x, y = batch.epochs, batch.values
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = fwd(x[:, :cut], y[:, :cut], x[:, cut:])
            loss = bar(logits, y[:, cut:]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            step += 1
            curves_seen += config.batch_size
            now = time.perf_counter()
            wall += now - t_start
            t_start = now
            lv = loss.item()
            loss_ema = lv if math.isnan(loss_ema) else 0.98 * loss_ema + 0.02 * lv
            if bar_iter is not None:
                bar_iter.update(1)
                if step % 10 == 0 or step == config.steps:
                    bar_iter.set_postfix(loss=f"{loss_ema:.3f}", curves_s=f"{curves_seen / max(wall, 1e-9):.0f}", refresh=False)
            if rank == 0 and (step % config.log_every == 0):
                log.info("step %d loss %.4f lr %.2e curves/s %.0f", step, loss_ema, config.lr_at(step), curves_seen / max(wall, 1e-9))
            if step % config.checkpoint_every == 0 and step < config.steps:
                save(final=False)
        finished = step >= config.steps
        save(final=finished)
    except KeyboardInterrupt:
        log.warning("interrupted at step %d; saving a checkpoint to resume from", step)
        save(final=False)
        raise
    finally:
        if bar_iter is not None:
            bar_iter.close()
    if world > 1:
        dist.barrier()
    return TrainResult(out_dir=out, step=step, curves_seen=curves_seen, wall_time_s=wall, loss=loss_ema, finished=finished)
