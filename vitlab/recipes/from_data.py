"""Fitting a recipe's model to the data it is given, so that `vitlab train --data folder:DIR` needs no other flag.

A recipe fixes a model for its own data (digits: 1 channel, 8×8, 10 classes). Given another source, every model
key the person did not set themselves and that does not fit the data is taken from the data, and one line says
what was chosen:

* ``model.in_chans``: the data's channels (a folder's: the mode most of its images have; the rest are converted);
* ``model.img_size``: the data's size. A folder whose images differ in size or are not square is fitted to one
  size by ``data.resize`` (center-crop by default): the median shorter side rounded down to a multiple of 8 (of the
  patch size, when that is set or comes from ``--init`` weights), at most 224;
* ``model.num_classes``: the data's class count (a head never has more outputs than there are classes);
* ``model.patch_size``: kept if it divides the size into a grid of 4 to 8 tokens a side (and suits the stem),
  else the one whose grid (of 4 to 16 a side) is closest to 8 × 8;
* ``optim.epochs`` (and the warm-up with it), only when the model had to be fitted: the recipe's, or fewer on a
  larger data set, so that a run sees about IMAGES_SEEN training images (200,000: a few minutes on two CPU cores
  for these small models), at least one epoch. A recipe given data its model already fits (``--recipe cifar10
  --data store:DIR`` of CIFAR-10) keeps its own epochs: they were chosen for that data.
"""
from __future__ import annotations

import statistics
from dataclasses import replace

from ..config import RunConfig
from ..errors import DataError

MAX_INFERRED_SIZE = 224  # a larger folder image is fitted down to this unless data.img_size says otherwise
GRID = (4, 16)  # the token grid sides a chosen patch size may give
KEEP_GRID = (4, 8)  # the grid sides for which a recipe's own patch size is kept
TARGET_GRID = 8
IMAGES_SEEN = 200_000  # the training images a run fitted to a larger data set sees (epochs x images)


def _fits_stem(stem: str, patch: int) -> bool:
    return stem == "patch" or (patch >= 2 and patch & (patch - 1) == 0)


