"""Data larger than memory: decode a source once into an on-disk store, then read it back batch by batch.

``vitlab data pack SOURCE --out DIR`` turns any source (an image folder, MNIST/Fashion-MNIST idx files, CIFAR-10
batches, digits) into a store; ``--data store:DIR`` trains from it. A store folder holds::

    manifest.json      written last and atomically: the format, the source and its fingerprint (every file's
                       path, size and mtime, and the pack settings), the image shape, the classes, each split's
                       size, the per-channel statistics, the files that could not be read
    <split>.images     uint8 rows of C*H*W bytes, one per image, in the source's order
    <split>.labels     int64, one per row (-1 for a file that could not be read, with data.skip_bad)
    .pack/             while packing: the settings, the chunks already written and the lock, so that an
                       interrupted pack resumes; removed once the manifest is written

The splits are the source's own, before a validation split is carved (train/test, train/val/test, or all of a
plain folder, whose test split is carved on load as for the folder itself), so ``store:DIR`` gives exactly the
splits, pixels and statistics of the source it was packed from, and a run on either is the same run.

Reading goes through the OS page cache with ``os.preadv`` into a buffer the size of a batch, never a memory map
of the whole file, so the process's resident memory stays that of a batch however large the store
(benchmarks/store.md measures it). A store without a complete manifest, with files of another length than the
manifest says, or whose source has changed since it was packed, is refused with one line saying what to do.

Decoding runs in worker processes (``multiprocessing``, a chunk of files each) with a progress bar and an ETA;
JPEGs go through simplejpeg, the same pixels as PIL (vitlab.data.images).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError, MissingFileError
from ..fileio import atomic_write_bytes
from .dataset import ImageSet, channel_stats
from .splits import stratified_split

if TYPE_CHECKING:
    from ..config import DataConfig

log = logging.getLogger(__name__)

FORMAT = "vitlab-store/1"
MANIFEST = "manifest.json"
PACK_DIR = ".pack"
CHUNK = 256  # files decoded per task of a worker process (and the unit a resumed pack skips)
SPLITS = ("all", "train", "val", "test")


class StoreError(DataError):
    """A store that cannot be used or written: incomplete, truncated, foreign, stale, or a pack that failed."""


# -- reading ------------------------------------------------------------------------------------------------------
class Rows:
    """The images of a :class:`DiskImageSet`, read on demand: ``rows[key]`` (a tensor or array of indices, a slice,
    or an int) is a uint8 (B, C, H, W) tensor, read with one ``preadv`` per run of consecutive rows. Indexing is all
    the loop, the evaluations and the kNN bank ever do with a split's images, so a store serves them as is."""

    dtype = torch.uint8

    def __init__(self, path: Path, shape: tuple[int, int, int], index: np.ndarray):
        self.path, self.row_shape, self.index = Path(path), tuple(shape), np.asarray(index, dtype=np.int64)
        self.row_bytes = int(np.prod(shape))
        self._fd: int | None = None
        self._pid = -1

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.row_shape)

    def __len__(self) -> int:
        return len(self.index)

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # one descriptor a process; pread shares no offset
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        rows = self.index[key]
        single = np.ndim(rows) == 0
        rows = np.atleast_1d(rows)
        out = np.empty((len(rows), self.row_bytes), dtype=np.uint8)
        fd = self._file()
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one read each
        for start, stop in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(rows)].tolist()):
            _read_exact(fd, out[start:stop], int(rows[start]) * self.row_bytes, self.path)
        images = torch.from_numpy(out).view(len(rows), *self.row_shape)  # (B, C, H, W)
        return images[0] if single else images

    def __getstate__(self):  # picklable (worker processes): the descriptor is opened again there
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def _read_exact(fd: int, buffer: np.ndarray, offset: int, path: Path) -> None:
    view, done = memoryview(buffer).cast("B"), 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise StoreError(f"store file {path} ends at byte {offset + done:,}: truncated; pack it again")
        done += got


