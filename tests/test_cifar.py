"""vitlab/data/cifar.py: CIFAR-10 python batches of the exact format, and pickles that must be refused."""
import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from vitlab.data.cifar import CIFAR10_CLASSES, SafeUnpickler, load_cifar10, safe_load_pickle


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings (SHORT_BINSTRING / BINSTRING opcodes), as cPickle did
    for the original CIFAR files, so loading them exercises the same opcodes and latin1-era strings."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def dump(obj, f, protocol):
    """``protocol`` 'py2' writes what Python 2's cPickle with numpy 1 wrote; an int uses today's pickle."""
    if protocol != "py2":
        return pickle.dump(obj, f, protocol)
    buf = io.BytesIO()
    Py2Pickler(buf, 2).dump(obj)
    # numpy 1 (and so every original file) names the module numpy.core, numpy 2 numpy._core.
    f.write(buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


def write_batch(path, data, labels, protocol="py2"):
    """A batch as the original (Python 2 era) files have it: byte-string keys, uint8 (N, 3072), a list of ints."""
    with open(path, "wb") as f:
        dump({b"batch_label": b"training batch 1 of 5", b"labels": list(labels), b"data": data,
              b"filenames": [f"img_{i}.png".encode("latin1") for i in range(len(labels))]}, f, protocol)


def write_cifar(root, n=4, n_test=3, seed=0, protocol="py2"):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    batches = []
    for i in range(1, 6):
        x, y = rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()
        write_batch(root / f"data_batch_{i}", x, y, protocol)
        batches.append((x, y))
    tx, ty = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8), rng.integers(0, 10, n_test).tolist()
    write_batch(root / "test_batch", tx, ty, protocol)
    with open(root / "batches.meta", "wb") as f:
        dump({b"num_cases_per_batch": n, b"label_names": [c.encode() for c in CIFAR10_CLASSES],
              b"num_vis": 3072}, f, protocol)
    return batches, (tx, ty)


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
def test_round_trip(tmp_path, protocol):
    root = tmp_path / "cifar-10-batches-py"
    batches, (tx, ty) = write_cifar(root, protocol=protocol)
    train, test = load_cifar10(tmp_path)  # the parent folder works too
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.labels.tolist() == [label for _, y in batches for label in y] and test.labels.tolist() == ty
    assert train.classes == CIFAR10_CLASSES
    # Pixel (row 5, column 7) of image 2 of batch 3: R at 5*32+7, G 1024 later, B 2048 later.
    x = batches[2][0][2]
    assert train.images[4 * 2 + 2, :, 5, 7].tolist() == [x[167], x[1024 + 167], x[2048 + 167]]
    np.testing.assert_array_equal(test.images.reshape(3, -1).numpy(), tx)


def test_missing_batch_is_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        load_cifar10(tmp_path)


def test_label_count_mismatch(tmp_path):
    write_cifar(tmp_path)
    write_batch(tmp_path / "test_batch", np.zeros((3, 3072), np.uint8), [1, 2])
    with pytest.raises(ValueError) as e:
        load_cifar10(tmp_path)
    assert "test_batch" in str(e.value) and "2 labels for 3 images" in str(e.value)


def test_wrong_data_shape(tmp_path):
    write_cifar(tmp_path)
    write_batch(tmp_path / "data_batch_1", np.zeros((4, 1024), np.uint8), [0] * 4)
    with pytest.raises(ValueError, match=r"data_batch_1.*uint8 \(4, 1024\).*expected uint8 \(N, 3072\)"):
        load_cifar10(tmp_path)


class Exploit:
    """Unpickling this calls ``func(*args)``: any callable the file names runs at load time."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_malicious_pickle_is_refused_before_running(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit(os.system, "echo pwned"), b"labels": []}, 2))
    with pytest.raises(ValueError) as e:
        safe_load_pickle(path)
    assert "refusing to load" in str(e.value) and "system" in str(e.value) and str(path) in str(e.value)


def test_refused_before_anything_runs(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": Exploit(os.mkdir, str(target)), b"labels": []}))
    with pytest.raises(ValueError, match=r"refusing to load (posix|nt)\.mkdir"):
        safe_load_pickle(path)
    assert not target.exists()
    with open(path, "rb") as f:  # the plain pickle module runs it: the refusal above is not vacuous
        pickle.load(f)
    assert target.is_dir()


@pytest.mark.parametrize("obj", [eval, getattr, torch.Tensor, np.load])
def test_other_globals_are_refused(tmp_path, obj):
    path = tmp_path / "x"
    path.write_bytes(pickle.dumps({b"f": obj}))
    with pytest.raises(ValueError, match="refusing to load"):
        safe_load_pickle(path)


def test_py2_file_names_numpy_core(tmp_path):
    write_batch(tmp_path / "b", np.zeros((1, 3072), np.uint8), [3])
    raw = (tmp_path / "b").read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct" in raw and b"U\x04data" in raw and b"_codecs" not in raw


def test_plain_containers_load():
    payload = {b"a": [1, 2.5, "s", b"\xff", (None, True)], "arr": np.arange(6, dtype=np.int16).reshape(2, 3)}
    got = SafeUnpickler(io.BytesIO(pickle.dumps(payload, 2)), encoding="bytes").load()
    assert got[b"a"] == payload[b"a"] and got["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_not_a_pickle(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"\x89PNG not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(tmp_path)
