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
