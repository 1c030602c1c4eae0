"""A semantic-segmentation set made of real digits: scikit-learn's 8×8 digits placed on a larger canvas.

Each canvas holds 1..``max_digits`` digits, each enlarged ``scale``× (nearest or bilinear) and
put at a random position, either without overlap (``combine='disjoint'``) or overlapping with
the image the pixel-wise maximum (``combine='max'``). Every pixel is labelled with its digit's
class + 1 where the stroke is (the digit's value, on its 0..16 scale, above ``threshold``) and 0
(background) elsewhere: 11 classes. Where digits overlap, the pixel belongs to the digit with the
larger value there (the one that made the maximum).

Train and test canvases are drawn from the digits' own fixed stratified split (the one
``vitlab.data.digits.load_digits_split`` uses), so the test canvases show only unseen digits.
Everything is a pure function of the seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NUM_CLASSES = 11  # background + digits 0-9
CLASSES = ["background"] + [str(c) for c in range(10)]


@dataclass
class SegmentationSet:
    """Images uint8 (N, 1, H, W), masks int64 (N, H, W) in 0..10, and where each digit went.

    ``placements`` is int64 (N, max_digits, 4): (index into sklearn's ``load_digits()``, class,
    top, left) of each placed digit, rows of -1 where a canvas holds fewer digits.
    """

    images: torch.Tensor
    masks: torch.Tensor
    placements: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n, _, h, w = self.images.shape
        if self.masks.dtype != torch.int64 or tuple(self.masks.shape) != (n, h, w):
            raise ValueError(f"masks must be int64 {(n, h, w)}, got {self.masks.dtype} {tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # (C, H, W)

    def to(self, device) -> "SegmentationSet":
        return SegmentationSet(self.images.to(device), self.masks.to(device), self.placements, self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        x = self.images.float().div_(255).transpose(0, 1).flatten(1)  # (C, N*H*W)
        return x.mean(1).tolist(), x.std(1).clamp_min(1e-6).tolist()


def enlarge(digits: np.ndarray, scale: int, mode: str = "nearest") -> np.ndarray:
    """(N, 8, 8) float digits -> (N, 8s, 8s), by pixel repetition or bilinear interpolation."""
    if scale == 1:
        return digits.astype(np.float32)
    x = torch.from_numpy(digits.astype(np.float32))[:, None]  # (N, 1, 8, 8)
    if mode == "nearest":
        y = F.interpolate(x, scale_factor=scale, mode="nearest")
    elif mode == "bilinear":
        y = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    else:
        raise ValueError(f"resize mode={mode!r} is not one of ('nearest', 'bilinear')")
    return y[:, 0].numpy()  # (N, 8s, 8s)


def compose(digits: np.ndarray, labels: np.ndarray, *, n_images: int, canvas: int = 32, max_digits: int = 3,
            scale: int = 2, resize: str = "nearest", combine: str = "disjoint", threshold: float = 4.0,
            seed: int = 0, source_index: np.ndarray | None = None) -> SegmentationSet:
    """Place digits on ``n_images`` canvases.

    Args:
        digits: (M, 8, 8) digit images on sklearn's 0..16 scale; labels: (M,) their classes 0-9.
        n_images: canvases to make; canvas: their side in pixels.
        max_digits: each canvas draws 1..max_digits digits uniformly.
        scale, resize: each digit is enlarged to 8*scale pixels a side ('nearest' or 'bilinear').
        combine: 'disjoint' (boxes never overlap; a digit that finds no free place after 100
            tries is left out) or 'max' (anywhere; the image is the maximum).
        threshold: stroke pixels are those above it (0..16 scale).
        seed: the canvases are a pure function of the inputs and this seed.
        source_index: (M,) ids recorded in ``placements`` (default: 0..M-1).

    Shape:
        images (N, 1, canvas, canvas) uint8 (0..16 rescaled to 0..255), masks (N, canvas, canvas) int64.
    """
    if combine not in ("disjoint", "max"):
        raise ValueError(f"combine={combine!r} is not one of ('disjoint', 'max')")
    side = 8 * scale
    if side > canvas:
        raise ValueError(f"a digit enlarged {scale}x is {side} pixels, larger than the canvas {canvas}")
    rng = np.random.default_rng(seed)
    big = enlarge(digits, scale, resize)  # (M, side, side)
    source_index = np.arange(len(digits)) if source_index is None else source_index
    images = np.zeros((n_images, canvas, canvas), np.float32)
    masks = np.zeros((n_images, canvas, canvas), np.int64)
    placements = np.full((n_images, max_digits, 4), -1, np.int64)
    for i in range(n_images):
        value = images[i]  # views: the canvas value and which digit (class + 1) made it
        owner = np.zeros((canvas, canvas), np.int64)
        boxes: list[tuple[int, int]] = []
        for slot in range(int(rng.integers(1, max_digits + 1))):
            j = int(rng.integers(len(digits)))
            for _ in range(100):
                top, left = (int(v) for v in rng.integers(0, canvas - side + 1, size=2))
                if combine == "max" or all(abs(top - t) >= side or abs(left - l) >= side for t, l in boxes):
                    break
            else:
                continue  # no free place: the canvas holds fewer digits
            boxes.append((top, left))
            patch = big[j]
            region = value[top:top + side, left:left + side]
            wins = patch > region  # the new digit makes the maximum there
            region[wins] = patch[wins]
            owner[top:top + side, left:left + side][wins] = labels[j] + 1
            placements[i, slot] = (source_index[j], labels[j], top, left)
        masks[i] = np.where(value > threshold, owner, 0)
    pixels = np.rint(np.clip(images, 0, 16) * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, H, W)
    return SegmentationSet(torch.from_numpy(pixels), torch.from_numpy(masks), torch.from_numpy(placements),
                           list(CLASSES))


def load_segmentation(seg, *, val_split: float = 0.2, split_seed: int = 0) -> tuple[SegmentationSet, SegmentationSet]:
    """(train, test) canvases for a ``SegmentConfig``; test canvases use only the held-out digits."""
    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=val_split, stratify=labels,
                                           random_state=split_seed)
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    kw = dict(canvas=seg.canvas, max_digits=seg.max_digits, scale=seg.scale, resize=seg.resize,
              combine=seg.combine, threshold=seg.threshold)
    # distinct streams for the two splits, both fixed by data_seed
    train = compose(bunch.images[idx_train], labels[idx_train], n_images=seg.train_images, seed=2 * seg.data_seed,
                    source_index=idx_train, **kw)
    test = compose(bunch.images[idx_test], labels[idx_test], n_images=seg.test_images,
                   seed=2 * seg.data_seed + 1, source_index=idx_test, **kw)
    return train, test
