"""Forward FLOPs per image, counted by PyTorch's own FlopCounterMode on the meta device.

Counted as 2 × multiply-accumulates of matmuls, convolutions and attention (the
convention of the FLOP counter; timm/fvcore tables report GMACs, half these numbers).
Norms, softmax and activations are not counted, as in those tables.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig


def forward_flops(cfg: ModelConfig, model_cls=None) -> int:
    """Forward FLOPs for one image, without allocating any weights (meta tensors)."""
    if model_cls is None:
        from .models import ViT as model_cls
    with torch.device("meta"):
        model = model_cls(cfg).eval()
    return module_flops(model, (1, cfg.in_chans, cfg.img_size, cfg.img_size))


def module_flops(module: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs of ``module`` (on the meta device, in eval mode) for one input of ``input_shape``."""
    x = torch.empty(*input_shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


def stem_summary(cfg) -> dict:
    """Output grid side, parameter count and forward FLOPs per image of ``cfg``'s tokeniser stem.

    Built on the meta device (no weights allocated); FLOPs are counted as above (2 × multiply-accumulates
    of the convolutions; norms, activations and pools not counted).

    Returns:
        ``dict(grid=g, params=..., flops=...)`` with the stem's output a g×g token grid.
    """
    from .analysis.receptive_field import stem_grid
    from .layers.stems import build_stem

    with torch.device("meta"):
        stem = build_stem(cfg).eval()
    params = sum(p.numel() for p in stem.parameters())
    flops = module_flops(stem, (1, cfg.in_chans, cfg.img_size, cfg.img_size))
    return dict(grid=stem_grid(stem, cfg.img_size), params=params, flops=flops)
