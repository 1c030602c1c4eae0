"""The trained model file: ``model.safetensors`` with the JSON that rebuilds the model in its header."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..config import ModelConfig
from ..configio import from_dict
from ..models import ViT
from .checkpoint import CheckpointError, load_model_state, load_tensors, save_tensors

MODEL_FILE = "model.safetensors"


def save_model(path: str | Path, model: ViT, extra: dict | None = None) -> None:
    """Weights plus ``{"model": <ModelConfig>, ...extra}`` (class names, normalisation statistics)."""
    save_tensors(path, model.state_dict(), {"model": asdict(model.cfg), **(extra or {})})


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ViT, dict]:
    """Rebuild a ViT from a run folder or a ``model.safetensors`` file; returns (model in eval mode, metadata)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    tensors, meta = load_tensors(path, device=device)
    if "model" not in meta:
        raise CheckpointError(f"{path} has no model configuration in its header: not a vitlab model file")
    if "segment" in meta:
        raise CheckpointError(f"{path} holds a segmentation model (a ViT encoder with a decoder), not a "
                              f"classifier; vitlab.train.segment.load_segmenter rebuilds it, `vitlab eval` scores it")
    cfg = from_dict(ModelConfig, meta["model"])
    model = ViT(cfg).to(device)
    load_model_state(model, tensors, str(path))
    return model.eval(), meta
