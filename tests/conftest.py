"""Shared fixtures: a seed for every test and a tiny trained checkpoint."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from lcpfn.train import TrainConfig, train

TINY = dict(seq_len=100, num_bins=50, d_model=32, n_layers=2, n_heads=2, d_ff=64, batch_size=16,
            border_curves=2000, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=1000)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def tiny_config(out_dir, **overrides) -> TrainConfig:
    return TrainConfig(out_dir=str(out_dir), **{**TINY, "steps": 40, **overrides})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny PFN (2 layers, width 32, 50 bins) trained for 40 steps on the reference prior."""
    out = tmp_path_factory.mktemp("tiny_model")
    train(tiny_config(out), progress=False)
    return out