@dataclass
class DiskImageSet:
    """An image set whose images stay in a store file (:class:`Rows`) and whose labels (small) are in memory:
    the surface of :class:`~vitlab.data.ImageSet` the engine uses (``len``, ``shape``, ``classes``, ``labels``,
    ``images[idx]``, ``subset``, ``to``, ``channel_stats``). ``to(device)`` leaves the images on disk: each batch
    is copied to the device as it is read (:func:`read_batches`)."""

    images: Rows
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.images.row_shape

    def subset(self, index) -> DiskImageSet:
        """The images at ``index`` (indices, a slice or a boolean mask), in that order; nothing is read."""
        index = index.cpu().numpy() if isinstance(index, torch.Tensor) else index
        positions = np.arange(len(self))[index]
        return DiskImageSet(Rows(self.images.path, self.images.row_shape, self.images.index[positions]),
                            self.labels[torch.from_numpy(positions)], self.classes)

    def to(self, device) -> DiskImageSet:
        return self

    def load(self) -> ImageSet:
        """The whole set read into memory (for a set that fits)."""
        return ImageSet(self.images[:], self.labels, self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        return channel_stats(self.images)


def read_batches(split, order: Iterator[torch.Tensor], device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
    """(uint8 images, labels) on ``device`` for each tensor of indices in ``order``. A store's next batch is read
    in a background thread (``preadv`` releases the GIL; on CUDA it is also pinned and copied without blocking)
    while the current one trains, so the model does not wait on the disk in steady state; an in-memory set is
    simply indexed where it lives."""
    if not isinstance(split, DiskImageSet):
        for idx in order:
            idx = idx.to(split.images.device)
            yield split.images[idx], split.labels[idx]
        return
    from concurrent.futures import ThreadPoolExecutor

    cuda = device.type == "cuda"

    def read(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = split.images[idx], split.labels[idx.cpu()]
        if cuda:
            images, labels = images.pin_memory(), labels.pin_memory()
        return images.to(device, non_blocking=cuda), labels.to(device, non_blocking=cuda)

    with ThreadPoolExecutor(1, thread_name_prefix="vitlab-read") as pool:
        pending = None
        for idx in order:
            following = pool.submit(read, idx)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


# -- opening ------------------------------------------------------------------------------------------------------
def open_store(root: str | Path, *, check_source: bool = True) -> dict:
    """The manifest of the store at ``root``, checked: complete, of this format, its files of the length it says,
    and (``check_source``) packed from the source as that source is now, where it can still be seen.

    Raises:
        MissingFileError: ``root`` does not exist.
        StoreError: no manifest (an unfinished pack), another format, a file of the wrong length, a changed source.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"store {root} does not exist; make it with: vitlab data pack SOURCE --out {root}")
    path = root / MANIFEST
    if not path.is_file():
        hint = (" (a pack was interrupted: run the same vitlab data pack command again to finish it)"
                if (root / PACK_DIR).is_dir() else " (make one with: vitlab data pack SOURCE --out DIR)")
        raise StoreError(f"{root} is not a complete vitlab store: it has no {MANIFEST}{hint}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path} is not valid JSON ({e}); pack the store again") from e
    found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
    if found != FORMAT:
        raise StoreError(f"{path} is not a {FORMAT} manifest (format {found!r}); pack the store again with this "
                         f"vitlab")
    row = int(np.prod(manifest["shape"]))
    for split, info in manifest["splits"].items():
        for suffix, size in (("images", info["n"] * row), ("labels", info["n"] * 8)):
            f = root / f"{split}.{suffix}"
            have = f.stat().st_size if f.is_file() else None
            if have != size:
                raise StoreError(f"store file {f} should hold {size:,} bytes, "
                                 f"{'is missing' if have is None else f'has {have:,}'}: truncated or replaced; "
                                 f"pack the store again")
    if check_source:
        source = manifest["source"]
        now = _fingerprint_if_present(source["name"], manifest["settings"])
        if now is not None and now["sha256"] != source["sha256"]:
            raise StoreError(f"store {root} was packed from {source['name']} as it was then ({source['files']} "
                             f"files); the source has changed since ({now['files']} files now, or new sizes or "
                             f"times): pack it again (--overwrite), or pass --data.check_source false to use it "
                             f"as it is")
    return manifest


def load_store(cfg: DataConfig) -> tuple[DiskImageSet, DiskImageSet | None, DiskImageSet]:
    """(train, the store's validation split or None, test) of ``cfg.name = 'store:DIR'``, the images left on disk.
    A plain folder's store holds one split, ``all``: its test split is carved here as load_folder carves it."""
    root = Path(cfg.name.split(":", 1)[1]).expanduser()
    manifest = open_store(root, check_source=cfg.check_source)
    shape = tuple(manifest["shape"])
    c, h, w = shape
    if cfg.img_size and cfg.img_size != h or cfg.channels and cfg.channels != c:
        raise DataError(f"store {root} holds {c}-channel {h}x{w} images; data.img_size={cfg.img_size} and "
                        f"data.channels={cfg.channels} do not match them: pack another store for that size")
    sets = {}
    for split in manifest["splits"]:
        labels = np.fromfile(root / f"{split}.labels", dtype=np.int64)
        keep = np.flatnonzero(labels >= 0)  # rows of files that could not be read (skip_bad) are left out
        sets[split] = DiskImageSet(Rows(root / f"{split}.images", shape, keep), torch.from_numpy(labels[keep]),
                                   list(manifest["classes"]))
    if "all" in sets:
        kept, held = stratified_split(sets["all"].labels.numpy(), cfg.test_split, cfg.split_seed, sets["all"].classes)
        return sets["all"].subset(kept), None, sets["all"].subset(held)
    return sets["train"], sets.get("val"), sets["test"]


# -- what identifies a source -------------------------------------------------------------------------------------
def source_files(name: str) -> list[Path]:
    """The files a source is read from (an image folder's images; the idx or CIFAR files), sorted."""
    from .folder import IMAGE_EXTENSIONS
    from .sources import parse_source

    source, path = parse_source(name)
    if source == "folder":
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if source in ("mnist", "fashion-mnist"):
        from .idx import default_fashion_mnist_dir

        return sorted(p for p in (path or default_fashion_mnist_dir()).iterdir() if "ubyte" in p.name)
    if source == "cifar10":
        return sorted(p for p in path.rglob("*") if p.is_file() and ("_batch" in p.name or p.name == "batches.meta"))
    return []  # digits: scikit-learn's version stands for its files


def fingerprint(name: str, settings: dict) -> dict:
    """{"name", "files", "sha256"}: a digest of the pack settings and of every source file's path, size and mtime.
    Cheap: one stat a file, nothing read."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    files = source_files(name)
    if not files:
        import sklearn

        h.update(f"{name} scikit-learn {sklearn.__version__}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return {"name": name, "files": len(files), "sha256": h.hexdigest()}


def _fingerprint_if_present(name: str, settings: dict) -> dict | None:
    try:
        return fingerprint(name, settings)
    except (DataError, MissingFileError, OSError):
        log.info("the source %s of this store is not here to compare: the store is used as it was packed", name)
        return None


def pack_settings(cfg: DataConfig) -> dict:
    """The settings that decide a store's contents, beside its source: part of its fingerprint."""
    from .sources import parse_source

    source, _ = parse_source(cfg.name)
    if source == "folder":
        return {"img_size": cfg.img_size, "channels": cfg.channels, "resize": cfg.resize,
                "max_pixels": cfg.max_pixels}
    if source == "digits":  # its test split is carved before the store, from these
        return {"test_split": cfg.test_split, "split_seed": cfg.split_seed}
    return {}


# -- packing ------------------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """What a pack writes, per split: the files and their labels (a folder), or arrays already decoded."""

    shape: tuple[int, int, int]
    classes: list[str]
    labels: dict[str, np.ndarray]
    files: dict[str, list[Path]]
    arrays: dict[str, np.ndarray]


def _plan(cfg: DataConfig) -> _Plan:
    """Every check a pack can make before it writes anything: the source, its classes, channels and size."""
    from .folder import folder_splits, infer_channels, list_classes
    from .images import read_image_array
    from .sources import load_source, parse_source

    source, path = parse_source(cfg.name)
    if source == "store":
        raise DataError("a store is packed from a source (a folder, idx files, CIFAR batches, digits), not from a "
                        "store")
    if source != "folder":
        if cfg.img_size or cfg.channels:
            raise DataError(f"data.img_size and data.channels fit an image folder; {source} is stored as it is")
        train, val, test = load_source(replace(cfg, classes=""))
        sets = {"train": train, "test": test, **({"val": val} if val is not None else {})}
        return _Plan(train.shape, train.classes, {s: d.labels.numpy() for s, d in sets.items()}, {},
                     {s: d.images.numpy() for s, d in sets.items()})
    layout = folder_splits(path)
    first = list_classes(next(iter(layout.values())))
    classes = [name for name, _ in first]
    files, labels = {}, {}
    for split, root in layout.items():
        found = list_classes(root)
        if unknown := sorted({n for n, _ in found} - set(classes)):
            raise DataError(f"image folder {root} has class folder(s) {unknown} that the training split lacks; "
                            f"training classes: {classes}")
        files[split] = [f for _, fs in found for f in fs]
        labels[split] = np.concatenate([np.full(len(fs), classes.index(n), dtype=np.int64) for n, fs in found])
    train_files = files[next(iter(layout))]
    channels = cfg.channels or infer_channels(train_files, skip_bad=cfg.skip_bad)
    size = cfg.img_size
    if not size:  # the first readable image's; the workers check that every other has it too
        for f in train_files:
            try:
                _, h, w = read_image_array(f, channels=channels, max_pixels=cfg.max_pixels).shape
                break
            except (DataError, MissingFileError):
                if not cfg.skip_bad:
                    raise
        else:
            raise DataError(f"none of the {len(train_files)} training images of {path} could be read")
        if h != w:
            raise DataError(f"image {f} is {w}x{h}, not square: pack with --img-size N to fit every image to N x N "
                            f"(by --resize, center-crop unless said)")
        size = w
    return _Plan((channels, size, size), classes, labels, files, {})


def _decode_chunk(task) -> tuple[str, int, np.ndarray, list[tuple[int, str]]]:
    """(split, chunk number, uint8 (n, C*H*W) rows, [(row in the chunk, why)] of files that could not be read):
    one task of a worker process."""
    from .images import read_image_array

    split, number, files, shape, fit, resize, max_pixels = task
    out = np.zeros((len(files), int(np.prod(shape))), dtype=np.uint8)
    bad = []
    for i, f in enumerate(files):
        try:
            image = read_image_array(f, channels=shape[0], size=shape[1] if fit else None, resize=resize,
                                     max_pixels=max_pixels)
        except (DataError, MissingFileError) as e:
            bad.append((i, str(e)))
            continue
        if image.shape != shape:  # without --img-size every image must have the first one's size
            raise DataError(f"image {f} is {image.shape[2]}x{image.shape[1]} but the first is {shape[2]}x{shape[1]}: "
                            f"pack with --img-size N to fit every image to N x N (by --resize)")
        out[i] = image.reshape(-1)
    return split, number, out, bad


@contextlib.contextmanager
def _pack_lock(work: Path):
    """One pack writes a store at a time: a second is refused, not interleaved."""
    with open(work / "lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"another vitlab data pack is writing {work.parent} (it holds {work / 'lock'}); "
                             f"wait for it to finish") from None
        yield


def _check_target(out: Path, source: dict, overwrite: bool) -> dict | None:
    """The manifest of a store at ``out`` already packed from this very source (nothing to do), else None once
    ``out`` may be written: new, empty, an unfinished pack, or (``overwrite``) a store of something else. A
    folder that is not a store is never written into."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise StoreError(f"--out {out} is a file, not a folder")
    if (out / MANIFEST).is_file():
        try:
            old = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("format") == FORMAT and old.get("source", {}).get("sha256") == source["sha256"]:
            return old
        if not overwrite:
            raise StoreError(f"{out} already holds a store of {old.get('source', {}).get('name')!r} (or of other "
                             f"settings); pass --overwrite to replace it with {source['name']}, or choose another --out")
        return None
    others = [p.name for p in out.iterdir() if p.name != PACK_DIR and not p.name.endswith((".images", ".labels"))]
    if others or (any(out.iterdir()) and not (out / PACK_DIR).is_dir()):
        raise StoreError(f"{out} is a folder that is not a vitlab store (it holds {sorted(p.name for p in out.iterdir())[:3]}"
                         f"...); pack into a new or empty folder")
    return None


def pack(cfg: DataConfig, out: str | Path, *, workers: int = 0, overwrite: bool = False,
         progress: bool = True) -> dict:
    """Decode the source ``cfg.name`` into a store at ``out`` (module docstring) and return its manifest.

    An image folder is fitted to ``cfg.img_size`` by ``cfg.resize`` (its images' own size if they share one) with
    ``cfg.channels`` (the majority's if 0). An interrupted pack of the same source and settings resumes where it
    stopped. Files that cannot be read stop the pack with their names (the chunks done are kept), or with
    ``cfg.skip_bad`` are left out and listed in the manifest. The manifest is written last: until then the
    folder is refused as incomplete.

    Raises:
        StoreError: ``out`` is another store (without ``overwrite``) or a folder that is not a store, another pack
            is writing it, or a write fails (a full disk, a read-only path).
        DataError: unreadable files (without ``skip_bad``), images of several sizes without ``img_size``, a class
            folder a split has and the training split lacks.
    """
    out = Path(out).expanduser()
    settings = pack_settings(cfg)
    source = fingerprint(cfg.name, settings)
    if (done_store := _check_target(out, source, overwrite)) is not None:
        log.info("store %s is already packed from %s as it is now: nothing to do", out, cfg.name)
        return done_store
    plan = _plan(cfg)  # every check before anything is written
    return _write_store(plan, out, source, settings, cfg, workers=workers, progress=progress)


def pack_arrays(out: str | Path, name: str, splits: dict[str, ImageSet]) -> dict:
    """A store of image sets already in memory, e.g. generated ones (benchmarks/store.py): ``splits`` maps 'train',
    'test' (and 'val') to ImageSets of one shape. ``name`` is recorded as the source; it has no files to check."""
    out = Path(out).expanduser()
    first = next(iter(splits.values()))
    source = {"name": name, "files": 0, "sha256": hashlib.sha256(name.encode()).hexdigest()}
    _check_target(out, {**source, "sha256": ""}, overwrite=False)
    plan = _Plan(first.shape, first.classes, {s: d.labels.numpy() for s, d in splits.items()}, {},
                 {s: d.images.numpy() for s, d in splits.items()})
    from ..config import DataConfig

    return _write_store(plan, out, source, {}, DataConfig(), workers=1, progress=False)


def _write_store(plan: _Plan, out: Path, source: dict, settings: dict, cfg: DataConfig, *, workers: int,
                 progress: bool) -> dict:
    from tqdm.auto import tqdm

    work = out / PACK_DIR
    t0 = time.perf_counter()
    try:
        work.mkdir(parents=True, exist_ok=True)
        with _pack_lock(work):
            (out / MANIFEST).unlink(missing_ok=True)  # (overwrite) from here on the folder is an unfinished pack
            for old in out.iterdir():  # another store's splits that this one does not have
                if old.suffix in (".images", ".labels") and old.stem not in plan.labels:
                    old.unlink()
            state = work / "settings.json"
            if not state.is_file() or json.loads(state.read_text()).get("sha256") != source["sha256"]:
                for f in ("done", "bad.json"):  # a half-finished pack of something else: start again
                    (work / f).unlink(missing_ok=True)
                atomic_write_bytes(state, json.dumps(source).encode())
            labels = _write_images(plan, out, work, cfg, workers, progress, tqdm)
            for split, y in labels.items():
                atomic_write_bytes(out / f"{split}.labels", y.astype(np.int64).tobytes())
            bad = json.loads((work / "bad.json").read_text()) if (work / "bad.json").is_file() else []
            stats_split = "train" if "train" in labels else "all"
            mean, std = channel_stats(Rows(out / f"{stats_split}.images", plan.shape,
                                           np.flatnonzero(labels[stats_split] >= 0)))
            manifest = {"format": FORMAT, "source": source, "settings": settings, "shape": list(plan.shape),
                        "classes": plan.classes,
                        "splits": {s: {"n": len(y), "unreadable": int((y < 0).sum())} for s, y in labels.items()},
                        "channel_stats": {"split": stats_split, "mean": mean, "std": std},
                        "unreadable": [why for _, _, why in bad],
                        "pack_seconds": round(time.perf_counter() - t0, 2)}
            atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        shutil.rmtree(work, ignore_errors=True)
        return manifest
    except OSError as e:
        raise StoreError(f"could not write the store {out} ({e.strerror or e}{f': {e.filename}' if e.filename else ''})"
                         f"; it has no manifest, so it is not taken for a complete store. Free space or choose a "
                         f"writable --out, then run the same command: the chunks written are kept") from e


def _write_images(plan: _Plan, out: Path, work: Path, cfg: DataConfig, workers: int, progress: bool,
                  tqdm) -> dict[str, np.ndarray]:
    """Write every split's rows (decoding a folder's files in worker processes, chunks already done skipped);
    returns each split's labels with -1 for a file left out."""
    row = int(np.prod(plan.shape))
    for split, y in plan.labels.items():  # preallocated: each chunk is written at its own offset
        with open(out / f"{split}.images", "ab") as f:
            f.truncate(len(y) * row)
    if plan.arrays:  # already decoded (idx, CIFAR batches, digits)
        for split, images in plan.arrays.items():
            _pwrite(out / f"{split}.images", images.reshape(len(images), -1), 0)
        return {s: y.copy() for s, y in plan.labels.items()}
    done_path, bad_path = work / "done", work / "bad.json"
    done = set(done_path.read_text().split()) if done_path.is_file() else set()
    bad: list[list] = json.loads(bad_path.read_text()) if bad_path.is_file() else []
    tasks = [(split, i, files[i * CHUNK:(i + 1) * CHUNK], plan.shape, bool(cfg.img_size), cfg.resize, cfg.max_pixels)
             for split, files in plan.files.items() for i in range(-(-len(files) // CHUNK))]
    todo = [t for t in tasks if f"{t[0]}:{t[1]}" not in done]
    if done:
        log.info("resuming the pack into %s: %d of %d chunks are already written", out, len(tasks) - len(todo),
                 len(tasks))
    total = sum(len(files) for files in plan.files.values())
    bar = tqdm(total=total, initial=total - sum(len(t[2]) for t in todo), unit="img", desc=f"pack {out.name}",
               disable=not progress, dynamic_ncols=True, smoothing=0.1)
    failed: list[str] = []
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with context.Pool(n_workers) if todo else contextlib.nullcontext() as pool, open(done_path, "a") as journal:
        for split, number, rows, chunk_bad in (pool.imap_unordered(_decode_chunk, todo) if todo else ()):
            if chunk_bad and not cfg.skip_bad:
                failed += [why for _, why in chunk_bad]  # each names its file
                continue  # the other chunks go on being written: a second run then decodes only this one
            _pwrite(out / f"{split}.images", rows, number * CHUNK * row)
            if chunk_bad:
                bad += [[split, number * CHUNK + i, why] for i, why in chunk_bad]
                atomic_write_bytes(bad_path, json.dumps(bad).encode())
            journal.write(f"{split}:{number}\n")  # after the rows are on disk (fsync): a resume trusts this list
            journal.flush()
            os.fsync(journal.fileno())
            bar.update(len(rows))
    bar.close()
    if failed:
        shown = "; ".join(failed[:3]) + (f"; ... ({len(failed)} in all)" if len(failed) > 3 else "")
        raise DataError(f"{len(failed)} file(s) could not be read: {shown}. Fix or remove them and run the same "
                        f"command again (the chunks written are kept), or pack with --skip-bad to leave them out "
                        f"(listed in the manifest)")
    labels = {s: y.copy() for s, y in plan.labels.items()}
    for split, k, _ in bad:
        labels[split][k] = -1
    return labels


def _pwrite(path: Path, rows: np.ndarray, offset: int) -> None:
    """Write ``rows`` at byte ``offset`` of ``path`` and fsync: on disk before the chunk is journalled."""
    fd = os.open(path, os.O_WRONLY)
    try:
        data, written = memoryview(np.ascontiguousarray(rows)).cast("B"), 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], offset + written)
        os.fsync(fd)
    finally:
        os.close(fd)
