"""Importing and exporting weights on disk (vitlab/interop/files.py).

HF models are built from a ViTConfig, randomly initialised and written with save_pretrained
into tmp_path: nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification

from vitlab import ModelConfig, ViT
from vitlab.interop import export_weights, import_weights, to_timm
from vitlab.layers import resample_pos_embed
from vitlab.train.artifacts import save_model
from vitlab.train.checkpoint import CheckpointError

ATOL = 1e-5


def _randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.2 * noise if p.ndim == 1 and "norm" in name and name.endswith("weight") else 0.05 * noise)


@pytest.fixture(scope="module")
def hf_model():
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=128, num_labels=7, qkv_bias=True)
    torch.manual_seed(0)
    hf = ViTForImageClassification(cfg).eval()
    _randomise(hf, 0)
    return hf


def _x(size=32, b=3):
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(7))


def _logits(model, x):
    with torch.no_grad():
        out = model(pixel_values=x) if isinstance(model, ViTForImageClassification) else model(x)
    return out.logits if hasattr(out, "logits") else out


def test_hf_save_pretrained_folder_imports_with_hf_logits(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")
    model = import_weights(tmp_path / "hf")
    assert model.cfg.heads == 4 and model.cfg.norm_eps == hf_model.config.layer_norm_eps
    expected = _logits(hf_model, _x())
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(_logits(model, _x()), expected, rtol=0, atol=ATOL)
    # the weights file alone, named explicitly, finds config.json beside it
    model = import_weights(tmp_path / "hf" / "model.safetensors", fmt="hf")
    torch.testing.assert_close(_logits(model, _x()), expected, rtol=0, atol=ATOL)


def test_hf_torch_saved_bin_imports_with_hf_logits(hf_model, tmp_path):
    torch.save(hf_model.state_dict(), tmp_path / "weights.bin")
    model = import_weights(tmp_path / "weights.bin", fmt="hf", heads=4)  # no config.json: inferred
    assert model.cfg.norm_eps == 1e-12
    torch.testing.assert_close(_logits(model, _x()), _logits(hf_model, _x()), rtol=0, atol=ATOL)


def test_vitlab_export_loads_in_hf_from_pretrained(tmp_path):
    model = ViT(ModelConfig(img_size=32, patch_size=8, num_classes=7, dim=64, depth=2, heads=4, norm_eps=1e-6))
    _randomise(model, 1)
    export_weights(model, tmp_path / "out", fmt="hf")
    assert (tmp_path / "out" / "config.json").is_file() and (tmp_path / "out" / "model.safetensors").is_file()
    hf = ViTForImageClassification.from_pretrained(tmp_path / "out").eval()
    torch.testing.assert_close(_logits(hf, _x()), _logits(model.eval(), _x()), rtol=0, atol=ATOL)
    # and back into vitlab
    again = import_weights(tmp_path / "out")
    assert again.cfg == replace(model.cfg, init=again.cfg.init)
    torch.testing.assert_close(_logits(again, _x()), _logits(model, _x()), rtol=0, atol=ATOL)


def test_import_into_another_image_size_resamples_pos_embed(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")
    src = import_weights(tmp_path / "hf")
    cfg = replace(src.cfg, img_size=48)  # 4x4 grid -> 6x6
    model = import_weights(tmp_path / "hf", cfg=cfg)
    assert model.pos_embed.shape == (1, 1 + 36, 64)
    torch.testing.assert_close(model.pos_embed, resample_pos_embed(src.pos_embed, (6, 6)), rtol=0, atol=0)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)
    assert _logits(model, _x(48)).shape == (3, 7)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_file_round_trip(tmp_path, suffix, caplog):
    model = ViT(ModelConfig(img_size=16, patch_size=4, num_classes=5, dim=64, depth=2, heads=2)).eval()
    path = export_weights(model, tmp_path / f"timm{suffix}", fmt="timm")
    again = import_weights(path, fmt="timm")  # the heads travel with the export (metadata or <file>.json)
    assert again.cfg == model.cfg
    torch.testing.assert_close(_logits(again, _x(16)), _logits(model, _x(16)), rtol=0, atol=0)
    # a bare timm state dict says nothing of the heads: dim // 64 = 1, with a warning, unless given
    torch.save(to_timm(model.state_dict()), tmp_path / "bare.pth")
    assert import_weights(tmp_path / "bare.pth", fmt="timm").cfg.heads == 1 and "assuming 1" in caplog.text
    assert import_weights(tmp_path / "bare.pth", fmt="timm", heads=2).cfg.heads == 2


def test_vitlab_model_file_keeps_its_config(tmp_path):
    model = ViT(ModelConfig(img_size=16, patch_size=4, num_classes=3, dim=32, depth=1, heads=4, pool="avg")).eval()
    save_model(tmp_path / "model.safetensors", model)
    again = import_weights(tmp_path)  # a run folder
    assert again.cfg == model.cfg
    torch.testing.assert_close(_logits(again, _x(16)), _logits(model, _x(16)), rtol=0, atol=0)


def test_errors_are_clear(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match="unknown weights format 'onnx'"):
        import_weights(tmp_path / "hf", fmt="onnx")
    with pytest.raises(ValueError, match="hf-format weights, not timm"):
        import_weights(tmp_path / "hf", fmt="timm")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a ViT state dict"):
        import_weights(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="do not exist"):
        import_weights(tmp_path / "missing.safetensors")
    timm_sd = to_timm(ViT(ModelConfig(img_size=16, patch_size=4, dim=64, depth=1, heads=1)).state_dict())
    torch.save(timm_sd, tmp_path / "t.pth")
    with pytest.raises(CheckpointError, match="do not fit"):  # depth 1 weights into a depth-2 config
        import_weights(tmp_path / "t.pth", cfg=ModelConfig(img_size=16, patch_size=4, dim=64, depth=2, heads=1))
    avg = ViT(ModelConfig(img_size=16, patch_size=4, dim=32, depth=1, heads=4, pool="avg"))
    with pytest.raises(ValueError, match="pools the class token"):
        export_weights(avg, tmp_path / "x", fmt="hf")
    with pytest.raises(ValueError, match="unknown export format"):
        export_weights(avg, tmp_path / "x", fmt="onnx")


def test_config_options_without_a_counterpart_are_refused(tmp_path):
    """A ModelConfig field the exporters do not know (here the BatchNorm option) must keep its default."""
    from dataclasses import fields

    if "norm" not in {f.name for f in fields(ModelConfig)}:
        pytest.skip("ModelConfig has no norm option")
    model = ViT(ModelConfig(img_size=16, patch_size=4, num_classes=3, dim=32, depth=1, heads=4, norm="batch"))
    for fmt, dest in [("hf", tmp_path / "hf"), ("timm", tmp_path / "t.safetensors")]:
        with pytest.raises(ValueError, match=f"cannot export to {fmt}: model.norm='batch'"):
            export_weights(model, dest, fmt=fmt)
