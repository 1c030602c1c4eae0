"""timm ``VisionTransformer`` state dicts <-> vitlab ViT.

timm's layout (``timm/models/vision_transformer.py``) and vitlab's differ only in names:
both fuse Q, K, V into one Linear with rows ordered q, k, v, and both keep the class token's
position in ``pos_embed`` (timm's default ``no_embed_class=False``). The one structural
difference is average pooling: timm's ``global_pool='avg'`` models replace the final ``norm``
by an ``fc_norm`` applied *after* pooling, whereas vitlab normalises every token and then
pools. Those are different functions, so an ``fc_norm`` is refused rather than mapped.
"""
from __future__ import annotations

import re

import torch

from ..errors import InteropError

# vitlab name -> timm name; per block under "blocks.{i}." in both
_TOP = {
    "cls_token": "cls_token",
    "pos_embed": "pos_embed",
    "to_patch_embedding.proj": "patch_embed.proj",
    "norm": "norm",
    "head": "head",
}
_BLOCK = {
    "norm1": "norm1",
    "attn.to_qkv": "attn.qkv",
    "attn.to_out": "attn.proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def _rename(sd: dict[str, torch.Tensor], top: dict[str, str], block: dict[str, str], what: str
            ) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        m = re.match(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$", key)
        if m and m.group(2) in block:
            out[f"blocks.{m.group(1)}.{block[m.group(2)]}.{m.group(3)}"] = value
            continue
        name, _, param = key.rpartition(".")
        if key in top:  # cls_token, pos_embed: parameters without a module
            out[top[key]] = value
        elif name in top and param in ("weight", "bias"):
            out[f"{top[name]}.{param}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise InteropError(f"not a plain {what} ViT state dict: no mapping for {sorted(unknown)[:8]}"
                           f"{' ...' if len(unknown) > 8 else ''}")
    return out


def from_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm ``VisionTransformer`` state dict as vitlab keys.

    Raises:
        ValueError: for keys vitlab has no counterpart of (``fc_norm``, register tokens,
            q/k norms, layer scale, ...), naming them.
    """
    if any(k.startswith("fc_norm.") for k in sd):
        raise InteropError("the timm weights have an fc_norm (global_pool='avg'): timm normalises after pooling, "
                           "vitlab before, so they cannot be mapped exactly")
    return _rename(sd, {v: k for k, v in _TOP.items()}, {v: k for k, v in _BLOCK.items()}, "timm")


def to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A vitlab ViT state dict as a timm ``VisionTransformer`` state dict (same tensors, timm names)."""
    return _rename(sd, _TOP, _BLOCK, "vitlab")
