"""scikit-learn's bundled handwritten digits: 1,797 real 8×8 images, no download."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .dataset import ImageSet

DIGIT_CLASSES = [str(c) for c in range(10)]


def digits_test_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (train, test) of the fixed stratified test split, the one every digits task uses."""
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels,
                                           random_state=seed)
    return np.sort(idx_train), np.sort(idx_test)


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A fixed stratified train/test split of the UCI digits (values 0–16 rescaled to 0–255); the same
    split holds out the test digits of the segmentation canvases (vitlab.data.segmentation)."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = digits_test_split(labels, test_fraction, seed)
    make = lambda idx: ImageSet(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]),  # noqa: E731
                                list(DIGIT_CLASSES))
    return make(idx_train), make(idx_test)
