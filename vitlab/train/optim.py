"""AdamW with weight decay only where it regularises (matrices, not norms, biases or embeddings), and layer-wise
learning-rate decay for fine-tuning.

Layer-wise decay (Clark et al. 2020, ELECTRA; the fine-tuning recipe of BEiT, Bao et al. 2022, MAE and DeiT III):
layers near the input hold the most general features, so a fine-tuning run moves them least. A parameter of layer
l of a depth-L encoder learns at ``lr * layer_decay ** (L + 1 - l)``: the patch (or stem) embedding, class token and
position embedding are layer 0, block i is layer i + 1, the final norm, fc_norm and head layer L + 1 (full lr), as
in MAE's ``get_layer_id_for_vit``. What lies outside the encoder (a Segmenter's decoder, a projection head) is new
and learns at the full rate too. Each group carries its ``lr_scale``; the loop sets ``lr = lr(step) * lr_scale``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import OptimConfig


def layer_id(name: str, depth: int) -> int:
    """BEiT's layer of a ViT parameter (module docstring) from its name in the ViT."""
    if name in ("cls_token", "pos_embed") or name.startswith("to_patch_embedding."):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1  # norm, fc_norm, head


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0,
                 encoder: nn.Module | None = None) -> list[dict]:
    """Decayed (weights of Linear/Conv) and not decayed (1-D params, class token, position embedding) groups, as
    in the ViT/DeiT reference training code; with ``layer_decay`` < 1 those two per layer of ``encoder`` (the ViT
    inside ``model``; default ``model`` itself), each with its ``lr_scale``. Frozen parameters (requires_grad
    False) are left out. With ``layer_decay`` = 1 there are exactly two groups, decayed first."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    encoder = model if encoder is None else encoder
    depth = encoder.cfg.depth if hasattr(encoder, "cfg") else 0
    layers = {id(p): layer_id(n, depth) for n, p in encoder.named_parameters()} if layer_decay < 1 else {}
    top = depth + 1  # the head's layer, and that of everything outside the encoder
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {(top, True): [], (top, False): []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decayed = not (p.ndim <= 1 or name in skip)
            groups.setdefault((layers.get(id(p), top), decayed), []).append(p)
    # by layer, the decayed group first: with layer_decay = 1, the two groups every run had before layer decay
    return [{"params": params, "weight_decay": weight_decay if decayed else 0.0,
             "lr_scale": layer_decay ** (top - layer)}
            for (layer, decayed), params in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))
            if params or layer == top]


def build_optimizer(model: nn.Module, cfg: OptimConfig, encoder: nn.Module | None = None) -> torch.optim.Optimizer:
    """AdamW over ``param_groups``, fused (one kernel for all parameters) where every parameter is a float tensor
    on a CPU or CUDA device, the for-loop form elsewhere (MPS). Same update, fewer kernel launches."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.layer_decay, encoder), lr=cfg.lr,
                             betas=tuple(cfg.betas), fused=fused or None)
