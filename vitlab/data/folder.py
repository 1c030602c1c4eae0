"""Any folder of images with one sub-folder per class, decoded once into one uint8 tensor.

Three layouts are understood::

    root/train/<class>/*.png  root/val/<class>/*.png  root/test/<class>/*.png   (all three splits given)
    root/train/<class>/*.png  root/test/<class>/*.png   (or val/ for test/, as ImageNet's val/ is its test set)
    root/<class>/*.jpg                                  (the test split is carved here: ``test_split`` of each class)

Where no validation folder is given, ``vitlab.data.load_data`` carves one from the training images.

Class names are the sub-folder names in sorted order, so label ``i`` means the same class
on every machine whatever order the file system lists them in. Images are decoded with PIL,
converted to L (1 channel) or RGB (3), the mode most of them have, and fitted to one size by
``data.resize`` (vitlab.data.images); they are written straight into one preallocated array, so
memory is that of the uint8 set. :func:`inspect_folder` reads only the files' headers (modes,
sizes), for choosing a model that fits before anything is decoded.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import DEFAULT_MAX_PIXELS
from ..errors import DataError, MissingFileError
from .dataset import ImageSet
from .images import image_header, read_image_array
from .splits import stratified_split

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


@dataclass
class FolderInfo:
    """What an image folder holds, read from the files' headers only (no pixel is decoded): the layout's
    splits (name -> root), the class names (sorted), and over every image the PIL modes and sizes."""

    splits: dict[str, Path]
    classes: list[str]
    files: int
    counts: Counter = field(default_factory=Counter)  # split name -> readable images
    modes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (W, H) -> count
    unreadable: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        """1 if most images are greyscale (mode L and kin), else 3."""
        grey = sum(n for mode, n in self.modes.items() if mode in GREY_MODES)
        return 1 if grey * 2 > sum(self.modes.values()) else 3

    def converted(self, channels: int) -> int:
        """How many images are not already in the mode ``channels`` means, so PIL converts them."""
        keep = GREY_MODES if channels == 1 else {"RGB"}
        return sum(n for mode, n in self.modes.items() if mode not in keep)


def folder_splits(root: Path) -> dict[str, Path]:
    """The layout (module docstring): {'train': .., 'test': ..[, 'val': ..]} or {'all': root}."""
    has = {n: (root / n).is_dir() for n in ("train", "val", "test")}
    if has["train"] and (has["test"] or has["val"]):
        if has["test"] and has["val"]:
            return {"train": root / "train", "val": root / "val", "test": root / "test"}
        return {"train": root / "train", "test": root / ("test" if has["test"] else "val")}
    return {"all": root}


def inspect_folder(root: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, skip_bad: bool = False) -> FolderInfo:
    """The :class:`FolderInfo` of ``root``: every image's header, none decoded."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist")
    splits = folder_splits(root)
    first = next(iter(splits.values()))
    info = FolderInfo(splits, [name for name, _ in list_classes(first)], 0)
    for split, split_root in splits.items():
        for _, files in list_classes(split_root):
            for f in files:
                try:
                    mode, size = image_header(f, max_pixels)
                except DataError as e:
                    if not skip_bad:
                        raise
                    info.unreadable.append(str(e))
                    continue
                info.modes[mode] += 1
                info.sizes[size] += 1
                info.counts[split] += 1
                info.files += 1
    return info


def infer_channels(files: list[Path], *, skip_bad: bool = False) -> int:
    """1 if most of ``files`` are greyscale (mode L and kin), else 3; a minority in the other mode is converted
    (and counted in the log)."""
    modes: Counter = Counter()
    for f in files:
        try:
            modes[image_header(f)[0]] += 1
        except DataError:
            if not skip_bad:
                raise
    if not modes:
        raise DataError(f"none of the {len(files)} images could be read to infer the number of channels")
    info = FolderInfo({}, [], sum(modes.values()), modes=modes)
    channels, converted = info.channels, info.converted(info.channels)
    if converted:
        log.info("channels: %d (the majority of %d images); %d image(s) in other modes (%s) are converted", channels,
                 info.files, converted, ", ".join(f"{m} {n}" for m, n in sorted(modes.items())))
    return channels


