"""timm VisionTransformer <-> vitlab (vitlab/interop/timm.py, files.py), against timm's own model.

timm is the reference here: `pip install --no-deps timm` (the README's test command does), imported through
tests/timm_shim.py where torchvision cannot be imported beside this CPU torch build. Without timm the parity
tests skip and say so; the layout tests (timm's key names written out by hand) run either way.
"""
from __future__ import annotations

import json
import logging
from functools import partial

import pytest
import torch
from torch import nn

from vitlab import ModelConfig, ViT
from vitlab.interop import detect_format, export_model, from_timm, import_model, infer_config, timm_args, to_timm
from vitlab.layers import resample_pos_embed

from timm_shim import import_timm

D, DEPTH, P, IMG, C, K, HIDDEN = 32, 2, 4, 16, 3, 5, 128
N = (IMG // P) ** 2
timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason="timm is not installed (pip install --no-deps timm)")


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


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Weights away from any initialisation (norm scales around 1), so that parity is not vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.2 * noise if "norm" in name and name.endswith("weight") else 0.1 * noise)
    return model.eval()


def _x(cfg: ModelConfig, b: int = 3, size: int | None = None) -> torch.Tensor:
    s = size or cfg.img_size
    return torch.randn(b, cfg.in_chans, s, s, generator=torch.Generator().manual_seed(1))


# -- the layout, written out by hand ----------------------------------------------------------------------------
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
    assert torch.equal(model.to_patch_embedding.proj.weight, timm_sd["patch_embed.proj.weight"])
    assert infer_config(from_timm(timm_sd), heads=4) == _cfg()


@pytest.mark.parametrize("kw", [{}, dict(qkv_bias=False), dict(num_classes=0), dict(class_token=False, pool="avg"),
                                dict(pool="avg", fc_norm=True)])
def test_round_trip_of_the_names_is_exact(kw):
    sd = ViT(_cfg(**kw)).state_dict()
    back = from_timm(to_timm(sd))
    assert set(back) == set(sd) and all(torch.equal(back[k], v) for k, v in sd.items())


def test_keys_without_a_counterpart_are_named():
    sd = to_timm(ViT(_cfg()).state_dict())
    with pytest.raises(ValueError, match="reg_token"):
        from_timm({**sd, "reg_token": torch.zeros(1, 4, D)})


# -- parity with timm's own VisionTransformer -------------------------------------------------------------------
CASES = {
    "token": dict(pool="token"),
    "avg, class token, fc_norm (timm's global_pool='avg')": dict(pool="avg", fc_norm=True),
    "avg, class token, norm before the pool": dict(pool="avg"),
    "avg, no class token": dict(class_token=False, pool="avg", fc_norm=True),
    "max (the digits recipe's pooling)": dict(pool="max"),
    "qkv_bias off": dict(qkv_bias=False),
    "odd mlp ratio 2.5": dict(mlp_ratio=2.5),
    "1 channel": dict(in_chans=1),
}


def _timm_model(args: dict, eps: float = 1e-6) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**args, norm_layer=partial(nn.LayerNorm, eps=eps)).eval()


@needs_timm
@pytest.mark.parametrize("case", CASES)
def test_vitlab_to_timm_gives_timms_logits(case, tmp_path):
    """export --timm writes the weights and the VisionTransformer arguments; timm builds that model, loads the
    file strictly, and gives vitlab's logits."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    model = _randomise(ViT(_cfg(**CASES[case])), 0)
    path = export_model(model, {"mean": [0.4] * model.cfg.in_chans, "std": [0.2] * model.cfg.in_chans,
                                "classes": list("abcde")}, tmp_path / "m.safetensors", "timm")
    with safe_open(str(path), framework="pt") as f:
        exported = json.loads(f.metadata()["vitlab_export"])
    assert exported["timm_args"] == timm_args(model.cfg)
    reference = _timm_model(exported["timm_args"])
    reference.load_state_dict(load_file(str(path)), strict=True)
    with torch.no_grad():
        want = reference(_x(model.cfg))
        torch.testing.assert_close(model(_x(model.cfg)), want, rtol=0, atol=1e-5)
    assert want.abs().max() > 0.1


@needs_timm
@pytest.mark.parametrize("case", CASES)
def test_a_timm_state_dict_imports_with_timms_logits(case, tmp_path):
    """A timm model's own torch.save'd state dict (no vitlab metadata): what the weights cannot say (heads,
    pooling) is given as a user would (--heads, --pool), the rest is read from the shapes."""
    cfg = _cfg(**CASES[case])
    reference = _randomise(_timm_model(timm_args(cfg)), 1)
    torch.save(reference.state_dict(), tmp_path / "timm.pth")
    model, _ = import_model(tmp_path / "timm.pth", "timm", heads=cfg.heads, pool=cfg.pool)
    assert model.cfg == cfg
    with torch.no_grad():
        torch.testing.assert_close(model(_x(cfg)), reference(_x(cfg)), rtol=0, atol=1e-5)


@needs_timm
def test_avg_pooling_survives_a_round_trip_through_timm(tmp_path):
    """vitlab's avg model (class token, norm before pooling) used to come back as token pooling, logits off by ~1."""
    model = _randomise(ViT(_cfg(pool="avg")), 2)
    meta = {"mean": [0.5] * C, "std": [0.25] * C, "classes": list("vwxyz")}
    for name in ("m.safetensors", "m.pth"):
        export_model(model, meta, tmp_path / name, "timm")
        again, again_meta = import_model(tmp_path / name)
        assert again.cfg == model.cfg and again_meta == meta
        with torch.no_grad():
            torch.testing.assert_close(again(_x(model.cfg)), model(_x(model.cfg)), rtol=0, atol=0)


