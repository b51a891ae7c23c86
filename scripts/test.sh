#!/usr/bin/env bash
# Install everything the test suite needs into .venv (CPU torch first) and run the whole suite.
# Used by the README and by CI (.ci/run). Safe to rerun: installs are idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# System services and tools some tests drive for real (each script is idempotent).
for setup in scripts/setup-*.sh; do
  [ -e "$setup" ] || continue
  bash "$setup"
done

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch, before anything that depends on torch can pull a CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[all]"

# Lint and type-check the package (settings in pyproject.toml), then the whole test suite.
python -m ruff check lcpfn priors integrations app
python -m mypy
python -m pytest "$@"
