"""Decoding one image file with PIL into the uint8 tensor the model's data pipeline expects."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, MissingFileError


def load_image(path: str | Path, *, channels: int, size: int | None = None, invert: bool = False) -> torch.Tensor:
    """An image file as uint8 (C, H, W): converted to L (1 channel) or RGB (3), resized to ``size``.

    Resizing uses PIL's bicubic filter, which antialiases when shrinking.
    """
    arr = read_image_array(path, channels=channels, size=size)
    if invert:
        arr = 255 - arr
    return torch.from_numpy(arr.copy())  # a writable, contiguous copy


def read_image_array(path: str | Path, *, channels: int, size: int | None = None) -> np.ndarray:
    """An image file as a uint8 numpy array (C, H, W); ``load_image`` without torch, for bulk loading.

    Raises:
        MissingFileError: ``path`` is not a file.
        DataError: PIL cannot decode it (not an image, truncated, corrupt); the message names the file.
    """
    path = Path(path)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not path.is_file():
        raise MissingFileError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BICUBIC)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
