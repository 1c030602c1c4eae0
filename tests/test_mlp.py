"""MLP (vitlab/layers/mlp.py) against fc2(gelu(fc1(x))) written with functional ops."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vitlab.layers import MLP


def _gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """The exact GELU (Hendrycks & Gimpel 2016), x·Φ(x), as used by ViT (not the tanh approximation)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def test_mlp_equals_functional_reference():
    torch.manual_seed(0)
    mlp = MLP(dim=12, hidden_dim=40).double().eval()
    x = 2 * torch.randn(3, 5, 12, dtype=torch.float64)
    hidden = F.linear(x, mlp.fc1.weight, mlp.fc1.bias)
    assert hidden.shape == (3, 5, 40)
    expected = F.linear(_gelu_erf(hidden), mlp.fc2.weight, mlp.fc2.bias)
    out = mlp(x)
    assert out.shape == (3, 5, 12)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # and F.gelu's default is that same exact form
    torch.testing.assert_close(out, F.linear(F.gelu(hidden), mlp.fc2.weight, mlp.fc2.bias), rtol=1e-12, atol=1e-12)


def test_mlp_dropout_only_in_training():
    torch.manual_seed(0)
    mlp = MLP(dim=8, hidden_dim=16, dropout=0.5).eval()
    ref = MLP(dim=8, hidden_dim=16).eval()
    ref.load_state_dict(mlp.state_dict())
    x = torch.randn(4, 3, 8)
    torch.testing.assert_close(mlp(x), ref(x))
    mlp.train()
    assert not torch.allclose(mlp(x), ref(x))
