"""An image classification set held in memory as one uint8 tensor."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """Images as uint8 (N, C, H, W), labels as int64 (N,), and the class names.

    Holding the whole split as one tensor lets a batch be a slice: no per-image Python
    work per step, and the set moves to the GPU in one copy.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.labels.shape[0] if self.labels.ndim else 0} labels for "
                             f"{self.images.shape[0]} images: expected one label per image")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # (C, H, W)

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the images scaled to [0, 1] (for normalisation)."""
        x = self.images.float().div_(255).transpose(0, 1).flatten(1)  # (C, N*H*W)
        return x.mean(1).tolist(), x.std(1).clamp_min(1e-6).tolist()
