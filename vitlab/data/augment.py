"""Batched augmentation on the model's device with kornia."""
from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from ..config import DataConfig


def build_augment(cfg: DataConfig) -> nn.Module:
    """The training-time augmentation for ``cfg.augment``, applied to a whole float batch in [0, 1].

    ``digits``: small random translation, rotation and scaling. Handwritten digits keep
    their class under these (flips would not: 2 vs 5, 6 vs 9), and with only ~1,400
    training images they are what lets a ViT, which has no built-in translation
    invariance, learn one.
    """
    if cfg.augment == "none":
        return nn.Identity()
    return K.RandomAffine(degrees=cfg.rotate, translate=(cfg.translate, cfg.translate),
                          scale=(1.0 - cfg.scale, 1.0 + cfg.scale), p=1.0, padding_mode="zeros")


class Normalize(nn.Module):
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] then standardised with training-split statistics."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std
