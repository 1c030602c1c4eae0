"""vitlab/analysis/claims/variance.py: He et al.'s variance formulas worked by hand, the measured stacks against
them, and claim 10's verdict on planted inits (the full experiment is not run here)."""
import math

import pytest
import torch
from torch import nn

from vitlab.analysis.claims import CAVEATS, FAILS, HOLDS
from vitlab.analysis.claims import variance as V


def test_weight_variance_worked_by_hand():
    # a 3×3 conv from 8 to 16 channels: fan_in 72, fan_out 144
    assert V.weight_variance("kaiming fan_in", 8, 16) == pytest.approx(2 / 72)
    assert V.weight_variance("kaiming fan_out", 8, 16) == pytest.approx(2 / 144)
    assert V.weight_variance("xavier normal", 8, 16) == pytest.approx(2 / 216)
    assert V.weight_variance("trunc-normal 0.02", 8, 16) == pytest.approx(4e-4)


def test_predicted_ratios_worked_by_hand():
    # fan_in keeps the forward pass exactly; the gradient grows by c_out_L / c_out_1 (256 / 32 = 8), the mirror
    assert V.predicted_ratios("kaiming fan_in") == pytest.approx((1.0, 8.0))
    assert V.predicted_ratios("kaiming fan_out") == pytest.approx((1 / 8, 1.0))
    # 4 -> 8 -> 8 -> 32: fan_out's forward factors are 8/8 and 8/32, fan_in's backward 8/8 and 32/8
    assert V.predicted_ratios("kaiming fan_out", widths=(8, 8, 32), in_chans=4) == pytest.approx((0.25, 1.0))
    assert V.predicted_ratios("kaiming fan_in", widths=(8, 8, 32), in_chans=4) == pytest.approx((1.0, 4.0))
    # constant width: xavier halves both passes at every one of the L - 1 = 4 layers after the first
    assert V.predicted_ratios("xavier normal", widths=(32,) * 5, in_chans=32) == pytest.approx((1 / 16, 1 / 16))
    # std 0.02 at width 32: ½ · 9 · 32 · 4e-4 = 0.0576 a layer, in both directions
    assert V.predicted_ratios("trunc-normal 0.02", widths=(32,) * 3, in_chans=32) == pytest.approx((0.0576 ** 2,) * 2)


def test_conv_stack_draws_each_scheme():
    torch.manual_seed(0)
    for name in V.SCHEMES:
        conv = V.conv_stack(name)[-1]  # 256 -> 256, 589,824 weights
        assert conv.padding_mode == "circular" and conv.bias is None
        expected = V.weight_variance(name, conv.in_channels, conv.out_channels)
        assert conv.weight.var().item() == pytest.approx(expected, rel=0.02)
    widening = V.conv_stack("kaiming fan_out")[13]  # 128 -> 256: fan_out is twice fan_in
    assert (widening.in_channels, widening.out_channels) == (128, 256)
    assert widening.weight.var().item() == pytest.approx(2 / (9 * 256), rel=0.02)


def test_profile_ratios():
    p = V.Profile(forward=(1.0, 3.0, 2.0), backward=(4.0, 2.0, 1.0))
    assert p.forward_ratio == pytest.approx(4.0)  # (2 / 1)²: last over first
    assert p.backward_ratio == pytest.approx(16.0)  # (4 / 1)²: first over last, where the gradient ends


def test_measured_stack_follows_he_et_al(monkeypatch):
    """Averaged over draws of a wide stack, the measured ratios land on eqs. 8 and 13 (fan_in: both 1 here)."""
    monkeypatch.setattr(V, "SIZE", 8)
    monkeypatch.setattr(V, "BATCH", 4)
    widths = (128,) * 6
    fwd, bwd = [], []
    for seed in range(5):
        torch.manual_seed(seed)
        p = V.stack_stds(V.conv_stack("kaiming fan_in", widths=widths, in_chans=128), seed=seed)
        fwd.append(p.forward_ratio)
        bwd.append(p.backward_ratio)
    assert 0.75 < sum(fwd) / 5 < 1.33 and 0.75 < sum(bwd) / 5 < 1.33
    # xavier at constant width is the same draw scaled by 1/√2: exactly ½ a layer, 2^-5 over the stack
    torch.manual_seed(0)
    x = V.stack_stds(V.conv_stack("xavier normal", widths=widths, in_chans=128), seed=0)
    torch.manual_seed(0)
    k = V.stack_stds(V.conv_stack("kaiming fan_in", widths=widths, in_chans=128), seed=0)
    assert x.forward_ratio / k.forward_ratio == pytest.approx(2 ** -5, rel=1e-4)
    assert V.predicted_ratios("xavier normal", widths=widths, in_chans=128)[0] == pytest.approx(2 ** -5)


def test_a_wrong_fan_out_fails_the_verdict():
    """Plant a fan_out init of twice the variance: the gradient grows 2× a layer and the check says so."""
    def double(w):
        return nn.init.normal_(w, std=math.sqrt(4 / (w.shape[0] * w.shape[2] * w.shape[3])))

    torch.manual_seed(0)
    wrong = V.stack_stds(V.conv_stack("kaiming fan_out", init=double), seed=0)
    torch.manual_seed(0)
    right = V.stack_stds(V.conv_stack("kaiming fan_out"), seed=0)
    assert wrong.backward_ratio > 1e4 and 0.5 < right.backward_ratio < 2
    assert V.verdict10({"kaiming fan_out": (wrong.forward_ratio, wrong.backward_ratio)}, (1.0, 1.0)) == FAILS
    assert V.verdict10({"kaiming fan_out": (right.forward_ratio, right.backward_ratio)}, (1.0, 1.0)) != FAILS


def test_verdict10_from_ratios():
    assert V.verdict10({"kaiming fan_out": (1.2, 0.9)}, (1.5, 0.7)) == HOLDS
    assert V.verdict10({"kaiming fan_out": (1 / 16, 1.1)}, (1.5, 0.7)) == CAVEATS  # forward drifts by the widths
    assert V.verdict10({"kaiming fan_out": (1.2, 0.9)}, (17.0, 8.0)) == CAVEATS  # the ViT's stream grows
    assert V.verdict10({"kaiming fan_out": (1.2, 3.0)}, (1.0, 1.0)) == FAILS  # not even the backward pass
    assert V.verdict10({"kaiming fan_out": (1e-5, 1.0)}, (1.0, 1.0)) == FAILS  # forward vanished


def test_vit_profile_has_one_entry_a_block():
    p = V.vit_stds("kaiming_fan_out", seed=0, dim=64, depth=3)
    assert len(p.forward) == len(p.backward) == 3
    assert all(math.isfinite(v) and v > 0 for v in p.forward + p.backward)
    assert p.forward == V.vit_stds("kaiming_fan_out", seed=0, dim=64, depth=3).forward  # seeded
