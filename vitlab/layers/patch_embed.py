"""Patch embedding: cut the image into P×P patches and project each to a D-dim token."""
from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """A convolution with kernel = stride = patch size.

    That is exactly "flatten each non-overlapping patch and apply one Linear layer"
    (ViT paper eq. 1), written as a single fused op; ``tests/test_patch_embed.py``
    checks the equivalence.

    Shape:
        input (B, C, H, W) -> output (B, H/P * W/P, D), patches in row-major order.
    """

    def __init__(self, *, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)
