"""Export a vitlab ViT to ONNX with a dynamic batch axis.

Uses the ``torch.export``-based exporter (``torch.onnx.export(dynamo=True)``, the default since
PyTorch 2.9; it needs ``onnxscript``). The legacy TorchScript exporter also works but traces
the input checks in ``ViT._check_input`` as constants and is deprecated.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InteropError

from ..models import ViT, count_params

DEFAULT_OPSET = 18
_INLINE_LIMIT_BYTES = 1_800_000_000  # protobuf's 2 GiB limit, with room for the graph


def export_onnx(model: ViT, path: str | Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ONNX: input ``images`` (B, C, H, W) float32 ->
    output ``logits`` (B, num_classes), B dynamic, H = W = the model's ``img_size``.

    Weights are stored inside the file unless they pass ~1.8 GB, then beside it in ``path.data``.

    Raises:
        ValueError: for an opset below 17 (LayerNormalization is an ONNX op from opset 17 on).
    """
    if opset < 17:
        raise InteropError(f"opset must be >= 17 (LayerNormalization), got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    was_training = model.training
    model.eval()
    example = torch.zeros(2, cfg.in_chans, cfg.img_size, cfg.img_size,
                          device=next(model.parameters()).device)  # (B, C, H, W), B=2 so B is not specialised
    external = count_params(model) * 4 > _INLINE_LIMIT_BYTES
    try:
        torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=opset, verbose=False,
                          input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=external)
    finally:
        model.train(was_training)
    return path
