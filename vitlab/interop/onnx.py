"""Export a vitlab ViT to ONNX with a dynamic batch axis, its preprocessing in the metadata, checked after writing.

Uses the ``torch.export``-based exporter (``torch.onnx.export(dynamo=True)``, the default since PyTorch 2.9; it
needs ``onnxscript``: ``pip install vitlab[onnx]``). Every export is written to a temporary file, checked with
``onnx.checker`` and run with onnxruntime on one batch against PyTorch, and only then renamed into place: an
opset the installed exporter or runtime cannot handle (opset 26 with onnxruntime 1.32, say) is refused with one
line instead of leaving a file that does not load.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..errors import InteropError
from ..fileio import atomic_copy
from ..models import ViT, count_params
from ..extras import require

DEFAULT_OPSET = 18
MIN_OPSET = 17  # LayerNormalization is an ONNX op from opset 17 on
_INLINE_LIMIT_BYTES = 1_800_000_000  # protobuf's 2 GiB limit, with room for the graph


class _WithNormalisation(nn.Module):
    """[0, 1] pixels -> standardised with the run's mean and std -> the model: what ``pixels=True`` exports."""

    def __init__(self, model: ViT, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)  # (B, num_classes)


def export_onnx(model: ViT, path: str | Path, *, opset: int = DEFAULT_OPSET, meta: dict | None = None,
                pixels: bool = False) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ONNX: input ``images`` (B, C, H, W) float32 -> output
    ``logits`` (B, num_classes), B dynamic, H = W = the model's ``img_size``.

    Args:
        meta: the preprocessing (``mean``, ``std``, ``classes``) stored in the file's metadata (``metadata_props``:
            ``mean``, ``std``, ``classes`` as JSON, ``input``, ``img_size``, ``resample``, ``resize``).
        pixels: put the normalisation inside the graph, so that the model takes images scaled to [0, 1]
            (``input='pixels in [0, 1]'``); otherwise it takes standardised images (``input='standardised'``).

    Weights are stored inside the file unless they pass ~1.8 GB, then beside it in ``path.data``.

    Raises:
        InteropError: an opset below 17, an export onnx.checker or onnxruntime rejects, or one whose outputs
            differ from PyTorch's by more than 1e-4; nothing is left at ``path``.
    """
    require("onnxscript", "onnx")
    require("onnx", "onnx")
    require("onnxruntime", "onnx")
    import onnx

    if opset < MIN_OPSET:
        raise InteropError(f"opset must be >= {MIN_OPSET} (LayerNormalization), got {opset}")
    if opset > onnx.defs.onnx_opset_version():
        raise InteropError(f"opset {opset} is newer than the installed onnx {onnx.__version__} knows "
                           f"(<= {onnx.defs.onnx_opset_version()})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    meta = meta or {"mean": [0.5] * cfg.in_chans, "std": [0.5] * cfg.in_chans,
                    "classes": [str(i) for i in range(cfg.num_classes)]}
    if pixels and not ("mean" in meta and "std" in meta):
        raise InteropError("pixels=True puts the normalisation in the graph: it needs the mean and std")
    was_training = model.training
    model.eval()
    exported = _WithNormalisation(model, meta["mean"], meta["std"]).eval() if pixels else model
    device = next(model.parameters()).device
    example = torch.rand(2, cfg.in_chans, cfg.img_size, cfg.img_size, device=device)  # B=2: B is not specialised
    external = count_params(model) * 4 > _INLINE_LIMIT_BYTES
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as work:
            tmp = Path(work) / path.name
            try:
                torch.onnx.export(exported, (example,), str(tmp), dynamo=True, opset_version=opset, verbose=False,
                                  input_names=["images"], output_names=["logits"],
                                  dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=external)
            except Exception as e:  # the exporter's own failures (an unsupported op at this opset, ...)
                raise InteropError(f"the ONNX exporter could not write opset {opset}: "
                                   f"{str(e).strip().splitlines()[-1][:300]}") from e
            proto = onnx.load(str(tmp))
            props = {"mean": json.dumps(list(meta.get("mean", []))), "std": json.dumps(list(meta.get("std", []))),
                     "classes": json.dumps(list(meta.get("classes", []))), "img_size": str(cfg.img_size),
                     "resample": "bicubic", "resize": meta.get("resize", "center-crop"),
                     "input": "pixels in [0, 1]" if pixels else "standardised"}
            onnx.helper.set_model_props(proto, props)
            onnx.save(proto, str(tmp), save_as_external_data=external)
            _check(tmp, exported, example, opset)
            atomic_copy(tmp, path)
            if external and (tmp.parent / (tmp.name + ".data")).exists():
                atomic_copy(tmp.parent / (tmp.name + ".data"), path.parent / (path.name + ".data"))
    finally:
        model.train(was_training)
    return path


def _check(path: Path, module: nn.Module, example: torch.Tensor, opset: int) -> None:
    """onnx.checker, then onnxruntime on ``example`` against PyTorch (1e-4)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"images": example.cpu().numpy()})
    except Exception as e:
        raise InteropError(f"the exported opset {opset} file does not load: {str(e).strip().splitlines()[0][:300]} "
                           f"(onnx {onnx.__version__}, onnxruntime {ort.__version__}; opset {MIN_OPSET}-23 are known "
                           f"to work, --opset {DEFAULT_OPSET} is the default)") from e
    with torch.no_grad():
        want = module(example).float().cpu().numpy()
    err = float(np.abs(got - want).max())
    if not err <= 1e-4:
        raise InteropError(f"the exported opset {opset} file gives logits {err:.2e} away from PyTorch's "
                           f"(more than 1e-4)")


def read_onnx_meta(path: str | Path) -> dict:
    """The preprocessing :func:`export_onnx` stored: {"mean", "std", "classes", "img_size", "resample", "input"}."""
    require("onnx", "onnx")
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    out = {k: json.loads(props[k]) for k in ("mean", "std", "classes") if k in props}
    return {**out, **{k: props[k] for k in ("img_size", "resample", "resize", "input") if k in props}}
