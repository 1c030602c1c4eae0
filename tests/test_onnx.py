"""ONNX export (vitlab/interop/onnx.py): onnxruntime reproduces the PyTorch logits at any batch size."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from vitlab import ModelConfig, ViT
from vitlab.interop import export_onnx

CFG = ModelConfig(img_size=16, patch_size=4, in_chans=3, num_classes=5, dim=32, depth=2, heads=4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = ViT(CFG).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, path


def test_single_file_with_a_dynamic_batch_axis(exported):
    _, path = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert not path.with_name(path.name + ".data").exists()  # weights inside the file
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "images" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_gives_the_pytorch_logits(exported, batch):
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(batch))
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert logits.shape == (batch, 5)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(ViT(CFG), tmp_path / "m.onnx", opset=16)
