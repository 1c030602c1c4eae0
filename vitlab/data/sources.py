"""Data sources by name: each gives train, validation and test ImageSets, with no network access.

``DataConfig.name`` is ``SOURCE`` or ``SOURCE:PATH``::

    digits                 scikit-learn's bundled 8×8 digits (a fixed stratified test split, data.test_split)
    mnist:PATH             the four MNIST idx files in PATH, gzip-compressed or not
    fashion-mnist[:PATH]   Fashion-MNIST idx files; without PATH, Debian's dataset-fashion-mnist package
    cifar10:PATH           CIFAR-10's python batches (cifar-10-batches-py)
    folder:PATH            one sub-folder of images per class, with or without train/, val/ and test/
    store:PATH             a store ``vitlab data pack`` wrote from any of these (vitlab.data.store): the images
                           stay on disk and are read batch by batch, so a set larger than memory trains

The validation split is carved from the training images (stratified, ``data.val_split`` of each class,
fixed by ``data.split_seed``) unless the source brings its own (a folder's ``val/`` beside ``test/``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError, MissingFileError
from .cifar import load_cifar10
from .dataset import ImageSet, Splits
from .digits import load_digits_split
from .folder import load_folder
from .idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, default_fashion_mnist_dir, load_idx_dir
from .splits import carve_validation

if TYPE_CHECKING:
    from ..config import DataConfig

# name -> whether it takes a PATH: "no", "optional" or "required"
SOURCES: dict[str, str] = {"digits": "no", "mnist": "required", "fashion-mnist": "optional", "cifar10": "required",
                           "folder": "required", "store": "required"}
USAGE = "digits, mnist:PATH, fashion-mnist[:PATH], cifar10:PATH, folder:PATH, store:PATH"


def parse_source(name: str) -> tuple[str, Path | None]:
    """``'mnist:~/data/mnist'`` -> ``('mnist', Path('/home/.../data/mnist'))``, checked against ``SOURCES``.

    Raises:
        DataError: an unknown source, a missing PATH where one is required, or one where none is taken.
        MissingFileError: PATH does not exist.
    """
    source, colon, path = name.partition(":")
    source = source.strip().lower()
    if source not in SOURCES:
        raise DataError(f"unknown data set {name!r}; expected one of {USAGE}")
    takes = SOURCES[source]
    if colon and not path:
        raise DataError(f"data set {name!r} has an empty PATH after ':'")
    if takes == "no" and path:
        raise DataError(f"data set {source!r} takes no PATH, got {name!r}")
    if takes == "required" and not path:
        raise DataError(f"data set {source!r} needs a folder: give it as {source}:PATH")
    if not path:
        return source, None
    folder = Path(path).expanduser()
    if not folder.exists():
        if source == "store":
            raise MissingFileError(f"store {folder} does not exist; make it with: vitlab data pack SOURCE --out "
                                   f"{folder}")
        raise MissingFileError(f"data folder {folder} (from data.name={name!r}) does not exist")
    return source, folder


def load_source(cfg: DataConfig) -> tuple[ImageSet, ImageSet | None, ImageSet]:
    """(train, the source's own validation split or None, test) of ``cfg.name``, before a validation split is
    carved: what a store keeps, so that a store and its source give the same three splits."""
    source, path = parse_source(cfg.name)
    if source == "digits":
        return _with_no_val(load_digits_split(cfg.test_split, cfg.split_seed))
    if source == "mnist":
        return _with_no_val(load_idx_dir(path, MNIST_CLASSES))
    if source == "fashion-mnist":
        return _with_no_val(load_idx_dir(path or default_fashion_mnist_dir(), FASHION_MNIST_CLASSES))
    if source == "cifar10":
        return _with_no_val(load_cifar10(path))
    if source == "folder":
        return load_folder(path, channels=cfg.channels, img_size=cfg.img_size, test_split=cfg.test_split,
                           seed=cfg.split_seed, skip_bad=cfg.skip_bad, resize=cfg.resize, max_pixels=cfg.max_pixels)
    if source == "store":
        from .store import load_store  # the store packs the other sources: it imports this module

        return load_store(cfg)
    raise AssertionError(f"source {source!r} is in SOURCES but has no loader")  # unreachable


def _with_no_val(train_test: tuple[ImageSet, ImageSet]) -> tuple[ImageSet, None, ImageSet]:
    return train_test[0], None, train_test[1]


def load_data(cfg: DataConfig) -> Splits:
    """Train, validation and test for ``cfg.name``: uint8 images (N, C, H, W) and int64 labels, in memory (a
    store's images stay on disk: vitlab.data.store.DiskImageSet)."""
    train, val, test = load_source(cfg)
    if val is None:
        seed = cfg.split_seed if cfg.val_fold == 0 else (cfg.split_seed, cfg.val_fold)  # the test split stays
        train, val = carve_validation(train, cfg.val_split, seed)
    splits = Splits(train, val, test)
    return rename_classes(splits, cfg.classes) if cfg.classes else splits


def rename_classes(splits: Splits, names: str) -> Splits:
    """``data.classes``: comma-separated names for a source's classes, in label order (idx and CIFAR files
    carry none, or only numbers)."""
    given = [n.strip() for n in names.split(",")]
    have = splits.train.classes
    if len(given) != len(have) or not all(given):
        raise DataError(f"data.classes names {len(given)} class(es) ({names!r}) but the data has {len(have)}: "
                        f"{have}")
    return Splits(*(replace(s, classes=given) for s in splits))
