"""Encoder norms: LayerNorm (the ViT default) or BatchNorm over tokens.

LayerNorm normalises each token over its D features. ``TokenBatchNorm`` instead
normalises each feature over every token of every image in the batch, as BatchNorm
does for the channels of a CNN (Ioffe & Szegedy 2015); Yao et al. 2021, "Leveraging
Batch Normalization for Vision Transformers", study this swap in ViTs.
"""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("layer", "batch")


class TokenBatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d(D)`` applied to tokens: statistics over batch × tokens per feature.

    A subclass rather than a wrapper, so the state-dict keys are those of BatchNorm1d
    (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``)
    at the norm's own name, and ``init_weights`` treats it as any BatchNorm1d. In train
    mode the batch statistics are used (biased variance) and the running statistics
    move by ``momentum`` (unbiased variance); in eval mode the running statistics are used.

    Shape:
        (B, N, D) -> (B, N, D), or any (..., D).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = super().forward(x.reshape(-1, shape[-1]))  # (B·N, D): one row per token
        return x.reshape(shape)  # (B, N, D)


def make_norm(kind: str, dim: int, eps: float = 1e-6) -> nn.Module:
    """The encoder norm named ``kind`` ('layer' or 'batch') over ``dim`` features.

    'layer' is a plain ``nn.LayerNorm`` so its keys (``norm1.weight``, ...) are the
    ones the HF mapping expects. Both use ``eps``.
    """
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "batch":
        return TokenBatchNorm(dim, eps=eps)
    raise ValueError(f"norm={kind!r} is not one of {NORMS}")
