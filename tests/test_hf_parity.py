"""Numerical parity with HF transformers' ViT (vitlab/interop/hf.py).

An independent implementation of the same network: random HF weights loaded into vitlab
(and vitlab weights into HF) must give the same logits. transformers is a dev
dependency, so it is imported directly, never skipped.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import transformers
from transformers import ViTConfig, ViTForImageClassification

from vitlab import ViT
from vitlab.interop import config_from_hf, from_hf, to_hf

HF_MAJOR = int(transformers.__version__.split(".")[0])
ATOL = 1e-5


def _hf_config(**overrides) -> ViTConfig:
    base = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=3,
                num_attention_heads=4, intermediate_size=256, num_labels=7, qkv_bias=True,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return ViTConfig(**{**base, **overrides})


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random, including those both libraries start at 0 or 1 (class token,
    biases, norms), so a swapped or dropped tensor changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.ndim == 1 and ("norm" in name or "layernorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.05 * noise)


def _hf_model(seed: int = 0, **overrides) -> ViTForImageClassification:
    torch.manual_seed(seed)
    hf = ViTForImageClassification(_hf_config(**overrides)).eval()
    _randomise(hf, seed)
    return hf


def _images(b=3, c=3, size=32):
    return torch.randn(b, c, size, size, generator=torch.Generator().manual_seed(7))


def _hf_logits(hf, x):
    with torch.no_grad():
        return hf(pixel_values=x).logits


def test_config_from_hf():
    cfg = config_from_hf(_hf_config())
    assert (cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.num_classes) == (32, 8, 3, 7)
    assert (cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio) == (64, 3, 4, 4.0)
    assert cfg.qkv_bias and cfg.class_token and cfg.pool == "token"
    assert cfg.norm_eps == 1e-12  # HF's layer_norm_eps default, not vitlab's 1e-6


@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
def test_hf_weights_in_vitlab_give_hf_logits(attn_impl):
    hf = _hf_model()
    model = ViT(replace(config_from_hf(hf.config), attn_impl=attn_impl)).eval()
    model.load_state_dict(from_hf(hf.state_dict()))  # strict: every key mapped, none left over
    x = _images()
    with torch.no_grad():
        out = model(x)
    expected = _hf_logits(hf, x)
    assert out.shape == expected.shape == (3, 7)
    assert expected.abs().max() > 0.1  # logits of a real size, so the tolerance means something
    torch.testing.assert_close(out, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
def test_vitlab_weights_in_hf_give_vitlab_logits(attn_impl):
    hf_config = _hf_config()
    torch.manual_seed(1)
    model = ViT(replace(config_from_hf(hf_config), attn_impl=attn_impl)).eval()
    _randomise(model, 1)
    fresh = ViTForImageClassification(hf_config).eval()
    fresh.load_state_dict(to_hf(model.state_dict()), strict=True)
    x = _images()
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(_hf_logits(fresh, x), out, rtol=0, atol=ATOL)


def test_without_qkv_bias():
    hf = _hf_model(seed=2, qkv_bias=False)
    cfg = config_from_hf(hf.config)
    assert not cfg.qkv_bias
    model = ViT(cfg).eval()
    model.load_state_dict(from_hf(hf.state_dict()))
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), _hf_logits(hf, x), rtol=0, atol=ATOL)
    fresh = ViTForImageClassification(hf.config).eval()
    fresh.load_state_dict(to_hf(model.state_dict()), strict=True)
    torch.testing.assert_close(_hf_logits(fresh, x), _hf_logits(hf, x), rtol=0, atol=ATOL)


def test_intermediate_size_not_a_round_ratio():
    """hidden 44, intermediate 120: 44 * (120 / 44) is 119.999... in floating point."""
    hf = _hf_model(seed=3, hidden_size=44, intermediate_size=120, num_attention_heads=4, num_hidden_layers=1)
    model = ViT(config_from_hf(hf.config)).eval()
    assert model.blocks[0].mlp.fc1.out_features == 120
    model.load_state_dict(from_hf(hf.state_dict()))
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), _hf_logits(hf, x), rtol=0, atol=ATOL)


def test_backbone_state_dict_without_prefix_or_classifier():
    """A ``ViTModel`` state dict (keys start at 'embeddings.', no classifier) loads into a
    headless vitlab ViT whose tokens equal HF's last_hidden_state."""
    hf = _hf_model(seed=4)
    backbone_sd = hf.vit.state_dict()
    assert not any(k.startswith("vit.") or k.startswith("classifier") for k in backbone_sd)
    model = ViT(replace(config_from_hf(hf.config), num_classes=0)).eval()
    model.load_state_dict(from_hf(backbone_sd))
    x = _images()
    with torch.no_grad():
        expected = hf.vit(pixel_values=x).last_hidden_state
        torch.testing.assert_close(model.forward_features(x), expected, rtol=0, atol=ATOL)


def test_transformers_4_layout_key_names():
    """The transformers 4 names (modeling_vit.py in 4.x: ViTSelfAttention query/key/value,
    ViTSelfOutput dense, ViTIntermediate dense, ViTOutput dense), written out by hand."""
    model = ViT(config_from_hf(_hf_config(num_hidden_layers=1)))
    sd4 = to_hf(model.state_dict(), version=4)
    layer = "vit.encoder.layer.0."
    expected = {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                "vit.embeddings.patch_embeddings.projection.weight", "vit.embeddings.patch_embeddings.projection.bias",
                "vit.layernorm.weight", "vit.layernorm.bias", "classifier.weight", "classifier.bias"}
    for name in ["attention.attention.query", "attention.attention.key", "attention.attention.value",
                 "attention.output.dense", "intermediate.dense", "output.dense", "layernorm_before",
                 "layernorm_after"]:
        expected |= {layer + name + ".weight", layer + name + ".bias"}
    assert set(sd4) == expected
    d = 64
    qkv = model.blocks[0].attn.to_qkv.weight
    assert torch.equal(sd4[layer + "attention.attention.query.weight"], qkv[:d])
    assert torch.equal(sd4[layer + "attention.attention.key.weight"], qkv[d:2 * d])
    assert torch.equal(sd4[layer + "attention.attention.value.weight"], qkv[2 * d:])
    back = from_hf(sd4)
    assert set(back) == set(model.state_dict())
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())


def test_to_hf_writes_the_installed_layout():
    model = ViT(config_from_hf(_hf_config(num_hidden_layers=1)))
    hf_keys = set(ViTForImageClassification(_hf_config(num_hidden_layers=1)).state_dict())
    assert set(to_hf(model.state_dict())) == hf_keys
    assert HF_MAJOR in (4, 5)
