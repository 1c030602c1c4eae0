"""CIFAR-10 in its original "python version" batches (Krizhevsky 2009).

The folder ``cifar-10-batches-py`` holds ``data_batch_1`` … ``data_batch_5`` (10,000 images
each), ``test_batch`` and ``batches.meta``: pickled dicts written by Python 2, with byte-string
keys. ``b'data'`` is a uint8 array (N, 3072), each row the 1024 red, then 1024 green, then
1024 blue values of a 32×32 image in row-major order, so it reshapes to (N, 3, 32, 32) with
no copy; ``b'labels'`` is a list of N ints in 0–9; ``batches.meta`` has ``b'label_names'``.

Why a restricted unpickler: unpickling runs whatever callables the file names, so a
pickle from a user path could run ``os.system``. ``SafeUnpickler`` resolves only the few
globals that a dict of numpy arrays, lists and bytes needs and refuses everything else
before anything is called. (Plain containers, numbers and strings need no globals at all.)
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, MissingFileError
from .dataset import ImageSet

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _allowed_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric

    reconstruct, frombuffer = multiarray._reconstruct, numeric._frombuffer
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}  # how protocol <= 2 pickles bytes from Python 3
    for module in ("numpy.core", "numpy._core"):  # numpy 1 writes numpy.core, numpy 2 numpy._core
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct  # ndarray.__reduce__
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer  # ndarray.__reduce_ex__, protocol 5
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, tuples, numbers, strings, bytes and numpy arrays."""

    def __init__(self, file, *, name: str = "", **kwargs):
        super().__init__(file, **kwargs)
        self._name = name
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from {self._name or 'a pickle'}: a CIFAR batch needs only dicts, "
                f"lists, bytes and numpy arrays, and loading any other global could run arbitrary code") from None


def safe_load_pickle(path: str | Path):
    """Unpickle ``path`` with ``SafeUnpickler``, byte strings from Python 2 kept as bytes (as CIFAR's docs say)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"CIFAR batch file {path} does not exist")
    with open(path, "rb") as f:
        try:
            return SafeUnpickler(f, name=str(path), encoding="bytes").load()
        except pickle.UnpicklingError as e:
            raise DataError(f"CIFAR batch file {path}: {e}") from e
        except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise DataError(f"CIFAR batch file {path} is not a readable pickle: {e!r}") from e


def _get(d: dict, key: str, path: Path):
    """``d[b'key']`` (Python 2 files) or ``d['key']`` (files re-written by Python 3)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataError(f"CIFAR batch file {path} has no {key!r} entry; it has {sorted(map(repr, d))}")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    path = Path(path)
    d = safe_load_pickle(path)
    if not isinstance(d, dict):
        raise DataError(f"CIFAR batch file {path} holds a {type(d).__name__}, expected a dict")
    data, labels = _get(d, "data", path), _get(d, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR batch file {path}: 'data' is {desc}, expected uint8 (N, 3072)")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"CIFAR batch file {path} has {labels.size} labels for {len(data)} images: "
                        f"expected one label per image")
    if len(labels) and not (0 <= labels.min() and labels.max() < len(CIFAR10_CLASSES)):
        raise DataError(f"CIFAR batch file {path} has labels in {labels.min()}..{labels.max()}, expected 0..9")
    if not data.flags.writeable:  # torch wants a writable buffer; unpickled arrays may share the file's bytes
        data = data.copy()
    return data.reshape(-1, 3, 32, 32), labels  # (N, 3072) -> (N, C=3, H=32, W=32), planes R, G, B


def load_cifar10(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """(train, test) from a ``cifar-10-batches-py`` folder, or a folder that contains one.

    Train is the five data batches in order (50,000 images), test is ``test_batch`` (10,000).
    Class names come from ``batches.meta`` when it is there, else CIFAR-10's fixed list.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"CIFAR-10 folder {root} does not exist")
    if not (root / TEST_BATCH).exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    classes = CIFAR10_CLASSES
    if (root / META).is_file():
        meta = safe_load_pickle(root / META)
        names = _get(meta, "label_names", root / META) if isinstance(meta, dict) else None
        if not isinstance(names, list) or len(names) != len(CIFAR10_CLASSES):
            raise DataError(f"CIFAR meta file {root / META}: 'label_names' should be a list of 10 names")
        classes = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    parts = [read_batch(root / name) for name in TRAIN_BATCHES]
    train_x = np.concatenate([x for x, _ in parts])  # (50000, 3, 32, 32)
    train_y = np.concatenate([y for _, y in parts])
    test_x, test_y = read_batch(root / TEST_BATCH)
    return (ImageSet(torch.from_numpy(train_x), torch.from_numpy(train_y), classes),
            ImageSet(torch.from_numpy(test_x), torch.from_numpy(test_y), classes))
