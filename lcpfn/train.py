"""Training a PFN on a curve prior: one config, one function, exact resume, optional DDP.

Each step samples a fresh batch from the prior (on the training device), picks one cutoff
``c ~ U{1..L-1}`` for the batch, feeds the first ``c`` points as context and scores the bar
distribution's negative log density of the remaining ``L - c`` noisy values.

Run under ``torchrun --nproc_per_node N`` to train with DistributedDataParallel: each rank
draws its own curves (``batch_size / N`` per rank) and rank 0 writes checkpoints.

Randomness comes from explicit generators (the prior's batches and cutoffs) and, for weight
initialisation and dropout, from torch's global generators inside ``torch.random.fork_rng``:
seeded from ``TrainConfig.seed``, saved in every checkpoint, and the caller's global state is
left as it was.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.distributed as dist

from lcpfn import checkpoint as ckpt
from lcpfn.bar_distribution import BarDistribution, borders_from_samples
from lcpfn.config import RUN_DEFINING, TrainConfig
from lcpfn.errors import CheckpointError, InputError
from lcpfn.model import PFN, ModelConfig
from lcpfn.priors import prior_to_dict

__all__ = ["TrainConfig", "TrainResult", "train"]

log = logging.getLogger(__name__)

StopReason = Literal["finished", "stop_at_step", "time_limit", "SIGTERM"]
# Why a session ends before its last step, in the order ranks agree on it (the highest wins).
_STOPS = (None, "stop_at_step", "time_limit", "SIGTERM", "SIGINT")


@dataclass(frozen=True)
class TrainResult:
    """Where a training session ended. ``stop_reason`` says why: ``"finished"`` (all steps
    done), ``"stop_at_step"``, ``"time_limit"`` or ``"SIGTERM"`` (the process was asked to stop;
    the checkpoint is written)."""

    out_dir: Path
    step: int
    curves_seen: int
    wall_time_s: float
    loss: float
    finished: bool
    stop_reason: StopReason = "finished"


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


def _warm_start(init_from: str, model_cfg: ModelConfig, device: torch.device) -> tuple[PFN, BarDistribution]:
    """The weights and bin borders of the checkpoint ``init_from`` (a directory, or the name of a
    shipped model such as ``"default"``), checked against ``model_cfg``."""
    src = Path(init_from)
    if not src.is_dir():
        from lcpfn.predictor import _resolve, shipped_models

        if init_from in shipped_models():
            src = _resolve(init_from)[1]
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


def _global_generator(device: torch.device) -> torch.Generator:
    """Torch's global generator for ``device``: weight initialisation (on the CPU) and dropout."""
    if device.type == "cuda":
        torch.cuda.init()  # fills torch.cuda.default_generators
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator


def _agree(reason: str | None, device: torch.device) -> str | None:
    """The stop reason every DDP rank acts on: the strongest any rank has (ranks see a signal or
    the clock at different steps, and must all leave the loop at the same one)."""
    code = torch.tensor([_STOPS.index(reason)], device=device)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    return _STOPS[int(code.item())]


@dataclass
class _StopRequest:
    signal: str | None = None