@needs_timm
@pytest.mark.parametrize("old, new", [(16, 24), (24, 16)])
def test_resampling_timm_weights_equals_timms_own(old, new, tmp_path):
    """pos_embed resampled for timm-layout weights is timm's resample_abs_pos_embed (bicubic, antialiased, which
    in PyTorch is PIL's kernel): equal whether the grid grows or shrinks; plain bicubic is not."""
    from timm.layers import resample_abs_pos_embed

    cfg = _cfg(img_size=old)
    reference = _randomise(_timm_model(timm_args(cfg)), 3)
    torch.save(reference.state_dict(), tmp_path / "timm.pth")
    model, _ = import_model(tmp_path / "timm.pth", "timm", heads=4, img_size=new)
    g = new // P
    want = resample_abs_pos_embed(reference.pos_embed.detach(), [g, g], num_prefix_tokens=1)
    torch.testing.assert_close(model.pos_embed.detach(), want, rtol=0, atol=1e-6)
    plain = resample_pos_embed(reference.pos_embed.detach(), (g, g), num_prefix_tokens=1, antialias=False)
    assert (plain - want).abs().max() > 1e-3
    # and the model at the new size gives the logits of timm's model at that size with timm's resampled weights
    resized = _timm_model({**timm_args(cfg), "img_size": new})
    resized.load_state_dict({**reference.state_dict(), "pos_embed": want}, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(_x(cfg, size=new)), resized(_x(cfg, size=new)), rtol=0, atol=1e-5)


def test_norm_eps_travels_with_a_warning(tmp_path, caplog):
    """norm_eps used to be dropped on export without a word: timm's VisionTransformer has eps 1e-6."""
    model = ViT(_cfg(norm_eps=1e-5)).eval()
    with caplog.at_level(logging.WARNING):
        export_model(model, {"mean": [0.5] * C, "std": [0.5] * C, "classes": list("abcde")},
                     tmp_path / "m.safetensors", "timm")
    assert "norm_eps=1e-05" in caplog.text and "partial(nn.LayerNorm, eps=1e-05)" in caplog.text
    again, _ = import_model(tmp_path / "m.safetensors")
    assert again.cfg.norm_eps == 1e-5


def test_cli_import_with_heads_and_img_size(tmp_path, capsys):
    """`vitlab import X --fmt timm --heads 3 --img-size 28` failed for width 96 ('cannot infer the number of
    heads'): the heads given reach the resampled model too."""
    from vitlab.cli import main

    cfg = ModelConfig(img_size=28, patch_size=4, in_chans=1, num_classes=10, dim=96, depth=1, heads=3)
    torch.save(to_timm(ViT(replace_img(cfg, 16)).state_dict()), tmp_path / "w.pth")
    assert main(["import", str(tmp_path / "w.pth"), "--fmt", "timm", "--heads", "3", "--img-size", "28",
                 "--out", str(tmp_path / "m.safetensors")]) == 0
    from vitlab.train import load_model

    model, meta = load_model(tmp_path / "m.safetensors")
    assert (model.cfg.heads, model.cfg.img_size, model.pos_embed.shape[1]) == (3, 28, 1 + 49)
    assert "3 heads" in capsys.readouterr().out


def replace_img(cfg: ModelConfig, size: int) -> ModelConfig:
    from dataclasses import replace

    return replace(cfg, img_size=size)
