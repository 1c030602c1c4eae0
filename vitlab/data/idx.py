"""MNIST and Fashion-MNIST in their original idx files, gzip-compressed or not.

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a big-endian header
followed by raw data: a 4-byte magic number ``0x00 0x00 <type> <ndim>`` (type 0x08 is
unsigned byte), then ``ndim`` unsigned 32-bit sizes. MNIST uses ``0x00000803`` for images
(N, rows, cols) and ``0x00000801`` for labels (N,). Fashion-MNIST (Xiao et al. 2017) uses
the same files and names. The payload is read straight into one numpy array, so a
60,000-image split is one read, not 60,000 Python objects.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, MissingFileError
from .dataset import ImageSet

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

MNIST_CLASSES = [str(d) for d in range(10)]
# https://github.com/zalandoresearch/fashion-mnist#labels
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]

# Where Debian's `dataset-fashion-mnist` package puts the four files (`dpkg -L dataset-fashion-mnist`).
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)

SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """The uint8 array in an idx file, shaped as its header says.

    Args:
        path: an idx file, raw or gzip-compressed (recognised by its content, not its name).
        magic: the magic number expected, ``IMAGES_MAGIC`` or ``LABELS_MAGIC``.

    Raises:
        MissingFileError: ``path`` does not exist.
        DataError: a corrupt gzip stream, a wrong magic number, or a data length that does
            not match the header's dimensions; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"idx file {path} does not exist")
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if is_gzip else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"idx file {path} is too short ({len(head)} bytes) to hold a header")
            (found,) = struct.unpack(">I", head)
            if found != magic:
                raise DataError(f"idx file {path} has magic number 0x{found:08x}, expected 0x{magic:08x} "
                                f"({'images' if magic == IMAGES_MAGIC else 'labels'}, unsigned bytes)")
            ndim = magic & 0xFF
            dims_bytes = f.read(4 * ndim)
            if len(dims_bytes) < 4 * ndim:
                raise DataError(f"idx file {path} ends inside its header: expected {ndim} dimension sizes")
            dims = struct.unpack(f">{ndim}I", dims_bytes)
            expected = int(np.prod(dims, dtype=np.int64))
            data = _read_at_most(f, expected + 1)  # what the file holds, never what the header claims
            if len(data) != expected:
                held = f"more than {expected}" if len(data) > expected else f"{len(data)}"
                raise DataError(f"idx file {path} has {held} bytes of data but its header says "
                                f"{' x '.join(map(str, dims))} = {expected}")
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"idx file {path} is not a readable gzip file: {e}") from e
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_at_most(f, limit: int, chunk: int = 1 << 24) -> bytearray:
    """Up to ``limit`` bytes of a binary file, read in chunks: a header that claims more data than the
    file holds must not make us allocate it."""
    data = bytearray()
    while len(data) < limit:
        block = f.read(min(chunk, limit - len(data)))
        if not block:
            break
        data += block
    return data


def find_idx_file(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz`` (also with a dot before ``idx``, as some copies name them)."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    raise MissingFileError(f"{root / stem}[.gz] does not exist: an idx data set folder holds "
                           f"{', '.join(s for pair in SPLIT_FILES.values() for s in pair)} (each optionally .gz)")


def load_idx_split(images_path: str | Path, labels_path: str | Path, classes: list[str]) -> ImageSet:
    """One split from an images file and a labels file, as uint8 (N, 1, rows, cols) and int64 (N,)."""
    images = read_idx(images_path, IMAGES_MAGIC)  # (N, rows, cols)
    labels = read_idx(labels_path, LABELS_MAGIC)  # (N,)
    if len(labels) != len(images):
        raise DataError(f"{len(labels)} labels in {labels_path} but {len(images)} images in {images_path}: "
                        f"expected one label per image")
    if len(labels) and int(labels.max()) >= len(classes):
        raise DataError(f"labels file {labels_path} has label {int(labels.max())}, expected 0..{len(classes) - 1}")
    return ImageSet(torch.from_numpy(images[:, None]),  # (N, 1, rows, cols), sharing the buffer
                    torch.from_numpy(labels.astype(np.int64)), list(classes))


def load_idx_dir(root: str | Path, classes: list[str] = MNIST_CLASSES) -> tuple[ImageSet, ImageSet]:
    """(train, test) from a folder with the four MNIST-style idx files.

    Args:
        root: the folder, e.g. ``/work/shared/datasets/mnist``.
        classes: the class names, label ``i`` being ``classes[i]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"idx data set folder {root} does not exist")
    splits = []
    for images_stem, labels_stem in SPLIT_FILES.values():
        splits.append(load_idx_split(find_idx_file(root, images_stem), find_idx_file(root, labels_stem), classes))
    return splits[0], splits[1]


def default_fashion_mnist_dir() -> Path:
    """Debian's Fashion-MNIST folder, where the package is installed."""
    for d in FASHION_MNIST_DIRS:
        if (d / "train-images-idx3-ubyte.gz").is_file() or (d / "train-images-idx3-ubyte").is_file():
            return d
    raise MissingFileError(f"Fashion-MNIST not found in {', '.join(map(str, FASHION_MNIST_DIRS))}: install the "
                           f"Debian package (apt-get install dataset-fashion-mnist) or give the folder with the idx "
                           f"files as fashion-mnist:PATH")
