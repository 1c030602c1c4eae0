"""The files a run leaves for use: ``model.safetensors`` (with the JSON that rebuilds the model in its header)
and, for a pretraining run, ``projection.safetensors``."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..config import ModelConfig, SegmentConfig
from ..configio import from_dict
from ..models import ViT
from ..models.projection import ProjectionHead
from ..models.segmenter import Segmenter
from .checkpoint import CheckpointError, load_meta, load_model_state, load_tensors, save_tensors

MODEL_FILE = "model.safetensors"
PROJECTION_FILE = "projection.safetensors"


def save_model(path: str | Path, model: ViT, extra: dict | None = None) -> None:
    """Weights plus ``{"model": <ModelConfig>, ...extra}`` (class names, normalisation statistics)."""
    save_tensors(path, model.state_dict(), {"model": asdict(model.cfg), **(extra or {})})


def _model_file(path: str | Path) -> Path:
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ViT, dict]:
    """Rebuild a ViT from a run folder or a ``model.safetensors`` file; returns (model in eval mode, metadata)."""
    path = _model_file(path)
    tensors, meta = load_tensors(path, device=device)
    if "model" not in meta:
        raise CheckpointError(f"{path} has no model configuration in its header: not a vitlab model file")
    if "segment" in meta:
        raise CheckpointError(f"{path} holds a segmentation model (a ViT encoder with a decoder), not a "
                              f"classifier; vitlab.train.load_segmenter rebuilds it, `vitlab eval` scores it")
    model = ViT(from_dict(ModelConfig, meta["model"])).to(device)
    load_model_state(model, tensors, str(path))
    return model.eval(), meta


def save_segmenter(path: str | Path, model: Segmenter, extra: dict | None = None) -> None:
    """Weights plus the encoder's ModelConfig, the decoder's SegmentConfig and the class count."""
    save_tensors(path, model.state_dict(), {"model": asdict(model.cfg), "segment": asdict(model.segment),
                                            "num_classes": model.num_classes, **(extra or {})})


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> tuple[Segmenter, dict]:
    """Rebuild a Segmenter from a segmentation run folder or its ``model.safetensors``; returns (model in eval
    mode, metadata)."""
    path = _model_file(path)
    tensors, meta = load_tensors(path, device=device)
    if "segment" not in meta or "model" not in meta:
        raise CheckpointError(f"{path} is not a segmentation model file (its header has no 'segment' section)")
    model = Segmenter(from_dict(ModelConfig, meta["model"]), from_dict(SegmentConfig, meta["segment"]),
                      num_classes=int(meta["num_classes"])).to(device)
    load_model_state(model, tensors, str(path))
    return model.eval(), meta


def load_any(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A classifier (ViT) or a segmentation model (Segmenter), whichever the model file holds, and its metadata."""
    meta = load_meta(_model_file(path))
    return (load_segmenter if "segment" in meta else load_model)(path, device)


def save_projection(path: str | Path, head: ProjectionHead) -> None:
    """SimCLR's projection head g(·), for ``vitlab tau-report``."""
    save_tensors(path, head.state_dict(), {"projection": head.dims()})


def load_projection(path: str | Path, device: str | torch.device = "cpu") -> ProjectionHead:
    tensors, meta = load_tensors(path, device=device)
    if "projection" not in meta:
        raise CheckpointError(f"{path} is not a projection-head file (its header has no 'projection' section)")
    head = ProjectionHead(**meta["projection"]).to(device)
    load_model_state(head, tensors, str(path))
    return head.eval()
