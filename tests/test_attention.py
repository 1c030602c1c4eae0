"""Attention (vitlab/layers/attention.py) against torch.nn.MultiheadAttention and a hand computation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlab.layers import Attention


def _pair(dim, heads, qkv_bias=True, seed=0):
    """Two Attention modules, sdpa and explicit, with the same random weights (float64)."""
    torch.manual_seed(seed)
    sdpa = Attention(dim=dim, heads=heads, qkv_bias=qkv_bias, impl="sdpa").double().eval()
    with torch.no_grad():
        for p in sdpa.parameters():
            p.normal_(0, 0.3)  # larger than the default init, so the softmax is far from uniform
    explicit = Attention(dim=dim, heads=heads, qkv_bias=qkv_bias, impl="explicit").double().eval()
    explicit.load_state_dict(sdpa.state_dict())
    return sdpa, explicit


@pytest.mark.parametrize("dim,heads", [(8, 1), (12, 3), (16, 4), (24, 8)])
def test_sdpa_equals_explicit(dim, heads):
    sdpa, explicit = _pair(dim, heads)
    x = torch.randn(3, 7, dim, dtype=torch.float64)
    out = sdpa(x)
    assert out.shape == (3, 7, dim)
    torch.testing.assert_close(out, explicit(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(out, explicit(x), rtol=1e-10, atol=1e-12)  # float64: far tighter in fact


@pytest.mark.parametrize("dim,heads", [(8, 1), (12, 3), (16, 4), (24, 8)])
def test_equals_torch_multihead_attention(dim, heads):
    sdpa, explicit = _pair(dim, heads)
    mha = nn.MultiheadAttention(dim, heads, bias=True, batch_first=True).double().eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(sdpa.to_qkv.weight)
        mha.in_proj_bias.copy_(sdpa.to_qkv.bias)
        mha.out_proj.weight.copy_(sdpa.to_out.weight)
        mha.out_proj.bias.copy_(sdpa.to_out.bias)
    x = torch.randn(2, 9, dim, dtype=torch.float64)
    expected, expected_weights = mha(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(sdpa(x), expected, rtol=0, atol=1e-5)
    out, weights = explicit(x, return_weights=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-5)


def test_without_qkv_bias_equals_functional_multihead_attention():
    """qkv_bias=False: no Q/K/V bias but still an output-projection bias (MHA cannot express
    that mix, its functional form can)."""
    dim, heads = 16, 4
    sdpa, explicit = _pair(dim, heads, qkv_bias=False)
    assert sdpa.to_qkv.bias is None
    x = torch.randn(2, 5, dim, dtype=torch.float64)
    xt = x.transpose(0, 1)  # (N, B, D): the functional form is sequence-first
    expected, _ = F.multi_head_attention_forward(
        xt, xt, xt, dim, heads, sdpa.to_qkv.weight, None, None, None, False, 0.0,
        sdpa.to_out.weight, sdpa.to_out.bias, training=False, need_weights=False)
    expected = expected.transpose(0, 1)
    torch.testing.assert_close(sdpa(x), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(explicit(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_returned_weights_are_softmax_rows_and_match_hand_computation(impl):
    dim, heads, n = 12, 3, 6
    sdpa, explicit = _pair(dim, heads, seed=1)
    module = sdpa if impl == "sdpa" else explicit  # sdpa falls back to the explicit path for weights
    x = torch.randn(2, n, dim, dtype=torch.float64)
    out, weights = module(x, return_weights=True)
    assert weights.shape == (2, heads, n, n)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, n, dtype=torch.float64))
    torch.testing.assert_close(out, explicit(x))  # asking for weights does not change the output

    # head h by hand: its Q, K are rows [h*d, (h+1)*d) of the Q and K blocks of to_qkv
    d = dim // heads
    w, b = module.to_qkv.weight, module.to_qkv.bias
    for h in range(heads):
        rows_q = slice(h * d, (h + 1) * d)
        rows_k = slice(dim + h * d, dim + (h + 1) * d)
        q = x @ w[rows_q].T + b[rows_q]  # (B, N, d)
        k = x @ w[rows_k].T + b[rows_k]
        scores = q @ k.transpose(1, 2) / math.sqrt(d)  # (B, N, N)
        e = torch.exp(scores - scores.amax(-1, keepdim=True))
        torch.testing.assert_close(weights[:, h], e / e.sum(-1, keepdim=True), rtol=1e-10, atol=1e-12)


def test_attention_dropout_is_off_in_eval():
    torch.manual_seed(0)
    a = Attention(dim=16, heads=4, attn_dropout=0.5, proj_dropout=0.5, impl="explicit").eval()
    b = Attention(dim=16, heads=4, impl="explicit").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(a(x), b(x))
    a.train()
    assert not torch.allclose(a(x), b(x))  # and on in training


def test_dim_not_divisible_by_heads_names_the_numbers():
    with pytest.raises(ValueError, match=r"dim=10.*heads=4"):
        Attention(dim=10, heads=4)


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="flash"):
        Attention(dim=8, heads=2, impl="flash")
