"""An image set held in memory as one uint8 tensor, and the three splits every source yields."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


@dataclass
class ImageSet:
    """Images as uint8 (N, C, H, W), their labels as int64, and the class names.

    ``labels`` is (N,) for classification (and for the kNN monitor of pretraining) and (N, H, W), one
    class per pixel, for segmentation: one container, so the loop slices a batch the same way for every
    task. Holding the whole split as one tensor makes a batch a slice: no per-image Python work per step,
    and the set moves to the GPU in one copy.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n, _, h, w = self.images.shape
        if self.images.stride() != torch.empty(self.images.shape, device="meta").stride():
            # one layout for every source: a size-1 axis (one channel) may carry any stride and still count as
            # contiguous, and oneDNN picks its convolution kernel, so its rounding, by the strides; without this a
            # run from a store and the same run in memory part after a few ulps
            self.images = self.images.clone(memory_format=torch.contiguous_format)
        if self.labels.ndim == 0 or self.labels.shape[0] != n:
            raise ValueError(f"{self.labels.shape[0] if self.labels.ndim else 0} labels for {n} images: expected "
                             f"one label (or one label map) per image")
        if self.labels.ndim not in (1, 3) or (self.labels.ndim == 3 and tuple(self.labels.shape[1:]) != (h, w)):
            raise ValueError(f"labels must be (N,) or (N, H, W) = (N, {h}, {w}), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # (C, H, W)

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes)

    def subset(self, index) -> "ImageSet":
        """The images at ``index`` (indices, a slice or a boolean mask), in that order."""
        return ImageSet(self.images[index], self.labels[index], self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the images scaled to [0, 1] (for normalisation)."""
        return channel_stats(self.images.cpu())


def channel_stats(images, chunk: int | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean and (sample) std, clamped at 1e-6, of uint8 images (N, C, H, W) scaled to [0, 1], from
    exact integer sums over chunks of ``images[start:stop]`` (about 4 M values each unless ``chunk`` images are
    asked for): the same numbers for a set in memory and the same set in a store (vitlab.data.store.Rows),
    whatever the chunking, and memory that does not grow with N."""
    n, c = images.shape[:2]
    chunk = chunk or max(1, 2**22 // int(np.prod(images.shape[1:])))
    total = np.zeros(c, dtype=np.int64)
    squares = np.zeros(c, dtype=np.int64)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].numpy().transpose(1, 0, 2, 3).reshape(c, -1).astype(np.int64)  # (C, chunk*H*W)
        total += x.sum(1)
        squares += (x * x).sum(1)
    count = n * int(np.prod(images.shape[2:]))
    mean = total / count
    var = (squares - total * mean) / max(count - 1, 1)  # sum (x - mean)^2 = sum x^2 - mean * sum x
    return (mean / 255).tolist(), np.maximum(np.sqrt(np.maximum(var, 0)) / 255, 1e-6).tolist()


class Splits(NamedTuple):
    """Train, validation and test sets of one source: choose on ``val``, report ``test`` once, at the end."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
