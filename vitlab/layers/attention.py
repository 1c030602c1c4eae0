"""Multi-head self-attention with one fused QKV projection (Vaswani et al. 2017)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

IMPLS = ("auto", "sdpa", "explicit")  # by device | fused kernel | the paper's steps written out (can return weights)


class Attention(nn.Module):
    """Multi-head self-attention.

    Two paths compute the same thing: ``sdpa`` calls PyTorch's fused
    ``scaled_dot_product_attention`` (flash / memory-efficient kernels where
    available); ``explicit`` writes the paper's steps out and can return the
    attention weights (for rollout and attention-distance analysis). ``auto`` takes
    ``sdpa`` on GPUs and ``explicit`` on CPUs: for a ViT's short sequences (17-257
    tokens) the CPU flash kernel is no faster than two batched matmuls and a softmax,
    and under torch.compile, which fuses the scale and softmax into one loop, it is
    slower (a Fashion-MNIST training step 1.1-1.2x faster explicit; benchmarks/step_speed.md).

    Args:
        dim: token width D.
        heads: number of heads H; D must be divisible by H.
        qkv_bias: bias on the Q, K, V projections.
        attn_dropout: dropout on the attention weights (training only).
        proj_dropout: dropout after the output projection.
        impl: 'auto', 'sdpa' or 'explicit'.

    Shape:
        (B, N, D) -> (B, N, D); with ``return_weights`` also (B, H, N, N).
    """

    def __init__(self, *, dim: int, heads: int, qkv_bias: bool = True, attn_dropout: float = 0.0,
                 proj_dropout: float = 0.0, impl: str = "auto"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        if impl not in IMPLS:
            raise ValueError(f"attention impl={impl!r} is not one of {IMPLS}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.impl = impl
        self.attn_dropout = attn_dropout
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.to_out = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        qkv = self.to_qkv(x)  # (B, N, 3D)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.heads)  # each (B, H, N, d)
        weights = None
        fused = self.impl == "sdpa" or (self.impl == "auto" and x.device.type != "cpu")
        if fused and not return_weights:
            dropout = self.attn_dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, H, N, d)
        else:
            scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, N, N): QKᵀ/√d
            weights = scores.softmax(dim=-1)
            attn = F.dropout(weights, self.attn_dropout, self.training)
            out = attn @ v  # (B, H, N, d): weighted sum of V
        out = rearrange(out, "b h n d -> b n (h d)")  # heads concatenated, (B, N, D)
        out = self.proj_drop(self.to_out(out))
        return (out, weights) if return_weights else out
