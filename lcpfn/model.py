"""The PFN: a transformer over (epoch, value) tokens predicting a bar distribution per query.

Observed ("context") points are tokens ``embed(epoch) + embed(value)``; points to predict
("queries") are ``embed(epoch)`` alone. There is no positional encoding: the epoch *is* the
position. Every token attends only to context tokens, which we get without a mask by computing
keys and values from the context alone and queries from all tokens — one
``scaled_dot_product_attention`` call per layer, with no ``(T, T)`` mask materialised.

This file imports nothing else from the project but its config (``lcpfn.config.ModelConfig``),
so the model can be read on its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lcpfn.config import ModelConfig  # torch-free, so configs are built without importing torch

__all__ = ["PFN", "ModelConfig"]


class _Block(nn.Module):
    """Pre-norm transformer block whose attention reads only the first ``n_ctx`` tokens."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.dropout = cfg.dropout

    def forward(self, h: torch.Tensor, n_ctx: int) -> torch.Tensor:
        b, n, d = h.shape  # (B, C+Q, D)
        nh, hs = self.n_heads, d // self.n_heads
        a = self.ln1(h)
        q = self.q(a).view(b, n, nh, hs).transpose(1, 2)  # (B, nh, C+Q, hs)
        k, v = self.kv(a[:, :n_ctx]).view(b, n_ctx, 2, nh, hs).permute(2, 0, 3, 1, 4)  # (B, nh, C, hs) each
        p = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, nh, C+Q, hs)
        h = h + F.dropout(self.proj(att.transpose(1, 2).reshape(b, n, d)), p, self.training)
        return h + F.dropout(self.mlp(self.ln2(h)), p, self.training)


class PFN(nn.Module):
    """Maps observed points and query epochs to bar-distribution logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.epoch_encoder = nn.Linear(2, d)
        vh = config.value_hidden
        self.value_encoder = (
            nn.Sequential(nn.Linear(1, vh), nn.GELU(), nn.Linear(vh, d)) if vh else nn.Linear(1, d)
        )
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        hh = config.head_hidden
        self.head = (
            nn.Sequential(nn.Linear(d, hh), nn.GELU(), nn.Linear(hh, config.num_bins))
            if hh else nn.Linear(d, config.num_bins)
        )
        self.apply(self._init)
        for blk in self.blocks:  # scale residual projections by depth (GPT-2)
            assert isinstance(blk, _Block)
            out = blk.mlp[2]
            assert isinstance(out, nn.Linear)
            nn.init.normal_(blk.proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))
            nn.init.normal_(out.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def _embed_epochs(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` ``(B, N)`` epochs (>= 1, may be fractional) -> ``(B, N, D)``."""
        L = float(self.config.seq_len)
        feats = torch.stack([t / L, torch.log(t.clamp_min(1e-3)) / math.log(max(L, 2.0))], dim=-1)
        return self.epoch_encoder(feats)

    def forward(self, ctx_epochs: torch.Tensor, ctx_values: torch.Tensor, qry_epochs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, Q, num_bins)`` for the ``Q`` query epochs.

        Args:
            ctx_epochs: ``(B, C)`` epochs of the observed points, ``C >= 1``.
            ctx_values: ``(B, C)`` observed values (model space).
            qry_epochs: ``(B, Q)`` epochs to predict.
        """
        return self.head(self.features(ctx_epochs, ctx_values, qry_epochs))

    def features(self, ctx_epochs: torch.Tensor, ctx_values: torch.Tensor, qry_epochs: torch.Tensor) -> torch.Tensor:
        """What the head reads for each query, ``(B, Q, d_model)``: ``forward`` is ``head(features(...))``,
        so a caller can keep these and apply the head later (arguments as :meth:`forward`)."""
        n_ctx = ctx_epochs.shape[1]
        ctx = self._embed_epochs(ctx_epochs) + self.value_encoder(ctx_values.unsqueeze(-1))
        h = torch.cat([ctx, self._embed_epochs(qry_epochs)], dim=1)  # (B, C+Q, D)
        for blk in self.blocks:
            h = blk(h, n_ctx)
        return self.ln_f(h[:, n_ctx:])
