"""A semantic-segmentation set made of real digits: scikit-learn's 8×8 digits placed on a larger canvas.

Each canvas holds 1..``max_digits`` digits, each enlarged ``scale``× (nearest or bilinear) and
put at a random position, either without overlap (``combine='disjoint'``) or overlapping with
the image the pixel-wise maximum (``combine='max'``). Every pixel is labelled with its digit's
class + 1 where the stroke is (the digit's value, on its 0..16 scale, above ``threshold``) and 0
(background) elsewhere: 11 classes. Where digits overlap, the pixel belongs to the digit with the
larger value there (the one that made the maximum).

The canvases of each split are drawn from that split's own digits: the test digits are the fixed
stratified test split of ``vitlab.data.digits.load_digits_split``, the validation digits the stratified
``val_split`` of the rest (``vitlab.data.splits``, as every source carves it), so validation and test
canvases show only digits the model never trained on. Everything is a pure function of the seeds.
A split is an ``ImageSet`` whose labels are the (N, H, W) label maps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from ..config import SEG_COMBINES, SEG_RESIZES
from .dataset import ImageSet, Splits
from .digits import digits_test_split
from .splits import stratified_split

if TYPE_CHECKING:
    from ..config import DataConfig, SegmentConfig

NUM_CLASSES = 11  # background + digits 0-9
CLASSES = ["background"] + [str(c) for c in range(10)]


def enlarge(digits: np.ndarray, scale: int, mode: str = "nearest") -> np.ndarray:
    """(N, 8, 8) float digits -> (N, 8s, 8s), by pixel repetition or bilinear interpolation."""
    if scale == 1:
        return digits.astype(np.float32)
    x = torch.from_numpy(digits.astype(np.float32))[:, None]  # (N, 1, 8, 8)
    if mode not in SEG_RESIZES:
        raise ValueError(f"resize mode={mode!r} is not one of {SEG_RESIZES}")
    y = F.interpolate(x, scale_factor=scale, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return y[:, 0].numpy()  # (N, 8s, 8s)


def compose(digits: np.ndarray, labels: np.ndarray, *, n_images: int, canvas: int = 32, max_digits: int = 3,
            scale: int = 2, resize: str = "nearest", combine: str = "disjoint", threshold: float = 4.0,
            seed: int = 0, source_index: np.ndarray | None = None) -> tuple[ImageSet, torch.Tensor]:
    """Place digits on ``n_images`` canvases; returns the canvases and where each digit went.

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
        images (N, 1, canvas, canvas) uint8 (0..16 rescaled to 0..255), labels (N, canvas, canvas) int64;
        placements int64 (N, max_digits, 4): (index into sklearn's ``load_digits()`` (or ``source_index``),
        class, top, left) of each placed digit, rows of -1 where a canvas holds fewer digits.
    """
    if combine not in SEG_COMBINES:
        raise ValueError(f"combine={combine!r} is not one of {SEG_COMBINES}")
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
    return ImageSet(torch.from_numpy(pixels), torch.from_numpy(masks), list(CLASSES)), torch.from_numpy(placements)


def load_segmentation(seg: SegmentConfig, data: DataConfig, *,
                      placements: bool = False) -> Splits | tuple[Splits, tuple[torch.Tensor, ...]]:
    """Train, validation and test canvases for a ``SegmentConfig``, each made of its own split's digits
    (``data.test_split``, ``data.val_split``, ``data.split_seed``, as the digits source splits them).
    With ``placements`` also each split's (N, max_digits, 4) placements (see :func:`compose`)."""
    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = digits_test_split(labels, data.test_split, data.split_seed)
    kept, held = stratified_split(labels[idx_train], data.val_split, data.split_seed)
    idx_train, idx_val = idx_train[kept], idx_train[held]
    kw = dict(canvas=seg.canvas, max_digits=seg.max_digits, scale=seg.scale, resize=seg.resize,
              combine=seg.combine, threshold=seg.threshold)
    made = [compose(bunch.images[idx], labels[idx], n_images=n, seed=3 * seg.data_seed + k, source_index=idx, **kw)
            for k, (idx, n) in enumerate(((idx_train, seg.train_images), (idx_val, seg.val_images),
                                          (idx_test, seg.test_images)))]  # distinct streams, all fixed by data_seed
    splits = Splits(*(canvases for canvases, _ in made))
    return (splits, tuple(where for _, where in made)) if placements else splits