@contextmanager
def _stop_on_signals() -> Iterator[_StopRequest]:
    """While training (in the main thread), SIGINT and SIGTERM ask the loop to stop at the next
    step boundary, where the state is consistent and a checkpoint can be written; a second
    SIGINT raises KeyboardInterrupt at once. The previous handlers are restored afterwards."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        request.signal = signal.Signals(signum).name
        again = "; press Ctrl-C again to stop at once, without a checkpoint" if signum == signal.SIGINT else ""
        log.warning("%s: stopping at the end of this step with a checkpoint%s", request.signal, again)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN:  # a process started to ignore a signal keeps ignoring it
            previous[sig] = old
            signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


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
    ``resume=True`` on a directory without a run starts one.

    Called from the main thread, SIGTERM and SIGINT (Ctrl-C) stop the session at the next step
    boundary with a checkpoint: after SIGTERM ``train`` returns (``stop_reason="SIGTERM"``),
    after SIGINT it raises :class:`KeyboardInterrupt`; a second Ctrl-C stops at once without
    one. Torch's global random state and thread count are as before when ``train`` returns.
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
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    threads = torch.get_num_threads()
    cuda_devices = [device.index] if device.type == "cuda" else []
    with _stop_on_signals() as stop, torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        try:
            if config.threads:
                torch.set_num_threads(config.threads)
            return _train(config, device=device, world=world, rank=rank, stop=stop, resume=resume,
                          time_limit_s=time_limit_s, stop_at_step=stop_at_step, progress=progress)
        finally:
            torch.set_num_threads(threads)


def _train(
    config: TrainConfig,
    *,
    device: torch.device,
    world: int,
    rank: int,
    stop: _StopRequest,
    resume: bool,
    time_limit_s: float | None,
    stop_at_step: int | None,
    progress: bool,
) -> TrainResult:
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    out = Path(config.out_dir)
    prior = config.make_prior()
    model_cfg = config.model_config()

    recorded = ckpt.read_run_state(out)
    if recorded is not None and not resume:
        raise InputError(
            f"{str(out)!r} already holds a training run; pass resume=True (--resume) to continue it "
            "or choose another output directory"
        )
    if rank == 0:
        ckpt.remove_stale(out)  # what a killed save left behind
    _global_generator(torch.device("cpu")).manual_seed(config.seed)  # weight initialisation, on the CPU
    model = PFN(model_cfg).to(device)
    _global_generator(device).manual_seed(config.seed * 1_000_003 + rank + 104_729)  # dropout
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed * 1_000_003 + rank)
    step, curves_seen, wall = 0, 0, 0.0
    loss_ema = float("nan")
    saved: tuple[int, bool] | None = None  # (step, final) of the checkpoint on disk, if it is this state
    optimizer_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None

    if recorded is not None:
        ck_dir, meta = recorded
        saved_config, mine = TrainConfig.recorded(meta.get("config", {})), asdict(config)
        changed = [k for k in RUN_DEFINING if saved_config[k] != mine[k]]
        if changed:
            raise InputError(
                f"cannot resume {str(out)!r} with different settings: "
                + ", ".join(f"{k}={mine[k]!r} (run has {saved_config[k]!r})" for k in changed)
            )
        if meta.get("world_size", 1) != world:
            raise InputError(f"{str(out)!r} was trained with {meta.get('world_size')} processes, not {world}")
        model, bar, model_meta = ckpt.load_model(ck_dir, device=device)
        if model_meta.get("step") != meta["step"]:
            raise CheckpointError(
                f"{str(ck_dir)!r}: weights (step {model_meta.get('step')}) and state (step {meta['step']}) disagree"
            )
        model.train()
        state = ckpt.read_tensors(ck_dir / ckpt.STATE_FILE)
        optimizer_state = (state, meta["optimizer"])
        gen.set_state(state[f"rng.{rank}"].to(torch.uint8).cpu())
        if f"global_rng.{rank}" in state:  # checkpoints written before it was saved had no dropout
            _global_generator(device).set_state(state[f"global_rng.{rank}"].to(torch.uint8).cpu())
        step, curves_seen, wall = meta["step"], meta["curves_seen"], meta["wall_time_s"]
        loss_ema = meta.get("loss_ema", float("nan"))
        saved = (step, bool(meta.get("final")))
        log.info("resuming %s at step %d", out, step)
    elif config.init_from is not None:
        # Warm start: another run's weights and bin borders, a fresh optimizer and schedule.
        model, bar = _warm_start(config.init_from, model_cfg, device)
        model.train()
    else:
        # Bin borders from prior samples with their own seed, identical on every rank.
        border_gen = torch.Generator(device=device).manual_seed(config.seed + 7919)
        values = prior.sample(config.border_curves, seq_len=config.run_length, generator=border_gen).values
        bar = BarDistribution(borders_from_samples(values, config.num_bins)).to(device)

    opt = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, config.beta2), weight_decay=config.weight_decay
    )
    if optimizer_state is not None:
        _load_optimizer(opt, *optimizer_state)
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    fwd = torch.compile(ddp_model, dynamic=True) if config.compile else ddp_model

    def save(final: bool) -> None:
        rngs = {"rng": gen.get_state().cpu(), "global_rng": _global_generator(device).get_state().cpu()}
        gathered: list[Any] = [rngs]
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, rngs)
        if rank != 0:
            return
        extra = {"step": step, "curves_seen": curves_seen, "train_config": asdict(config), "final": final}
        if config.budget is not None:
            extra["budget"] = config.budget  # LCPFN's native length
        opt_tensors, opt_meta = _optimizer_tensors(opt)
        rng = {f"{name}.{r}": s for r, states in enumerate(gathered) for name, s in states.items()}
        run_state = {
            "step": step, "curves_seen": curves_seen, "wall_time_s": wall, "loss_ema": loss_ema,
            "config": asdict(config), "world_size": world, "optimizer": opt_meta, "final": final,
        }
        files = ckpt.training_files(model, bar, prior=prior_to_dict(prior), extra=extra,
                                    state_tensors={**opt_tensors, **rng}, state=run_state)
        summary = {k: run_state[k] for k in ("step", "final", "curves_seen", "wall_time_s")}
        ckpt.commit_checkpoint(out, files, name=f"step-{step:07d}", summary=summary)

    per_rank = config.batch_size // world
    L = config.run_length
    bar_iter = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar_iter = tqdm(total=config.steps, initial=step, unit="step", dynamic_ncols=True, desc="train")
    t_start = time.perf_counter()
    t_session = t_start
    reason: str | None = None  # one of _STOPS
    model.train()
    try:
        while step < config.steps:
            if stop_at_step is not None and step >= stop_at_step:
                reason = "stop_at_step"
            elif time_limit_s is not None and time.perf_counter() - t_session > time_limit_s:
                reason = "time_limit"
            else:
                reason = stop.signal
            if world > 1:
                reason = _agree(reason, device)
            if reason is not None:
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
                    speed = f"{curves_seen / max(wall, 1e-9):.0f}"
                    bar_iter.set_postfix(loss=f"{loss_ema:.3f}", curves_s=speed, refresh=False)
            if rank == 0 and (step % config.log_every == 0):
                log.info("step %d loss %.4f lr %.2e curves/s %.0f", step, loss_ema, config.lr_at(step),
                         curves_seen / max(wall, 1e-9))
            if step % config.checkpoint_every == 0 and step < config.steps:
                save(final=False)
                saved = (step, False)
        finished = step >= config.steps
        if saved != (step, finished):
            save(final=finished)
    finally:
        if bar_iter is not None:
            bar_iter.close()
    if world > 1:
        dist.barrier()
    if reason == "SIGINT":
        log.warning("interrupted at step %d; the checkpoint in %s resumes from there", step, out)
        raise KeyboardInterrupt
    return TrainResult(out_dir=out, step=step, curves_seen=curves_seen, wall_time_s=wall, loss=loss_ema,
                       finished=finished, stop_reason="finished" if finished else cast(StopReason, reason))
