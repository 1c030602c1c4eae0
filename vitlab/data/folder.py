"""Any folder of images with one sub-folder per class, decoded once into one uint8 tensor.

Three layouts are understood::

    root/train/<class>/*.png  root/val/<class>/*.png  root/test/<class>/*.png   (all three splits given)
    root/train/<class>/*.png  root/test/<class>/*.png   (or val/ for test/, as ImageNet's val/ is its test set)
    root/<class>/*.jpg                                  (the test split is carved here: ``test_split`` of each class)

Where no validation folder is given, ``vitlab.data.load_data`` carves one from the training images.

Class names are the sub-folder names in sorted order, so label ``i`` means the same class
on every machine whatever order the file system lists them in. Images are decoded with PIL,
converted to L (1 channel) or RGB (3) and optionally resized (bicubic, antialiased); they
are written straight into one preallocated array, so memory is that of the uint8 set.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError, MissingFileError
from .dataset import ImageSet
from .splits import stratified_split
from .images import read_image_array

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                              ".pbm"})
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def list_classes(root: Path) -> list[tuple[str, list[Path]]]:
    """(class name, sorted image files) for each class sub-folder of ``root``, classes sorted by name."""
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                        key=lambda d: d.name)
    if not class_dirs:
        raise DataError(f"image folder {root} is empty: expected one sub-folder of images per class")
    out = []
    for d in class_dirs:
        files = sorted(f for f in d.iterdir()
                       if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".") and f.is_file())
        if not files:
            raise DataError(f"class folder {d} has no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        out.append((d.name, files))
    return out


def infer_channels(files: list[Path], *, skip_bad: bool = False) -> int:
    """1 if the first readable image is greyscale (mode L and kin), else 3."""
    for f in files:
        try:
            with Image.open(f) as img:
                return 1 if img.mode in GREY_MODES else 3
        except (OSError, SyntaxError, ValueError) as e:
            if not skip_bad:
                raise DataError(f"cannot read image {f}: {e}") from e
    raise DataError(f"none of the {len(files)} images could be read to infer the number of channels")


def decode_images(files: list[Path], labels: np.ndarray, *, channels: int, size: int | None,
                  skip_bad: bool = False, shape: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``files`` into uint8 (N, C, H, W), dropping unreadable ones when ``skip_bad``.

    Without ``size`` every image must have the size of the first (or ``shape``, when given).
    Returns the images and the labels of the images kept.
    """
    out: np.ndarray | None = None
    keep = np.zeros(len(files), dtype=bool)
    bad: list[str] = []
    for i, path in enumerate(files):
        try:
            arr = read_image_array(path, channels=channels, size=size)  # (C, H, W)
        except (DataError, MissingFileError) as e:
            if not skip_bad:
                raise
            bad.append(f"{path}: {e}")
            continue
        if out is None:
            shape = shape or arr.shape
            out = np.empty((len(files), *shape), dtype=np.uint8)  # (N, C, H, W)
        if arr.shape != shape:
            raise DataError(f"image {path} is {arr.shape[1]}x{arr.shape[2]} but earlier images are "
                            f"{shape[1]}x{shape[2]}: set data.img_size to resize every image to one size")
        out[i] = arr
        keep[i] = True
    if bad:
        log.warning("skipped %d unreadable image(s) (data.skip_bad=true):\n  %s", len(bad), "\n  ".join(bad))
    if out is None:
        raise DataError(f"none of the {len(files)} images could be read")
    return out[keep], labels[keep]


def _read_split(root: Path, classes: list[str] | None, *, channels: int, size: int | None, skip_bad: bool,
                shape: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    found = list_classes(root)
    names = [name for name, _ in found]
    if classes is None:
        classes = names
    elif unknown := sorted(set(names) - set(classes)):
        raise DataError(f"image folder {root} has class folder(s) {unknown} that the training split lacks; "
                        f"training classes: {classes}")
    files = [f for _, fs in found for f in fs]
    labels = np.concatenate([np.full(len(fs), classes.index(name), dtype=np.int64) for name, fs in found])
    images, labels = decode_images(files, labels, channels=channels, size=size, skip_bad=skip_bad, shape=shape)
    for name, _ in found:
        if not (labels == classes.index(name)).any():
            raise DataError(f"class folder {root / name} has no readable images")
    return images, labels, classes


def load_folder(root: str | Path, *, channels: int = 0, img_size: int = 0, test_split: float = 0.2,
                seed: int = 0, skip_bad: bool = False) -> tuple[ImageSet, ImageSet | None, ImageSet]:
    """(train, validation or None, test) ImageSets from an image folder (layouts in the module docstring).

    Args:
        root: the folder.
        channels: 1 (L) or 3 (RGB); 0 infers it from the first training image (greyscale -> 1, else 3).
        img_size: resize every image to ``img_size`` × ``img_size``; 0 keeps the size, which must then agree.
        test_split: the fraction of each class held out for testing when there are no ``train/`` and
            ``test/`` (or ``val/``) folders.
        seed: the seed of that split.
        skip_bad: log a warning listing unreadable images and leave them out, instead of raising.

    Raises:
        MissingFileError: ``root`` does not exist.
        DataError: an empty folder or class folder, an unreadable image (without ``skip_bad``), images of
            different sizes with ``img_size=0``, or a class the training split lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist")
    size = img_size or None
    has = {n: (root / n).is_dir() for n in ("train", "val", "test")}
    if has["train"] and (has["test"] or has["val"]):
        train_root = root / "train"
        c = channels or infer_channels([f for _, fs in list_classes(train_root) for f in fs], skip_bad=skip_bad)
        x, y, classes = _read_split(train_root, None, channels=c, size=size, skip_bad=skip_bad)
        train = ImageSet(torch.from_numpy(x), torch.from_numpy(y), classes)

        def read(name: str) -> ImageSet:
            tx, ty, _ = _read_split(root / name, classes, channels=c, size=size, skip_bad=skip_bad, shape=x.shape[1:])
            return ImageSet(torch.from_numpy(tx), torch.from_numpy(ty), classes)

        # train/ + val/ + test/: all three given; train/ + test/ or train/ + val/: that folder is the test
        # split (ImageNet's val/ is its test set in practice) and the validation split is carved from train/
        if has["test"] and has["val"]:
            return train, read("val"), read("test")
        return train, None, read("test" if has["test"] else "val")
    c = channels or infer_channels([f for _, fs in list_classes(root) for f in fs], skip_bad=skip_bad)
    x, y, classes = _read_split(root, None, channels=c, size=size, skip_bad=skip_bad)
    train_idx, test_idx = stratified_split(y, test_split, seed, classes)
    return (ImageSet(torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx]), classes), None,
            ImageSet(torch.from_numpy(x[test_idx]), torch.from_numpy(y[test_idx]), classes))
