"""timm VisionTransformer state dicts <-> vitlab (vitlab/interop/timm.py).

timm itself cannot be imported in this environment, so the key mapping is checked against
timm's documented ``VisionTransformer`` layout written out by hand for a small config
(timm/models/vision_transformer.py: ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``).
Numerical parity against a real timm model is not tested here.
"""
from __future__ import annotations

import pytest
import torch

from vitlab import ModelConfig, ViT
from vitlab.interop import detect_format, from_timm, infer_config, to_timm

D, DEPTH, P, IMG, C, K, HIDDEN = 32, 2, 4, 16, 3, 5, 128
N = (IMG // P) ** 2


def _cfg(**kw) -> ModelConfig:
    base = dict(img_size=IMG, patch_size=P, in_chans=C, num_classes=K, dim=D, depth=DEPTH, heads=4)
    return ModelConfig(**{**base, **kw})


def _timm_layout() -> dict[str, tuple[int, ...]]:
    """timm's VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=4,
    num_classes=5, global_pool='token') state dict: names and shapes."""
    keys = {"cls_token": (1, 1, D), "pos_embed": (1, 1 + N, D),
            "patch_embed.proj.weight": (D, C, P, P), "patch_embed.proj.bias": (D,)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        keys |= {b + "norm1.weight": (D,), b + "norm1.bias": (D,),
                 b + "attn.qkv.weight": (3 * D, D), b + "attn.qkv.bias": (3 * D,),
                 b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
                 b + "norm2.weight": (D,), b + "norm2.bias": (D,),
                 b + "mlp.fc1.weight": (HIDDEN, D), b + "mlp.fc1.bias": (HIDDEN,),
                 b + "mlp.fc2.weight": (D, HIDDEN), b + "mlp.fc2.bias": (D,)}
    keys |= {"norm.weight": (D,), "norm.bias": (D,), "head.weight": (K, D), "head.bias": (K,)}
    return keys


def test_to_timm_matches_the_documented_layout():
    sd = to_timm(ViT(_cfg()).state_dict())
    assert {k: tuple(v.shape) for k, v in sd.items()} == _timm_layout()


def test_timm_layout_loads_strictly_into_vitlab():
    g = torch.Generator().manual_seed(0)
    timm_sd = {k: torch.randn(s, generator=g) for k, s in _timm_layout().items()}
    assert detect_format(timm_sd) == "timm"
    model = ViT(_cfg())
    model.load_state_dict(from_timm(timm_sd))  # strict
    assert torch.equal(model.blocks[1].attn.to_qkv.weight, timm_sd["blocks.1.attn.qkv.weight"])
    assert torch.equal(model.blocks[0].attn.to_out.bias, timm_sd["blocks.0.attn.proj.bias"])
    assert torch.equal(model.to_patch_embedding.proj.weight, timm_sd["patch_embed.proj.weight"])
    assert infer_config(from_timm(timm_sd), heads=4) == _cfg()


@pytest.mark.parametrize("kw", [{}, dict(qkv_bias=False), dict(num_classes=0), dict(class_token=False, pool="avg")])
def test_round_trip_is_exact(kw):
    sd = ViT(_cfg(**kw)).state_dict()
    back = from_timm(to_timm(sd))
    assert set(back) == set(sd) and all(torch.equal(back[k], v) for k, v in sd.items())


def test_fc_norm_and_unknown_keys_are_refused():
    sd = to_timm(ViT(_cfg()).state_dict())
    with pytest.raises(ValueError, match="fc_norm"):
        from_timm({**sd, "fc_norm.weight": torch.ones(D), "fc_norm.bias": torch.zeros(D)})
    with pytest.raises(ValueError, match="reg_token"):
        from_timm({**sd, "reg_token": torch.zeros(1, 4, D)})
