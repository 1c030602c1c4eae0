"""One pre-norm Transformer encoder block (ViT paper eqs. 2–3)."""
from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .drop_path import DropPath
from .mlp import MLP
from .norm import make_norm


class Block(nn.Module):
    """``x + attn(norm(x))`` then ``x + mlp(norm(x))``, each branch with drop path.

    ``norm`` picks LayerNorm ('layer', the paper's) or BatchNorm over tokens ('batch',
    see ``vitlab.layers.norm``).

    Shape:
        (B, N, D) -> (B, N, D)
    """

    def __init__(self, *, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 dropout: float = 0.0, attn_dropout: float = 0.0, drop_path: float = 0.0,
                 norm_eps: float = 1e-6, attn_impl: str = "auto", norm: str = "layer"):
        super().__init__()
        self.norm1 = make_norm(norm, dim, eps=norm_eps)
        self.attn = Attention(dim=dim, heads=heads, qkv_bias=qkv_bias, attn_dropout=attn_dropout,
                              proj_dropout=dropout, impl=attn_impl)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = make_norm(norm, dim, eps=norm_eps)
        # round before int: a width given as a ratio (HF intermediate_size / hidden_size) must come
        # back exactly, and 224 * (976 / 224) is 975.999... in floating point.
        self.mlp = MLP(dim=dim, hidden_dim=int(round(dim * mlp_ratio, 6)), dropout=dropout)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        if return_weights:
            attn_out, weights = self.attn(self.norm1(x), return_weights=True)
        else:
            attn_out, weights = self.attn(self.norm1(x)), None
        x = x + self.drop_path1(attn_out)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return (x, weights) if return_weights else x
