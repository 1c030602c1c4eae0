"""scikit-learn's bundled handwritten digits: 1,797 real 8×8 images, no download."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .dataset import ImageSet


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A fixed stratified train/test split of the UCI digits (values 0–16 rescaled to 0–255)."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           stratify=labels, random_state=seed)
    classes = [str(c) for c in range(10)]
    make = lambda idx: ImageSet(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]), classes)  # noqa: E731
    return make(np.sort(idx_train)), make(np.sort(idx_test))
