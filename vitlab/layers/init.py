"""Weight initialisation schemes, selectable by name."""
from __future__ import annotations

from torch import nn

INIT_SCHEMES = ("trunc_normal", "kaiming_fan_out")


def init_weights(module: nn.Module, scheme: str = "trunc_normal") -> None:
    """Initialise one module's own parameters (use with ``model.apply``).

    ``trunc_normal``: Linear/Conv weights ~ N(0, 0.02²) truncated at ±2σ, as in the ViT
    and DeiT reference code. ``kaiming_fan_out``: He et al. 2015 normal init scaled by
    fan-out (the ResNet convention) for Linear/Conv weights. Both: zero biases,
    norm weight 1 and bias 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme {scheme!r} is not one of {INIT_SCHEMES}")
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        if scheme == "trunc_normal":
            nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        else:
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
