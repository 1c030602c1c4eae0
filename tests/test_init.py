"""Weight initialisation (vitlab/layers/init.py), checked on the statistics of a built ViT.

``trunc_normal`` draws N(0, s²) cut at ±2s, with s chosen so that the truncated draw has
standard deviation exactly 0.02: a unit normal truncated to [-2, 2] has std
sqrt(1 - 2·2·φ(2) / (2Φ(2) - 1)) ≈ 0.87963, so s = 0.02 / 0.87963 ≈ 0.022737 and the cut is
at ±0.045475. ``kaiming_fan_out`` draws N(0, 2 / fan_out) with fan_out = out_features
for a Linear layer and out_channels·k·k for a convolution.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vitlab import ModelConfig, ViT
from vitlab.layers import init_weights

SIGMA = 0.02


def _truncated_std(sigma: float, k: float) -> float:
    """Standard deviation of N(0, sigma²) truncated to [-k·sigma, k·sigma]."""
    pdf = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(k / math.sqrt(2))  # 2Φ(k) - 1
    return sigma * math.sqrt(1 - 2 * k * pdf / mass)


DRAW_SIGMA = SIGMA / _truncated_std(1.0, 2.0)  # the σ drawn before the cut
TRUNC_STD = _truncated_std(DRAW_SIGMA, 2.0)  # = SIGMA by construction, checked below
CUT = 2 * DRAW_SIGMA


def _vit(init: str, dim: int = 256) -> ViT:
    torch.manual_seed(0)
    cfg = ModelConfig(img_size=32, patch_size=8, dim=dim, depth=2, heads=4, num_classes=100, init=init)
    return ViT(cfg)


def _weighted_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_truncated_std_worked_number():
    assert _truncated_std(1.0, 2.0) == pytest.approx(0.879626, abs=1e-6)
    assert DRAW_SIGMA == pytest.approx(0.022737, abs=1e-6)
    assert TRUNC_STD == pytest.approx(0.02, abs=1e-12)


def test_trunc_normal_statistics():
    model = _vit("trunc_normal", dim=128)  # torch draws a truncated normal by rejection: slow, keep it small
    layers = _weighted_layers(model)
    assert len(layers) == 1 + 2 * 4 + 1  # patch conv, per block qkv/out/fc1/fc2, head
    for layer in layers:
        w = layer.weight.detach().double()
        assert w.abs().max().item() <= CUT
        assert abs(w.mean().item()) < 4 * TRUNC_STD / math.sqrt(w.numel())
        # sample sd of the sd is about std / sqrt(2n) (a bit less for a truncated normal); 6 of those
        assert w.std().item() == pytest.approx(TRUNC_STD, rel=6 / math.sqrt(2 * w.numel()))
        assert torch.count_nonzero(layer.bias) == 0
    everything = torch.cat([m.weight.detach().flatten().double() for m in layers])
    assert everything.std().item() == pytest.approx(TRUNC_STD, rel=0.01)
    # the cut is real: nothing beyond ±2 of the drawn σ, though an untruncated draw of this
    # size would have thousands of values there
    assert everything.abs().max().item() <= CUT
    assert everything.numel() > 100_000

    for norm in [m for m in model.modules() if isinstance(m, nn.LayerNorm)]:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))

    assert 0 < model.cls_token.std().item() < 1e-5
    pe = model.pos_embed.detach().double()
    assert pe.abs().max().item() <= CUT
    assert pe.std().item() == pytest.approx(TRUNC_STD, rel=6 / math.sqrt(2 * pe.numel()))


def test_kaiming_fan_out_statistics():
    model = _vit("kaiming_fan_out", dim=256)
    block = model.blocks[0]
    # fc1 is (1024, 256): fan_out 1024; fc2 is (256, 1024): fan_out 256 — fan_in would swap them
    for layer, fan_out in [(block.mlp.fc1, 1024), (block.mlp.fc2, 256), (block.attn.to_qkv, 768)]:
        assert layer.weight.shape[0] == fan_out
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
        assert torch.count_nonzero(layer.bias) == 0
    conv = model.to_patch_embedding.proj  # (256, 3, 8, 8): fan_out = 256 * 8 * 8
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 64)), rel=0.02)
    assert torch.count_nonzero(conv.bias) == 0
    for norm in [m for m in model.modules() if isinstance(m, nn.LayerNorm)]:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_init_weights_resets_norms_and_biases_on_any_module():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(64, 512), nn.LayerNorm(512))
    with torch.no_grad():
        for p in seq.parameters():
            p.fill_(3.0)
    seq.apply(init_weights)
    assert seq[0].weight.abs().max().item() <= CUT
    assert torch.count_nonzero(seq[0].bias) == 0
    assert torch.equal(seq[1].weight, torch.ones(512))
    assert torch.equal(seq[1].bias, torch.zeros(512))


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="xavier"):
        init_weights(nn.Linear(2, 2), "xavier")
    with pytest.raises(ValueError, match="xavier"):
        ModelConfig(img_size=32, patch_size=8, dim=16, depth=1, heads=2, init="xavier")
