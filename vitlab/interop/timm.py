"""timm ``VisionTransformer`` state dicts <-> vitlab ViT, and the constructor arguments that rebuild either.

timm's layout (``timm/models/vision_transformer.py``) and vitlab's differ only in names: both fuse Q, K, V into
one Linear with rows ordered q, k, v, and both keep the class token's position in ``pos_embed`` (timm's default
``no_embed_class=False``). What a state dict cannot say is how the model pools: timm's ``global_pool='avg'`` (and
``'max'``) models by default move the final norm after the pooling (``fc_norm``; vitlab's ``fc_norm=True``), and
a class-token model may pool its patch tokens instead. :func:`timm_args` writes those choices down as the keyword
arguments of timm's ``VisionTransformer``, which vitlab stores beside exported weights and reads back.
"""
from __future__ import annotations

import re

import torch

from ..config import ModelConfig
from ..errors import InteropError

# vitlab name -> timm name; per block under "blocks.{i}." in both
_TOP = {
    "cls_token": "cls_token",
    "pos_embed": "pos_embed",
    "to_patch_embedding.proj": "patch_embed.proj",
    "norm": "norm",
    "fc_norm": "fc_norm",
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
TIMM_NORM_EPS = 1e-6  # timm's VisionTransformer: norm_layer = partial(nn.LayerNorm, eps=1e-6)


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
                           f"{' ...' if len(unknown) > 8 else ''} (register tokens, q/k norms, layer scale and "
                           f"attention pooling have no vitlab counterpart)")
    return out


def from_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm ``VisionTransformer`` state dict as vitlab keys.

    Raises:
        InteropError: for keys vitlab has no counterpart of (register tokens, q/k norms, layer scale, ...),
            naming them.
    """
    return _rename(sd, {v: k for k, v in _TOP.items()}, {v: k for k, v in _BLOCK.items()}, "timm")


def to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A vitlab ViT state dict as a timm ``VisionTransformer`` state dict (same tensors, timm names)."""
    return _rename(sd, _TOP, _BLOCK, "vitlab")


def timm_args(cfg: ModelConfig) -> dict:
    """The keyword arguments of timm's ``VisionTransformer`` that build the model ``cfg`` describes:
    ``timm.models.vision_transformer.VisionTransformer(**timm_args(cfg))`` (plus
    ``norm_layer=partial(nn.LayerNorm, eps=cfg.norm_eps)`` when ``cfg.norm_eps`` is not timm's 1e-6)."""
    return {"img_size": cfg.img_size, "patch_size": cfg.patch_size, "in_chans": cfg.in_chans,
            "num_classes": cfg.num_classes, "embed_dim": cfg.dim, "depth": cfg.depth, "num_heads": cfg.heads,
            "mlp_ratio": cfg.mlp_ratio, "qkv_bias": cfg.qkv_bias, "class_token": cfg.class_token,
            "global_pool": cfg.pool, "fc_norm": cfg.fc_norm}


def config_from_timm_args(args: dict, norm_eps: float = TIMM_NORM_EPS) -> ModelConfig:
    """The vitlab ModelConfig of timm ``VisionTransformer`` keyword arguments (:func:`timm_args`, or a timm
    model's own: ``global_pool`` 'token', 'avg' or 'max'; ``fc_norm`` None means timm's default, on for 'avg'
    and 'max')."""
    pool = args.get("global_pool", "token")
    if pool not in ("token", "avg", "max"):
        raise InteropError(f"timm global_pool={pool!r} has no vitlab counterpart; expected 'token', 'avg' or 'max'")
    fc_norm = args.get("fc_norm")
    return ModelConfig(img_size=int(args.get("img_size", 224)), patch_size=int(args.get("patch_size", 16)),
                       in_chans=int(args.get("in_chans", 3)), num_classes=int(args.get("num_classes", 1000)),
                       dim=int(args.get("embed_dim", 768)), depth=int(args.get("depth", 12)),
                       heads=int(args.get("num_heads", 12)), mlp_ratio=float(args.get("mlp_ratio", 4.0)),
                       qkv_bias=bool(args.get("qkv_bias", True)), class_token=bool(args.get("class_token", True)),
                       pool=pool, fc_norm=pool in ("avg", "max") if fc_norm is None else bool(fc_norm),
                       norm_eps=norm_eps)
