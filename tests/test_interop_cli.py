"""``vitlab export`` and ``vitlab import`` (cli.py, over vitlab/interop)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from transformers import ViTForImageClassification

from vitlab import ModelConfig, ViT
from vitlab.cli import main
from vitlab.train import load_model
from vitlab.train.artifacts import save_model

CFG = ModelConfig(img_size=16, patch_size=4, in_chans=3, num_classes=4, dim=32, depth=2, heads=4)


def _model_file(tmp_path):
    torch.manual_seed(0)
    model = ViT(CFG).eval()
    save_model(tmp_path / "model.safetensors", model,
               {"mean": [0.5] * 3, "std": [0.25] * 3, "classes": ["a", "b", "c", "d"]})
    return model, tmp_path / "model.safetensors"


def test_export_then_import_round_trip(tmp_path, capsys):
    model, src = _model_file(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(src), "--onnx", str(out / "m.onnx"), "--hf", str(out / "hf"),
                 "--timm", str(out / "timm.safetensors")]) == 0
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    (logits,) = ort.InferenceSession(str(out / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": x.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), rtol=0, atol=1e-4)
    hf = ViTForImageClassification.from_pretrained(out / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).logits, expected, rtol=0, atol=1e-5)

    for fmt, weights in [("hf", out / "hf"), ("timm", out / "timm.safetensors")]:
        dest = tmp_path / f"from_{fmt}.safetensors"
        assert main(["import", str(weights), "--fmt", fmt, "--out", str(dest), "--heads", "4"]) == 0
        again, meta = load_model(dest)
        assert len(meta["mean"]) == 3
        with torch.no_grad():
            torch.testing.assert_close(again(x), expected, rtol=0, atol=1e-5)

    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "from_hf.safetensors"), str(tmp_path / "grey.png")]) == 0
    assert "grey.png:" in capsys.readouterr().out


def test_import_resamples_to_another_image_size(tmp_path):
    _, src = _model_file(tmp_path)
    assert main(["import", str(src), "--out", str(tmp_path / "big.safetensors"), "--img-size", "24"]) == 0
    model, meta = load_model(tmp_path / "big.safetensors")
    assert model.cfg.img_size == 24 and model.pos_embed.shape == (1, 1 + 36, 32)
    assert meta["std"] == [0.25] * 3 and meta["classes"] == ["a", "b", "c", "d"]  # kept from the vitlab header


def test_bad_format_or_foreign_file_is_exit_2(tmp_path, capsys):
    _, src = _model_file(tmp_path)
    assert main(["import", str(src), "--fmt", "keras", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "unknown weights format 'keras'" in capsys.readouterr().err
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
    assert main(["import", str(tmp_path / "resnet.pth"), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "not a ViT state dict" in capsys.readouterr().err
    assert main(["import", str(src), "--fmt", "timm", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "vitlab-format weights, not timm" in capsys.readouterr().err
    assert main(["export", str(src)]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_import_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    """`vitlab import` replaced an existing file, even a run's model.safetensors (issue 11, defect 12)."""
    _, src = _model_file(tmp_path)
    run_model = tmp_path / "run" / "model.safetensors"
    run_model.parent.mkdir()
    run_model.write_bytes(b"a trained model")
    assert main(["import", str(src), "--out", str(run_model)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert run_model.read_bytes() == b"a trained model"
    assert main(["import", str(src), "--out", str(run_model.parent)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["import", str(src), "--out", str(run_model), "--overwrite"]) == 0
    assert load_model(run_model)[0].cfg == CFG