def decode_images(files: list[Path], labels: np.ndarray, *, channels: int, size: int | None,
                  skip_bad: bool = False, shape: tuple[int, int, int] | None = None, resize: str = "center-crop",
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``files`` into uint8 (N, C, H, W), dropping unreadable ones when ``skip_bad``.

    With ``size`` every image is fitted to it by ``resize``; without, every image must have the size of the
    first (or ``shape``, when given). Returns the images and the labels of the images kept.
    """
    out: np.ndarray | None = None
    keep = np.zeros(len(files), dtype=bool)
    bad: list[str] = []
    for i, path in enumerate(files):
        try:
            arr = read_image_array(path, channels=channels, size=size, resize=resize, max_pixels=max_pixels)
        except (DataError, MissingFileError) as e:
            if not skip_bad:
                raise
            bad.append(f"{path}: {e}")
            continue
        if out is None:
            shape = shape or arr.shape
            out = np.empty((len(files), *shape), dtype=np.uint8)  # (N, C, H, W)
        if arr.shape != shape:
            raise DataError(f"image {path} is {arr.shape[2]}x{arr.shape[1]} but earlier images are "
                            f"{shape[2]}x{shape[1]}: set data.img_size to fit every image to one size "
                            f"(by data.resize)")
        out[i] = arr
        keep[i] = True
    if bad:
        log.warning("skipped %d unreadable image(s) (data.skip_bad=true):\n  %s", len(bad), "\n  ".join(bad))
    if out is None:
        raise DataError(f"none of the {len(files)} images could be read")
    return out[keep], labels[keep]


def _read_split(root: Path, classes: list[str] | None, *, channels: int, size: int | None, skip_bad: bool,
                shape: tuple[int, int, int] | None = None, resize: str = "center-crop",
                max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    found = list_classes(root)
    names = [name for name, _ in found]
    if classes is None:
        classes = names
    elif unknown := sorted(set(names) - set(classes)):
        raise DataError(f"image folder {root} has class folder(s) {unknown} that the training split lacks; "
                        f"training classes: {classes}")
    files = [f for _, fs in found for f in fs]
    labels = np.concatenate([np.full(len(fs), classes.index(name), dtype=np.int64) for name, fs in found])
    images, labels = decode_images(files, labels, channels=channels, size=size, skip_bad=skip_bad, shape=shape,
                                   resize=resize, max_pixels=max_pixels)
    for name, _ in found:
        if not (labels == classes.index(name)).any():
            raise DataError(f"class folder {root / name} has no readable images")
    return images, labels, classes


def load_folder(root: str | Path, *, channels: int = 0, img_size: int = 0, test_split: float = 0.2,
                seed: int = 0, skip_bad: bool = False, resize: str = "center-crop",
                max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ImageSet, ImageSet | None, ImageSet]:
    """(train, validation or None, test) ImageSets from an image folder (layouts in the module docstring).

    Args:
        root: the folder.
        channels: 1 (L) or 3 (RGB); 0 infers it from the training images (the majority's mode; the others are
            converted, and counted in the log).
        img_size: fit every image to ``img_size`` × ``img_size`` by ``resize``; 0 keeps the size, which must
            then agree.
        test_split: the fraction of each class held out for testing when there are no ``train/`` and
            ``test/`` (or ``val/``) folders.
        seed: the seed of that split.
        skip_bad: log a warning listing unreadable images and leave them out, instead of raising.
        resize: center-crop | squash | pad (vitlab.data.images).
        max_pixels: refuse an image with more pixels (from its header, before decoding).

    Raises:
        MissingFileError: ``root`` does not exist.
        DataError: an empty folder or class folder, an unreadable image (without ``skip_bad``), images of
            different sizes with ``img_size=0``, or a class the training split lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist")
    size = img_size or None
    splits = folder_splits(root)
    train_root = splits.get("train", root)
    c = channels or infer_channels([f for _, fs in list_classes(train_root) for f in fs], skip_bad=skip_bad)
    kw = dict(channels=c, size=size, skip_bad=skip_bad, resize=resize, max_pixels=max_pixels)
    x, y, classes = _read_split(train_root, None, **kw)
    if "all" in splits:
        train_idx, test_idx = stratified_split(y, test_split, seed, classes)
        return (ImageSet(torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx]), classes), None,
                ImageSet(torch.from_numpy(x[test_idx]), torch.from_numpy(y[test_idx]), classes))

    def read(name: str) -> ImageSet:
        tx, ty, _ = _read_split(splits[name], classes, shape=x.shape[1:], **kw)
        return ImageSet(torch.from_numpy(tx), torch.from_numpy(ty), classes)

    # train/ + val/ + test/: all three given; train/ + test/ or train/ + val/: that folder is the test split
    # (ImageNet's val/ is its test set in practice) and the validation split is carved from train/
    return (ImageSet(torch.from_numpy(x), torch.from_numpy(y), classes), read("val") if "val" in splits else None,
            read("test"))
