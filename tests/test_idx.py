"""vitlab/data/idx.py: the idx format against hand-built bytes and the real MNIST files."""
import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vitlab.data.idx import IMAGES_MAGIC, LABELS_MAGIC, load_idx_dir, read_idx

# shared/ sits beside the checkout (../shared from the repository root), locally and in CI
MNIST = next((p for p in (Path(__file__).resolve().parents[2] / "shared/datasets/mnist",
                          Path("/work/shared/datasets/mnist")) if p.is_dir()), Path("/work/shared/datasets/mnist"))
# Published class counts of MNIST (LeCun et al.), train and t10k.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


def write(path: Path, data: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_set(root: Path, n_train=5, n_test=3, rows=4, cols=3, gz=True, seed=0):
    """Four idx files of random images and labels; returns the arrays written."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write(root / f"{split}-images-idx3-ubyte", idx_bytes(IMAGES_MAGIC, (n, rows, cols), x.tobytes()), gz)
        write(root / f"{split}-labels-idx1-ubyte", idx_bytes(LABELS_MAGIC, (n,), y.tobytes()), gz)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_hand_built_idx_round_trip(tmp_path, gz):
    # Header bytes written out literally: magic 00 00 08 03, then N=2, rows=2, cols=3 big-endian.
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    path = write(tmp_path / "x-idx3-ubyte", raw, gz)
    arr = read_idx(path, IMAGES_MAGIC)
    assert arr.dtype == np.uint8 and arr.shape == (2, 2, 3)
    assert arr[1, 0].tolist() == [6, 7, 8] and arr[0, 1, 2] == 5
    labels = write(tmp_path / "y-idx1-ubyte", bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9]), gz)
    assert read_idx(labels, LABELS_MAGIC).tolist() == [7, 0, 9]


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_dir_matches_written_arrays(tmp_path, gz):
    written = write_set(tmp_path, gz=gz)
    train, test = load_idx_dir(tmp_path)
    for split, ds in (("train", train), ("t10k", test)):
        x, y = written[split]
        assert ds.images.shape == (len(x), 1, 4, 3) and ds.images.dtype == torch.uint8
        np.testing.assert_array_equal(ds.images[:, 0].numpy(), x)
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == y.tolist()
    assert train.classes == [str(d) for d in range(10)]


def test_wrong_magic_names_file_and_numbers(tmp_path):
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(0x00000801, (2,), b"\0\0"), gz=False)
    with pytest.raises(ValueError) as e:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(e.value) and "0x00000801" in str(e.value) and "0x00000803" in str(e.value)


@pytest.mark.parametrize("payload_len, fragment", [(11, "11 bytes"), (13, "more than 12 bytes")])
def test_data_length_must_match_header(tmp_path, payload_len, fragment):
    path = write(tmp_path / "x-idx3-ubyte", idx_bytes(IMAGES_MAGIC, (2, 2, 3), bytes(payload_len)), gz=True)
    with pytest.raises(ValueError) as e:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(e.value) and fragment in str(e.value) and "2 x 2 x 3 = 12" in str(e.value)


def test_truncated_header_and_corrupt_gzip(tmp_path):
    short = write(tmp_path / "a-idx3-ubyte", struct.pack(">I", IMAGES_MAGIC) + b"\0\0\0\1", gz=False)
    with pytest.raises(ValueError, match="ends inside its header"):
        read_idx(short, IMAGES_MAGIC)
    good = gzip.compress(idx_bytes(LABELS_MAGIC, (1000,), bytes(1000)))
    cut = tmp_path / "b-idx1-ubyte.gz"
    cut.write_bytes(good[: len(good) // 2])  # a truncated download
    with pytest.raises(ValueError) as e:
        read_idx(cut, LABELS_MAGIC)
    assert str(cut) in str(e.value) and "gzip" in str(e.value)


def test_label_count_must_match_image_count(tmp_path):
    write_set(tmp_path, n_train=5)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(LABELS_MAGIC, (4,), bytes(4))))
    with pytest.raises(ValueError) as e:
        load_idx_dir(tmp_path)
    assert "4 labels" in str(e.value) and "5 images" in str(e.value) and str(labels) in str(e.value)


def test_missing_file_is_named(tmp_path):
    write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_idx_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_idx_dir(tmp_path / "nowhere")


def test_label_out_of_range(tmp_path):
    write_set(tmp_path, n_train=2)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(LABELS_MAGIC, (2,), b"\1\x0c")))
    with pytest.raises(ValueError, match="label 12"):
        load_idx_dir(tmp_path)


@pytest.mark.skipif(not MNIST.is_dir(), reason="the shared MNIST copy is not on this machine")
def test_real_mnist():
    train, test = load_idx_dir(MNIST)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert int(train.labels[0]) == 5  # the famous first "5"
    assert train.labels.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert test.labels.bincount().tolist() == MNIST_TEST_COUNTS
    # An independent read: skip the 16-byte header of the decompressed file and compare every pixel.
    ref = np.frombuffer(gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())[16:], np.uint8)
    assert hashlib.md5(test.images.numpy().tobytes()).hexdigest() == hashlib.md5(ref.tobytes()).hexdigest()
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
