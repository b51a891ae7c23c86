#!/usr/bin/env bash
# The exact commands behind benchmarks/results/evaluation.md: the paper's extrapolation benchmark
# (LL / MSE / 90 % coverage / seconds per curve at 10, 20, 40, 80 % cutoffs) for a PFN and the
# naive baselines, on reference-prior curves and on the real curves' dev split.
#
#   benchmarks/evaluate_reference.sh                     # the shipped "reference" model
#   MODEL=pfn:runs/big/final benchmarks/evaluate_reference.sh   # any checkpoint directory
#   MCMC_CURVES=5 benchmarks/evaluate_reference.sh       # also MCMC on the first 5 prior curves
#                                                        # (about 2 min per curve and cutoff on 1 core)
#
# Run from the repository root with the project venv active. Results (Markdown, CSV, PNG plots,
# and a per-curve cache that makes a rerun resume) go to $OUT (default artifacts/evaluation,
# git-ignored). One torch thread (--threads 1), as the paper's one-core timings.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-artifacts/evaluation}
MODEL=${MODEL:-pfn:reference}
N=${N:-1000}
DATA=${DATA:-../shared/data}
MCMC_CURVES=${MCMC_CURVES:-0}

# 1. N curves sampled from lcpfn.priors.ReferencePrior (seed 0): the paper's Table 3 setting.
lcpfn evaluate -f "$MODEL" last pow3 --n-curves "$N" --seed 0 --threads 1 --out "$OUT/prior"

# 2. The first N curves drawn by the reference package's own sampler (tests/fixtures).
lcpfn evaluate -f "$MODEL" last pow3 --curves tests/fixtures/reference_prior.npz --n-curves "$N" \
  --threads 1 --out "$OUT/reference_sampler"

# 3. Real curves, dev split only (the holdout split is reserved for final numbers; never tune on it):
#    LCBench-shaped surrogate curves (accuracy %, 52 epochs) and TaskSet (validation loss, 51 points).
if [ -d "$DATA" ]; then
  lcpfn evaluate -f "$MODEL" last "pow3@300" -d real --data-dir "$DATA" --split dev --n-curves "$N" \
    --threads 1 --out "$OUT/real_dev"
fi

# 4. Optional: the MCMC baseline (PyMC NUTS, 2 chains x 500 draws after 500 tuning steps) beside
#    the PFN on the first MCMC_CURVES prior curves of run 1.
if [ "$MCMC_CURVES" -gt 0 ]; then
  lcpfn evaluate -f "$MODEL" "mcmc@$MCMC_CURVES" --n-curves "$N" --seed 0 --threads 1 --out "$OUT/prior_mcmc"
fi
