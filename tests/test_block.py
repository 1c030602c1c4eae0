"""Block (vitlab/layers/block.py) against ViT eqs. 2–3 written out with functional ops.

z' = z + MSA(LN1(z));  z'' = z' + MLP(LN2(z')). The reference reads only the Block's
parameters, never calls its submodules.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitlab.layers import Block


def _reference_block(block: Block, x: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
    b, n, dim = x.shape
    d = dim // heads
    n1, n2, at, mlp = block.norm1, block.norm2, block.attn, block.mlp

    h = F.layer_norm(x, (dim,), n1.weight, n1.bias, eps)
    qkv = F.linear(h, at.to_qkv.weight, at.to_qkv.bias)  # (B, N, 3D)
    q, k, v = qkv.split(dim, dim=-1)
    q, k, v = (t.reshape(b, n, heads, d).transpose(1, 2) for t in (q, k, v))  # (B, H, N, d)
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
    heads_out = (attn @ v).transpose(1, 2).reshape(b, n, dim)
    x = x + F.linear(heads_out, at.to_out.weight, at.to_out.bias)

    h = F.layer_norm(x, (dim,), n2.weight, n2.bias, eps)
    h = F.linear(F.gelu(F.linear(h, mlp.fc1.weight, mlp.fc1.bias)), mlp.fc2.weight, mlp.fc2.bias)
    return x + h


@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
@pytest.mark.parametrize("dim,heads,mlp_ratio,eps", [(16, 4, 4.0, 1e-6), (24, 3, 2.5, 0.5), (12, 1, 1.0, 1e-6)])
def test_block_equals_pre_norm_residual_reference(attn_impl, dim, heads, mlp_ratio, eps):
    torch.manual_seed(0)
    block = Block(dim=dim, heads=heads, mlp_ratio=mlp_ratio, norm_eps=eps, attn_impl=attn_impl).double().eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)  # random norm weights too, so swapping norm1/norm2 would show
    assert block.mlp.fc1.out_features == int(dim * mlp_ratio)
    x = torch.randn(2, 7, dim, dtype=torch.float64)
    expected = _reference_block(block, x, heads, eps)
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)

    out, weights = block(x, return_weights=True)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    assert weights.shape == (2, heads, 7, 7)


def test_block_drop_path_is_identity_in_eval():
    torch.manual_seed(0)
    block = Block(dim=16, heads=2, drop_path=0.9).double().eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    torch.testing.assert_close(block(x), _reference_block(block, x, 2, 1e-6), rtol=1e-10, atol=1e-10)


def test_hidden_width_given_as_a_ratio_comes_back_exactly():
    """224 * (976 / 224) is 975.999... in floating point; the MLP must still be 976 wide
    (a width read from an HF config arrives as intermediate_size / hidden_size)."""
    assert 224 * (976 / 224) < 976  # the floating-point trap this guards against
    block = Block(dim=224, heads=4, mlp_ratio=976 / 224)
    assert block.mlp.fc1.out_features == 976
    assert Block(dim=16, heads=2, mlp_ratio=2.5).mlp.fc1.out_features == 40
    assert Block(dim=10, heads=2, mlp_ratio=2.55).mlp.fc1.out_features == 25  # 25.5 truncates, as in timm
