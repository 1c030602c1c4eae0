"""Data sources by name: each gives (train, test) ImageSets with no network access."""
from __future__ import annotations

from ..config import DataConfig
from .dataset import ImageSet
from .digits import load_digits_split

SOURCES = ("digits",)


def load_data(cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    name = cfg.name.split(":", 1)[0]
    if name == "digits":
        return load_digits_split(cfg.test_fraction, cfg.split_seed)
    raise ValueError(f"unknown data set {cfg.name!r}; expected one of {list(SOURCES)}")
