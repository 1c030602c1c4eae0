"""Decoding one image file with PIL into the uint8 tensor the model's data pipeline expects.

An image whose size is not the model's is fitted by an explicit policy (``data.resize``), the same in training,
evaluation and ``vitlab predict``, and written into the exports' preprocessing:

* ``center-crop`` (the default, as timm and torchvision evaluate): the shorter side to ``size`` (bicubic), then
  the centre ``size`` × ``size`` (the arithmetic of HF's ``BitImageProcessor`` with ``shortest_edge`` and
  ``crop_size``, so an HF export reproduces it);
* ``squash``: both sides to ``size``, whatever the aspect ratio (HF's ``ViTImageProcessor``);
* ``pad``: the longer side to ``size``, centred on black.

A file with more pixels than ``max_pixels`` is refused from its header, before it is decoded (PIL's own
decompression-bomb check, at 89.5 megapixels, otherwise warns or fails in its own words).

JPEG files are decoded with simplejpeg (libjpeg-turbo) where it is installed, in its accurate modes
(``fastdct=False, fastupsample=False``): the same pixels as PIL to the last bit (tests/test_store.py checks it),
about 6x faster on CIFAR-10's files (benchmarks/store.md); everything else, and JPEGs without it, with PIL.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..config import DEFAULT_MAX_PIXELS, RESIZES
from ..errors import DataError, MissingFileError

try:
    import simplejpeg
except ImportError:  # optional: PIL decodes JPEGs too, the same pixels, slower
    simplejpeg = None

JPEG_SUFFIXES = (".jpg", ".jpeg")


def _decode(path: Path, max_pixels: int) -> Image.Image:
    """The image at ``path``, its size checked against ``max_pixels`` from the header first: JPEGs (YCbCr or grey)
    by simplejpeg when installed, anything else by PIL."""
    if simplejpeg is not None and path.suffix.lower() in JPEG_SUFFIXES:
        data = path.read_bytes()
        try:
            h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            colorspace = None  # not a JPEG after all: PIL says what it is
        if colorspace in ("YCbCr", "Gray"):
            _check_pixels(path, w, h, max_pixels)
            grey = colorspace == "Gray"
            arr = simplejpeg.decode_jpeg(data, colorspace="GRAY" if grey else "RGB", fastdct=False,
                                         fastupsample=False)
            return Image.fromarray(arr[..., 0] if grey else arr, "L" if grey else "RGB")
    img = Image.open(path)  # lazy: the header is read, the pixels are not yet
    _check_pixels(path, *img.size, max_pixels)
    return img


def _check_pixels(path: Path, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise DataError(f"image {path} has {w}x{h} = {w * h:,} pixels, more than data.max_pixels={max_pixels:,} "
                        f"(a decompression bomb?); raise data.max_pixels to read it")


def fit_image(img: Image.Image, size: int, policy: str = "center-crop") -> Image.Image:
    """``img`` as ``size`` × ``size`` by ``policy`` (module docstring); unchanged if it already is."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    if policy == "squash":
        return img.resize((size, size), Image.Resampling.BICUBIC)
    if policy == "center-crop":
        nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        return img.crop((left, top, left + size, top + size))
    if policy == "pad":
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new(img.mode, (size, size))
        canvas.paste(img.resize((nw, nh), Image.Resampling.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
        return canvas
    raise ValueError(f"resize policy {policy!r} is not one of {RESIZES}")


def describe_fit(original: tuple[int, int], size: int | None, policy: str) -> str:
    """How an image of ``original`` (W, H) pixels reaches the model, e.g. '640x427 -> center-crop 64x64'."""
    w, h = original
    if size is None or (w, h) == (size, size):
        return f"{w}x{h}"
    return f"{w}x{h} -> {policy} {size}x{size}"


def load_image(path: str | Path, *, channels: int, size: int | None = None, invert: bool = False,
               resize: str = "center-crop", max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """An image file as uint8 (C, H, W): converted to L (1 channel) or RGB (3), fitted to ``size`` by ``resize``."""
    arr = read_image_array(path, channels=channels, size=size, resize=resize, max_pixels=max_pixels)
    if invert:
        arr = 255 - arr
    return torch.from_numpy(arr.copy())  # a writable, contiguous copy


def read_image_array(path: str | Path, *, channels: int, size: int | None = None, resize: str = "center-crop",
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file as a uint8 numpy array (C, H, W); ``load_image`` without torch, for bulk loading.

    Raises:
        MissingFileError: ``path`` is not a file.
        DataError: more than ``max_pixels`` pixels, or PIL cannot decode it (not an image, truncated, corrupt);
            the message names the file.
    """
    path = Path(path)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not path.is_file():
        raise MissingFileError(f"image file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below, in our own words
            with _decode(path, max_pixels) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                if size is not None:
                    img = fit_image(img, size, resize)
                arr = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W[, C]) -> (C, H, W)


def image_header(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, tuple[int, int]]:
    """(PIL mode, (W, H)) of an image file from its header, without decoding its pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.mode, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e
