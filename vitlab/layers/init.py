"""Weight initialisation schemes, selectable by name."""
from __future__ import annotations

import torch
from torch import nn

INIT_SCHEMES = ("trunc_normal", "kaiming_fan_out")

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it makes the
# truncated draw's std the one asked for (as Flax's truncated_normal initialiser does).
_TRUNC2_STD = 0.87962566103423978


def trunc_normal_std_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """A normal truncated at ±2 of its own σ, scaled so the result's std is exactly ``std``."""
    sigma = std / _TRUNC2_STD
    return nn.init.trunc_normal_(tensor, std=sigma, a=-2 * sigma, b=2 * sigma)


def init_weights(module: nn.Module, scheme: str = "trunc_normal") -> None:
    """Initialise one module's own parameters (use with ``model.apply``).

    ``trunc_normal``: Linear/Conv weights from a normal truncated at ±2σ with standard
    deviation 0.02 (the ViT/DeiT std; the cut keeps rare large weights out). ``kaiming_fan_out``: He et al. 2015 normal init scaled by
    fan-out (the ResNet convention) for Linear/Conv weights. Both: zero biases,
    norm weight 1 and bias 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme {scheme!r} is not one of {INIT_SCHEMES}")
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        if scheme == "trunc_normal":
            trunc_normal_std_(module.weight, std=0.02)
        else:
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
