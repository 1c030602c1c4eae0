"""Stratified held-out splits, fixed by a seed: the validation split every source carves from its training data."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .dataset import ImageSet


def stratified_split(labels: np.ndarray, fraction: float, seed: int | tuple[int, ...],
                     classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), each sorted, holding out round(fraction * n_c) of each class c (at least one,
    never all), chosen at random with ``seed``.

    Raises:
        DataError: a class with fewer than 2 images (it could not be on both sides).
    """
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 2:
            name = classes[c] if classes else int(c)
            raise DataError(f"class {name!r} has {len(idx)} image: a stratified split needs at least 2 per class")
        k = min(max(int(np.floor(len(idx) * fraction + 0.5)), 1), len(idx) - 1)
        held.append(idx[:k])
        kept.append(idx[k:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def carve_validation(train: ImageSet, fraction: float, seed: int | tuple[int, ...]) -> tuple[ImageSet, ImageSet]:
    """(train without the validation images, validation): a stratified ``fraction`` of each class."""
    labels = train.labels.numpy()
    if labels.ndim != 1:
        raise ValueError("carve_validation needs one class label per image")
    kept, held = stratified_split(labels, fraction, seed, train.classes)
    return train.subset(torch.from_numpy(kept)), train.subset(torch.from_numpy(held))
