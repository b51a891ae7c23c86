"""Training-recipe ablation: LL on reference-prior curves after a fixed curve budget per recipe.

Each recipe is ``lcpfn train`` with a few options changed from a common base (3 layers x 128,
1000 bins, batch 100, AdamW lr 1e-3, warm-up then cosine). Every run sees the same number of
curves, is trained in its own process with one torch thread (``--parallel`` runs side by side), and
is then scored by ``lcpfn evaluate`` on the same reference-prior curves (seed 0) at the paper's
cutoffs. The table reports wall time too, so recipes that cost more per curve can be judged by LL
per hour. Runs resume: a finished run or evaluation is reused, an interrupted run continues.

    python benchmarks/recipe_ablation.py --curves 40000 --parallel 2 --out artifacts/ablation
    python benchmarks/recipe_ablation.py --only base head256 --curves 40000
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# name -> (train options changed from the base, what the row tests)
RECIPES: dict[str, tuple[dict[str, object], str]] = {
    "base": ({}, "3x128, linear head, 1000 bins, batch 100, lr 1e-3"),
    "head256": ({"head-hidden": 256}, "MLP output head, 256 hidden"),
    "head512": ({"head-hidden": 512}, "MLP output head, 512 hidden"),
    "value32": ({"value-hidden": 32}, "MLP value encoder, 32 hidden"),
    "lr3e-3": ({"lr": 3e-3}, "learning rate 3e-3"),
    "lr3e-4": ({"lr": 3e-4}, "learning rate 3e-4"),
    "batch50": ({"batch-size": 50}, "batch 50 (twice the steps)"),
    "batch200": ({"batch-size": 200}, "batch 200 (half the steps)"),
    "bins500": ({"num-bins": 500}, "500 bins"),
    "wd0.01": ({"weight-decay": 0.01}, "AdamW weight decay 0.01"),
    "deep4": ({"n-layers": 4}, "4 layers"),
    "wide192": ({"d-model": 192, "d-ff": 768}, "width 192 (d_ff 768)"),
    "h512-lr3e-3": ({"head-hidden": 512, "lr": 3e-3}, "MLP head 512 + lr 3e-3"),
    "h512-lr3e-3-b50": ({"head-hidden": 512, "lr": 3e-3, "batch-size": 50}, "MLP head 512 + lr 3e-3 + batch 50"),
}
CUTOFFS = ("0.1", "0.2", "0.4", "0.8")


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}; see {log}")


def run_recipe(name: str, args: argparse.Namespace) -> dict[str, object]:
    opts, what = RECIPES[name]
    run_dir = Path(args.out) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "log.txt"
    state = run_dir / "training_state.json"
    finished = state.exists() and json.loads(state.read_text())["final"]
    if not finished:
        cmd = [sys.executable, "-m", "lcpfn.cli", "train", "--out-dir", str(run_dir), "--curves", str(args.curves),
               "--threads", str(args.threads), "--seed", str(args.seed), "--no-progress",
               "--checkpoint-every", "100", "--log-every", "100"]
        for k, v in opts.items():
            cmd += [f"--{k}", str(v)]
        if state.exists():
            cmd.append("--resume")
        _run(cmd, log)
    meta = json.loads(state.read_text())
    results = run_dir / "eval" / "results.csv"
    if not results.exists():
        _run([sys.executable, "-m", "lcpfn.cli", "evaluate", "-f", f"pfn:{run_dir}", "--n-curves", str(args.eval_curves),
              "--seed", "0", "--threads", str(args.threads), "--out", str(run_dir / "eval")], log)
    ll = {}
    with open(results, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            ll[str(float(row["cutoff"]))] = float(row["ll"])
    return {"recipe": name, "what": what, "curves": meta["curves_seen"], "wall_min": meta["wall_time_s"] / 60,
            **{c: ll[c] for c in CUTOFFS}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curves", type=int, default=40_000, help="training curves per recipe")
    ap.add_argument("--only", nargs="+", choices=sorted(RECIPES), help="run these recipes (default: all)")
    ap.add_argument("--parallel", type=int, default=2, help="recipes trained at once, one process each")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--eval-curves", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="artifacts/ablation")
    args = ap.parse_args()
    names = args.only or list(RECIPES)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda n: run_recipe(n, args), names))
    print(f"# recipe ablation: {args.curves} curves per recipe, {args.parallel} runs side by side, "
          f"{args.threads} thread(s) each, LL on {args.eval_curves} ReferencePrior curves (seed 0); "
          f"{(time.perf_counter() - t0) / 60:.1f} min in all\n")
    print("| recipe | change | curves | wall min | curves/s | LL 10 % | LL 20 % | LL 40 % | LL 80 % | mean LL |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lls = [r[c] for c in CUTOFFS]
        print(f"| {r['recipe']} | {r['what']} | {r['curves']} | {r['wall_min']:.1f} | "
              f"{r['curves'] / (60 * r['wall_min']):.0f} | " + " | ".join(f"{v:.3f}" for v in lls)
              + f" | {sum(lls) / 4:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