def choose_patch(size: int, current: int, stem: str = "patch") -> int | None:
    """``current`` if it makes a grid of 4..8 a side (and suits ``stem``), else the patch size whose grid (4..16 a
    side) is closest to 8 (ties: the smaller patch); None if no divisor of ``size`` gives such a grid."""
    ok = lambda p, lo=GRID[0], hi=GRID[1]: size % p == 0 and lo <= size // p <= hi and _fits_stem(stem, p)  # noqa: E731
    if ok(current, *KEEP_GRID):
        return current
    candidates = [p for p in range(1, size + 1) if ok(p)]
    return min(candidates, key=lambda p: (abs(size // p - TARGET_GRID), p)) if candidates else None


def fit_to_data(cfg: RunConfig, explicit: set[str] | frozenset[str] = frozenset()) -> tuple[RunConfig, str]:
    """``cfg`` with its model (and epochs) fitted to ``cfg.data`` (module docstring), and the one line that says what
    changed (empty if the recipe already fitted). ``explicit``: the dotted keys the person set (flags, config file,
    --size); those are never changed, so a contradiction between them and the data is still an error, later,
    naming both."""
    from ..data.folder import inspect_folder  # here: the recipes themselves are imported by every command
    from ..data.sources import load_data, parse_source

    if cfg.task == "segment":  # the canvases are generated to fit segment.canvas
        return cfg, ""
    m, d = cfg.model, cfg.data
    source, path = parse_source(d.name)
    notes: list[str] = []
    data_changes: dict = {}
    if source == "folder":
        info = inspect_folder(path, max_pixels=d.max_pixels, skip_bad=d.skip_bad)
        classes = info.classes
        channels = d.channels or info.channels
        converted = info.converted(channels)
        if not d.channels:
            data_changes["channels"] = channels
        patch = m.patch_size if "model.patch_size" in explicit else None  # set (or SRC's, with --init): kept
        size = d.img_size or (m.img_size if "model.img_size" in explicit else _folder_size(info, patch))
        if size != d.img_size and (len(info.sizes) > 1 or next(iter(info.sizes)) != (size, size)):
            data_changes["img_size"] = size
        lo = min(info.sizes, key=lambda s: s[0] * s[1])
        hi = max(info.sizes, key=lambda s: s[0] * s[1])
        shown = f"{lo[0]}x{lo[1]}" if lo == hi else f"{lo[0]}x{lo[1]} to {hi[0]}x{hi[1]}"
        fitted = f" -> {d.resize} {size}x{size} (data.resize)" if "img_size" in data_changes else ""
        notes.append(f"{info.files} images, {len(classes)} classes, {channels} channel(s)"
                     + (f" ({converted} converted from other modes)" if converted else "") + f", {shown}{fitted}")
        # the images training sees: the training folder (or the whole folder, less its test part), less validation
        train_files = info.counts.get("train", info.counts.get("all", 0)) * (1 - d.test_split * ("all" in info.splits))
        n_train = round(train_files * (1 - d.val_split * ("val" not in info.splits)))
    else:
        train = load_data(d).train
        channels, size, classes, n_train = train.shape[0], train.shape[1], train.classes, len(train)
    changes: dict = {}
    if "model.in_chans" not in explicit and m.in_chans != channels:
        changes["in_chans"] = channels
    if "model.img_size" not in explicit and m.img_size != size and not m.dynamic_img_size:
        changes["img_size"] = size
    if cfg.task == "classify" and "model.num_classes" not in explicit and m.num_classes != len(classes):
        changes["num_classes"] = len(classes)
    target = changes.get("img_size", m.img_size)
    if "model.patch_size" not in explicit:
        patch = choose_patch(target, m.patch_size, m.stem)
        if patch is None:
            raise DataError(f"no patch size divides {target}x{target} images into a grid of {GRID[0]} to {GRID[1]} "
                            f"tokens a side; set --model.patch_size, or --data.img_size to a multiple of 8")
        if patch != m.patch_size:
            changes["patch_size"] = patch
    optim: dict = {}
    fitted = changes or data_changes
    if fitted and "optim.epochs" not in explicit and cfg.optim.epochs * n_train > IMAGES_SEEN:
        optim["epochs"] = max(1, round(IMAGES_SEEN / n_train))
        if "optim.warmup_epochs" not in explicit:
            optim["warmup_epochs"] = cfg.optim.warmup_epochs * optim["epochs"] / cfg.optim.epochs
    if not (changes or data_changes or optim):
        return cfg, ""
    cfg = replace(cfg, model=replace(m, **changes), data=replace(d, **data_changes),
                  optim=replace(cfg.optim, **optim))
    grid = cfg.model.img_size // cfg.model.patch_size
    said = ", ".join(f"{k} {v}" for k, v in changes.items())
    notes.append(f"model fitted to it: {said or 'unchanged'} ({grid}x{grid} tokens of {cfg.model.patch_size}x"
                 f"{cfg.model.patch_size} pixels)")
    if optim:
        notes.append(f"epochs {optim['epochs']} (about {optim['epochs'] * n_train:,} training images seen)")
    return cfg, f"data {d.name}: " + "; ".join(notes) + "; set any --model.KEY or --epochs to choose it yourself"


def _folder_size(info, patch: int | None = None) -> int:
    """One square side for a folder: its images' if they are all that square, else the median shorter side,
    at most MAX_INFERRED_SIZE; a multiple of ``patch`` when the patch size is fixed."""
    if len(info.sizes) == 1:
        (w, h), = info.sizes
        if w == h:
            side = min(w, MAX_INFERRED_SIZE)
            return side if not patch or side % patch == 0 else max(patch, side - side % patch)
    shorter = [min(w, h) for (w, h), n in info.sizes.items() for _ in range(n)]
    side = min(int(statistics.median(shorter)), MAX_INFERRED_SIZE)
    step = patch or 8  # they are resized anyway: to a side that the patch size (or patch sizes) divide
    return max(step, side - side % step)
