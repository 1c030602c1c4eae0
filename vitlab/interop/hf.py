"""HF transformers ``ViTForImageClassification`` / ``ViTModel`` state dicts <-> vitlab ViT.

Two HF layouts exist: transformers 5 (``vit.layers.N.attention.q_proj``, ``mlp.fc1``) and
transformers 4 (``vit.encoder.layer.N.attention.attention.query``, ``intermediate.dense``).
Both are read; ``to_hf`` writes the layout of the installed major version unless told.
HF keeps Q, K, V as three Linear layers; vitlab fuses them into one ``to_qkv``.
"""
from __future__ import annotations

import re

import torch

from ..config import ModelConfig
from ..errors import InteropError

# per-block names: vitlab suffix -> (transformers 5 suffix, transformers 4 suffix)
_BLOCK = {
    "norm1": ("layernorm_before", "layernorm_before"),
    "attn.to_out": ("attention.o_proj", "attention.output.dense"),
    "norm2": ("layernorm_after", "layernorm_after"),
    "mlp.fc1": ("mlp.fc1", "intermediate.dense"),
    "mlp.fc2": ("mlp.fc2", "output.dense"),
}
_QKV = {5: ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
        4: ("attention.attention.query", "attention.attention.key", "attention.attention.value")}
_TOP = {
    "cls_token": "embeddings.cls_token",
    "pos_embed": "embeddings.position_embeddings",
    "to_patch_embedding.proj": "embeddings.patch_embeddings.projection",
    "norm": "layernorm",
}


def _layout(sd: dict[str, torch.Tensor]) -> tuple[str, int, str]:
    """(prefix before 'embeddings', layout version, per-layer container)."""
    for key in sd:
        m = re.match(r"^(.*?)(layers|encoder\.layer)\.\d+\.", key)
        if m:
            return m.group(1), 5 if m.group(2) == "layers" else 4, m.group(2)
    raise InteropError("not an HF ViT state dict: no 'layers.N.' or 'encoder.layer.N.' keys found")


def from_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An HF ViT state dict (either layout, with or without the classifier) as vitlab keys."""
    prefix, version, container = _layout(sd)
    v = 0 if version == 5 else 1
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _TOP.items():
        for p in ("", ".weight", ".bias"):
            if prefix + theirs + p in sd:
                out[ours + p] = sd[prefix + theirs + p]
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(rf"^{re.escape(prefix + container)}\.(\d+)\.", k)))
    for i in range(depth):
        base = f"{prefix}{container}.{i}."
        for ours, names in _BLOCK.items():
            for p in ("weight", "bias"):
                out[f"blocks.{i}.{ours}.{p}"] = sd[base + names[v] + "." + p]
        for p in ("weight", "bias"):
            parts = [sd.get(base + n + "." + p) for n in _QKV[version]]
            if all(t is not None for t in parts):
                out[f"blocks.{i}.attn.to_qkv.{p}"] = torch.cat(parts, dim=0)
    for p in ("weight", "bias"):
        if "classifier." + p in sd:
            out["head." + p] = sd["classifier." + p]
    return out


def to_hf(sd: dict[str, torch.Tensor], version: int | None = None) -> dict[str, torch.Tensor]:
    """A vitlab ViT state dict as an HF ``ViTForImageClassification`` state dict."""
    if version is None:
        from ..extras import require

        transformers = require("transformers", "hf", "writing HF weights")

        version = 5 if int(transformers.__version__.split(".")[0]) >= 5 else 4
    v = 0 if version == 5 else 1
    container = "vit.layers" if version == 5 else "vit.encoder.layer"
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _TOP.items():
        for p in ("", ".weight", ".bias"):
            if ours + p in sd:
                out["vit." + theirs + p] = sd[ours + p]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(depth):
        base = f"{container}.{i}."
        for ours, names in _BLOCK.items():
            for p in ("weight", "bias"):
                out[base + names[v] + "." + p] = sd[f"blocks.{i}.{ours}.{p}"]
        for p in ("weight", "bias"):
            key = f"blocks.{i}.attn.to_qkv.{p}"
            if key in sd:
                for name, part in zip(_QKV[version], sd[key].chunk(3, dim=0)):
                    out[base + name + "." + p] = part
    for p in ("weight", "bias"):
        if "head." + p in sd:
            out["classifier." + p] = sd["head." + p]
    return out


def config_from_hf(hf_config) -> ModelConfig:
    """The vitlab ModelConfig equal to an HF ``ViTConfig`` (GELU, class-token pooling)."""
    if getattr(hf_config, "hidden_act", "gelu") != "gelu":
        raise InteropError(f"only hidden_act='gelu' maps onto vitlab, got {hf_config.hidden_act!r}")
    return ModelConfig(
        img_size=hf_config.image_size, patch_size=hf_config.patch_size, in_chans=hf_config.num_channels,
        num_classes=getattr(hf_config, "num_labels", 0), dim=hf_config.hidden_size,
        depth=hf_config.num_hidden_layers, heads=hf_config.num_attention_heads,
        mlp_ratio=hf_config.intermediate_size / hf_config.hidden_size, qkv_bias=hf_config.qkv_bias,
        norm_eps=hf_config.layer_norm_eps, pool="token", class_token=True,
    )
