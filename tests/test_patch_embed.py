"""PatchEmbed (vitlab/layers/patch_embed.py) against cutting the image into patches by hand.

ViT paper eq. 1: flatten each P×P patch and apply one Linear layer. The module does this
with a convolution (kernel = stride = P); here the patches are cut two independent ways
(reshape/permute and ``F.unfold``) and projected with ``F.linear`` using the conv's own
weight reshaped to (D, C·P·P).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitlab.layers import PatchEmbed

# (patch, channels, height, width, dim): square and non-square images, 1–4 channels, P = 1 too
CASES = [
    (4, 3, 16, 16, 8),
    (8, 1, 16, 32, 5),
    (5, 2, 20, 10, 7),
    (1, 4, 3, 2, 6),
    (16, 3, 32, 48, 12),
]


def _patches_by_reshape(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*P*P), patches in row-major order, each flattened as (C, P, P)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def _make(p, c, d):
    torch.manual_seed(0)
    pe = PatchEmbed(patch_size=p, in_chans=c, dim=d).double()
    with torch.no_grad():
        pe.proj.bias.normal_()  # a non-zero bias, so a dropped bias would show
    return pe


@pytest.mark.parametrize("p,c,h,w,d", CASES)
def test_equals_linear_on_flattened_patches(p, c, h, w, d):
    pe = _make(p, c, d)
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    weight = pe.proj.weight.reshape(d, -1)  # (D, C*P*P)
    expected = F.linear(_patches_by_reshape(x, p), weight, pe.proj.bias)
    out = pe(x)
    assert out.shape == (2, (h // p) * (w // p), d)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p,c,h,w,d", CASES)
def test_equals_linear_on_unfolded_patches(p, c, h, w, d):
    pe = _make(p, c, d)
    x = torch.randn(3, c, h, w, dtype=torch.float64)
    patches = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)  # (B, N, C*P*P), row-major blocks
    expected = patches @ pe.proj.weight.reshape(d, -1).T + pe.proj.bias
    torch.testing.assert_close(pe(x), expected, rtol=1e-12, atol=1e-12)


def test_patch_order_is_row_major():
    """An image that is zero except one patch lights up exactly token row*(W/P) + col."""
    p, c, h, w, d = 4, 2, 12, 20, 3  # a 3 x 5 grid
    pe = _make(p, c, d)
    with torch.no_grad():
        pe.proj.bias.zero_()
    for row, col in [(0, 0), (0, 4), (1, 2), (2, 0), (2, 4)]:
        x = torch.zeros(1, c, h, w, dtype=torch.float64)
        x[..., row * p:(row + 1) * p, col * p:(col + 1) * p] = torch.rand(c, p, p, dtype=torch.float64) + 0.5
        out = pe(x)[0]  # (N, D)
        nonzero = out.abs().sum(dim=1).nonzero().flatten().tolist()
        assert nonzero == [row * (w // p) + col]
