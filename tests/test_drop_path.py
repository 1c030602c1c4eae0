"""DropPath (vitlab/layers/drop_path.py): stochastic depth, one keep/drop decision per sample."""
from __future__ import annotations

import pytest
import torch

from vitlab.layers import DropPath


def _inputs(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, 4, generator=g)
    return x + torch.sign(x) * 0.1  # no element is 0, so a kept sample never looks dropped


def test_identity_in_eval():
    dp = DropPath(0.7).eval()
    x = _inputs()
    assert torch.equal(dp(x), x)


def test_identity_for_zero_rate_even_in_training():
    dp = DropPath(0.0).train()
    x = _inputs()
    assert torch.equal(dp(x), x)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.75])
def test_train_drops_whole_samples_and_rescales_the_rest(p):
    torch.manual_seed(1234)
    n = 20_000
    dp = DropPath(p).train()
    x = _inputs(n)
    out = dp(x)
    flat_out, flat_x = out.reshape(n, -1), x.reshape(n, -1)
    dropped = (flat_out == 0).all(dim=1)
    kept = ~dropped
    # every sample is either all zero or exactly x / (1 - p): never partly dropped
    assert torch.equal(flat_out[dropped], torch.zeros_like(flat_out[dropped]))
    torch.testing.assert_close(flat_out[kept], flat_x[kept] / (1 - p), rtol=1e-6, atol=0)
    assert ((flat_out != 0).all(dim=1) | dropped).all()
    # kept fraction: binomial with sd sqrt(p(1-p)/n) <= 0.0036; 0.02 is over 5 sd
    assert abs(kept.double().mean().item() - (1 - p)) < 0.02
    # so the expectation is preserved: E[out] = x (mean over samples of out / x is close to 1)
    assert abs((flat_out / flat_x).mean().item() - 1.0) < 0.05


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_rate_outside_unit_interval_is_rejected(p):
    with pytest.raises(ValueError, match=str(p)):
        DropPath(p)
