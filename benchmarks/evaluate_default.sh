#!/usr/bin/env bash
# The exact commands behind the default model's validation (issue 7, BENCHMARKS.md §8): the
# default model beside the reference model, the MCMC baseline, last value and a pow3 fit.
#
#   benchmarks/evaluate_default.sh                                   # the shipped "default" model
#   DEFAULT=pfn:runs/default-v1 benchmarks/evaluate_default.sh       # any checkpoint directory
#   MCMC_CURVES=0 benchmarks/evaluate_default.sh                     # leave MCMC out
#
# Real curves: the HOLDOUT split of every source in ../shared/data (configurations picked by a hash
# of source and config id; nothing was ever tuned on it), fed as a user would: raw values with their
# direction and what is known of their range (accuracies: their range; losses: (0, none), the rest
# inferred from each prefix). Scores are in the harness's normalised units (lcpfn/evaluation/).
# Run from the repository root with the project venv active; results, plots and a per-curve cache
# (a rerun resumes) go to $OUT (default artifacts/default_eval, git-ignored). One torch thread.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-artifacts/default_eval}
DEFAULT=${DEFAULT:-pfn:default}
N=${N:-500}
DATA=${DATA:-../shared/data}
MCMC_CURVES=${MCMC_CURVES:-4}

MCMC=()
if [ "$MCMC_CURVES" -gt 0 ]; then MCMC=("mcmc@$MCMC_CURVES"); fi

# 1. Real curves, holdout split, every source: default vs reference vs MCMC vs the naive baselines.
lcpfn evaluate -f "default=$DEFAULT" reference=pfn:reference "${MCMC[@]}" last "pow3@300" \
  -d real --data-dir "$DATA" --sources all --split holdout --inputs raw --n-curves "$N" \
  --threads 1 --out "$OUT/real_holdout"

# 2. What generality costs on the paper's setting: 1,000 reference-prior curves (seed 0).
lcpfn evaluate -f "default=$DEFAULT" reference=pfn:reference --n-curves 1000 --seed 0 --threads 1 \
  --out "$OUT/prior"

# 3. And what it buys on its own prior: 1,000 extended-prior curves (seed 100, not a training seed).
lcpfn evaluate -f "default=$DEFAULT" reference=pfn:reference --prior extended --n-curves 1000 --seed 100 \
  --threads 1 --out "$OUT/extended_prior"
