"""Training throughput (curves/s) of one training step on this machine, medians over steps.

    python benchmarks/train_throughput.py [--threads 2] [--steps 15]

Times prior sampling + forward + backward + AdamW step, as ``lcpfn.train`` does, for a few
model sizes and for float32 vs bf16 autocast, all in one process and one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lcpfn.bar_distribution import BarDistribution, borders_from_samples
from lcpfn.model import PFN, ModelConfig
from lcpfn.priors import ReferencePrior


def step_times(cfg: ModelConfig, *, batch: int, steps: int, bf16: bool, device: str) -> list[float]:
    prior = ReferencePrior()
    g = torch.Generator(device=device).manual_seed(0)
    bar = BarDistribution(borders_from_samples(prior.sample(2000, generator=g).values, cfg.num_bins)).to(device)
    model = PFN(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        b = prior.sample(batch, generator=g)
        cut = int(torch.randint(1, cfg.seq_len, (1,), generator=g, device=device).item())
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(b.epochs[:, :cut], b.values[:, :cut], b.epochs[:, cut:])
        loss = bar(logits, b.values[:, cut:]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # the first steps allocate
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    configs = {
        "3 x 128 (P1-size)": ModelConfig(d_model=128, n_layers=3, n_heads=4, d_ff=512),
        "3 x 256 (P2-size)": ModelConfig(d_model=256, n_layers=3, n_heads=4, d_ff=1024),
    }
    print(f"torch {torch.__version__}, device={args.device}, threads={args.threads}, batch={args.batch}")
    print("| model | precision | median s / step | curves / s |")
    print("|---|---|---|---|")
    for name, cfg in configs.items():
        for bf16 in (False, True):
            t = statistics.median(step_times(cfg, batch=args.batch, steps=args.steps, bf16=bf16, device=args.device))
            print(f"| {name} | {'bf16' if bf16 else 'float32'} | {t:.3f} | {args.batch / t:.0f} |")


if __name__ == "__main__":
    main()
