"""``vitlab export`` and ``vitlab import`` (cli.py, over vitlab/interop)."""
from __future__ import annotations

import numpy as np
import pytest
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


def _probabilities(model_file, image):
    """What `vitlab predict` computes for one image: (class names, probabilities)."""
    from vitlab.data import Normalize
    from vitlab.data.images import load_image

    model, meta = load_model(model_file)
    x = load_image(image, channels=model.cfg.in_chans, size=model.cfg.img_size)[None]
    with torch.no_grad():
        return meta["classes"], model(Normalize(meta["mean"], meta["std"])(x)).softmax(-1)[0]


def test_export_then_import_round_trip(tmp_path, capsys):
    """export -> import -> predict gives the same classes and probabilities (1e-5) for HF, timm and vitlab files,
    with the run's mean, std and class names (they used to come back as 0.5/0.5 and LABEL_i)."""
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
    assert hf.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    classes, want = _probabilities(src, tmp_path / "photo.png")
    for fmt, weights in [("hf", out / "hf"), ("timm", out / "timm.safetensors"), ("vitlab", src)]:
        dest = tmp_path / f"from_{fmt}.safetensors"
        assert main(["import", str(weights), "--out", str(dest)]) == 0
        again, meta = load_model(dest)
        assert (meta["mean"], meta["std"], meta["classes"]) == ([0.5] * 3, [0.25] * 3, ["a", "b", "c", "d"]), fmt
        assert meta.get("resize", "center-crop") == "center-crop", fmt
        got_classes, got = _probabilities(dest, tmp_path / "photo.png")
        assert got_classes == classes and got.argmax() == want.argmax(), fmt
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "from_hf.safetensors"), str(tmp_path / "photo.png")]) == 0
    assert f"photo.png (20x20 -> center-crop 16x16): {classes[int(want.argmax())]}" in capsys.readouterr().out


@pytest.mark.parametrize("resize", ["center-crop", "squash"])
def test_hf_export_carries_an_image_processor_that_prepares_images_as_vitlab_does(tmp_path, resize):
    """preprocessor_config.json: HF's own AutoImageProcessor turns a non-square photo into the tensor vitlab would
    feed, for the run's resize policy."""
    from transformers import AutoImageProcessor

    from vitlab.data import Normalize
    from vitlab.data.images import load_image
    from vitlab.interop import export_model

    model, _ = _model_file(tmp_path)
    meta = {"mean": [0.5] * 3, "std": [0.25] * 3, "classes": list("abcd"), "resize": resize}
    export_model(model, meta, tmp_path / "hf", "hf")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "hf")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (27, 41, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    theirs = processor(Image.open(tmp_path / "p.png"), return_tensors="pt")["pixel_values"]
    ours = Normalize([0.5] * 3, [0.25] * 3)(load_image(tmp_path / "p.png", channels=3, size=16, resize=resize)[None])
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_onnx_on_pixels_carries_its_preprocessing(tmp_path):
    """--pixels: the normalisation is in the graph and the file takes [0, 1] pixels (1e-4 of PyTorch); mean, std
    and classes are in its metadata. An opset the runtime cannot load is refused, and nothing is left behind."""
    from vitlab.data import Normalize
    from vitlab.interop import read_onnx_meta

    model, src = _model_file(tmp_path)
    assert main(["export", str(src), "--onnx", str(tmp_path / "p.onnx"), "--pixels"]) == 0
    meta = read_onnx_meta(tmp_path / "p.onnx")
    assert meta == {"mean": [0.5] * 3, "std": [0.25] * 3, "classes": ["a", "b", "c", "d"], "img_size": "16",
                    "resample": "bicubic", "resize": "center-crop", "input": "pixels in [0, 1]"}
    pixels = torch.rand(3, 3, 16, 16)
    (got,) = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": pixels.numpy()})
    with torch.no_grad():
        want = model(Normalize(meta["mean"], meta["std"])(pixels))
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)
    assert main(["export", str(src), "--onnx", str(tmp_path / "bad.onnx"), "--opset", "26"]) == 2
    assert not (tmp_path / "bad.onnx").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["export", str(src), "--onnx", str(tmp_path / "p.onnx")]) == 2  # exists: --overwrite


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


def test_the_default_recipes_model_exports_to_every_format(tmp_path):
    """docs/interop.md's own example failed halfway: the default digits model pooled with max, which HF's
    ViTForImageClassification cannot express. The recipe pools the class token now (no worse on validation)."""
    from vitlab.interop import export_model, export_onnx
    from vitlab.recipes import digits

    torch.manual_seed(0)
    model = ViT(digits().model).eval()
    meta = {"mean": [0.3], "std": [0.4], "classes": [str(i) for i in range(10)], "resize": "center-crop"}
    export_model(model, meta, tmp_path / "hf", "hf")
    export_model(model, meta, tmp_path / "t.safetensors", "timm")
    export_onnx(model, tmp_path / "m.onnx", meta=meta)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ViTForImageClassification.from_pretrained(tmp_path / "hf").eval()(
            pixel_values=x).logits, model(x), rtol=0, atol=1e-5)
