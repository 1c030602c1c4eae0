"""Data larger than memory (issue 13): `vitlab data pack` decodes a source once into a store (vitlab/data/store.py),
training streams it from disk, and a store run is the run on its source. References: the pixels PIL decodes, the
bytes numpy reads from the file, float64 statistics computed by torch, the in-memory path's runs."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vitlab.cli import main
from vitlab.config import DataConfig
from vitlab.data import DiskImageSet, load_data, read_batches
from vitlab.data.dataset import channel_stats
from vitlab.data.images import read_image_array
from vitlab.data.store import MANIFEST, PACK_DIR, Rows, StoreError, open_store, pack
from vitlab.errors import DataError, MissingFileError

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def photos(root, splits: dict[str, int], *, classes=("ant", "bee", "cow"), size=(12, 12), seed=0, jpeg_every=2):
    """An image folder (``splits``: {'train': n per class, 'test': ...}, or {'': n} for a plain folder) of
    tinted RGB images, every ``jpeg_every``-th a JPEG (4:2:0, what cameras write), the rest PNGs."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 140, (size[1], size[0], 3), dtype=np.uint8)
                arr[..., c % 3] += 100
                ext = ".jpg" if i % jpeg_every == 0 else ".png"
                Image.fromarray(arr).save(folder / f"{i:04d}{ext}", quality=90)
    return root


def data(name, **kw) -> DataConfig:
    return DataConfig(name=name, **kw)


def assert_same_splits(store_splits, memory_splits):
    """The store's three splits hold the pixels, labels and classes of the in-memory ones, in the same order."""
    for s, m in zip(store_splits, memory_splits, strict=True):
        assert isinstance(s, DiskImageSet) and len(s) == len(m)
        assert torch.equal(s.images[:], m.images) and torch.equal(s.labels, m.labels) and s.classes == m.classes


# -- what a store holds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [{"train": 6, "test": 3}, {"train": 6, "val": 2, "test": 3}, {"": 8}])
def test_a_store_gives_the_splits_and_pixels_of_its_folder(tmp_path, layout):
    """Every layout: a folder's own splits (or, for a plain folder, the test split carved on load, as for the
    folder itself) with the pixels the folder path decodes, PNG and JPEG alike."""
    folder = photos(tmp_path / "f", layout)
    manifest = pack(data(f"folder:{folder}"), tmp_path / "s", progress=False)
    assert manifest["shape"] == [3, 12, 12] and manifest["classes"] == ["ant", "bee", "cow"]
    assert_same_splits(load_data(data(f"store:{tmp_path / 's'}")), load_data(data(f"folder:{folder}")))


def test_fitting_to_a_size_and_greyscale_match_the_folder_path(tmp_path):
    folder = photos(tmp_path / "f", {"train": 4, "test": 2}, size=(20, 14))
    kw = dict(img_size=8, channels=1, resize="pad")
    pack(data(f"folder:{folder}", **kw), tmp_path / "s", progress=False)
    assert_same_splits(load_data(data(f"store:{tmp_path / 's'}")), load_data(data(f"folder:{folder}", **kw)))
    with pytest.raises(DataError, match="holds 1-channel 8x8 images; data.img_size=16"):
        load_data(data(f"store:{tmp_path / 's'}", img_size=16))


@pytest.mark.parametrize("source", ["digits", "idx"])
def test_array_sources_are_stored_as_they_are(tmp_path, source):
    if source == "idx":
        from test_idx import write_set

        (tmp_path / "mnist").mkdir()
        write_set(tmp_path / "mnist", n_train=40, n_test=10, rows=6, cols=6)
        name = f"mnist:{tmp_path / 'mnist'}"
    else:
        name = "digits"
    pack(data(name), tmp_path / "s", progress=False)
    assert_same_splits(load_data(data(f"store:{tmp_path / 's'}")), load_data(data(name)))


def test_rows_read_the_bytes_numpy_reads(tmp_path):
    """Any index: a tensor in any order with repeats, a slice, an int; runs of consecutive rows are one read."""
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (50, 2, 3, 3), dtype=np.uint8)
    ref.tofile(tmp_path / "x.images")
    index = np.arange(5, 45)  # a subset: rows 5..44 of the file
    rows = Rows(tmp_path / "x.images", (2, 3, 3), index)
    file = np.fromfile(tmp_path / "x.images", dtype=np.uint8).reshape(50, 2, 3, 3)
    order = torch.tensor([3, 4, 5, 0, 39, 39, 17, 18])
    assert torch.equal(rows[order], torch.from_numpy(file[index[order.numpy()]]))
    assert torch.equal(rows[10:20], torch.from_numpy(file[15:25]))
    assert torch.equal(rows[7], torch.from_numpy(file[12]))
    assert rows.shape == (40, 2, 3, 3) and len(rows) == 40
    clone = __import__("pickle").loads(__import__("pickle").dumps(rows))  # for worker processes
    assert torch.equal(clone[order], rows[order])


def test_channel_statistics_are_exact_and_the_same_in_memory_and_on_disk(tmp_path):
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (300, 3, 5, 4), dtype=np.uint8))
    x.numpy().tofile(tmp_path / "x.images")
    ref = x.double().div(255).transpose(0, 1).flatten(1)  # (C, N*H*W) in float64
    mean, std = channel_stats(x, chunk=7)
    assert mean == pytest.approx(ref.mean(1).tolist(), abs=1e-12)
    assert std == pytest.approx(ref.std(1).tolist(), abs=1e-12)
    assert channel_stats(Rows(tmp_path / "x.images", (3, 5, 4), np.arange(300)), chunk=64) == (mean, std)


def test_batches_are_read_ahead_and_are_the_batches_indexed(tmp_path):
    folder = photos(tmp_path / "f", {"train": 6, "test": 2})
    pack(data(f"folder:{folder}"), tmp_path / "s", progress=False)
    disk = load_data(data(f"store:{tmp_path / 's'}")).train
    order = [torch.randperm(len(disk))[:5] for _ in range(4)]
    got = list(read_batches(disk, iter(order), torch.device("cpu")))
    assert len(got) == 4
    for idx, (images, labels) in zip(order, got):
        assert torch.equal(images, disk.images[idx]) and torch.equal(labels, disk.labels[idx])


def test_simplejpeg_gives_the_pixels_pil_gives(tmp_path):
    """The JPEG decoder a pack uses (simplejpeg in its accurate modes) against PIL's, on 4:2:0 and 4:4:4 colour
    and greyscale JPEGs of odd sizes: every pixel equal."""
    import vitlab.data.images as images

    if images.simplejpeg is None:
        pytest.fail("simplejpeg is a dependency of vitlab: it should be installed")
    rng = np.random.default_rng(2)
    for i, (mode, w, h, sub) in enumerate([("RGB", 33, 17, "4:2:0"), ("RGB", 31, 32, "4:4:4"), ("L", 13, 29, None)]):
        path = tmp_path / f"{i}.jpg"
        arr = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
        Image.fromarray(arr, mode).save(path, quality=80, **({"subsampling": sub} if sub else {}))
        with Image.open(path) as img:
            ref = np.asarray(img.convert("RGB"))
        got = read_image_array(path, channels=3)
        np.testing.assert_array_equal(got.transpose(1, 2, 0), ref)


# -- packing: resume, bad files ---------------------------------------------------------------------------------
def test_unreadable_files_stop_the_pack_with_their_names_and_it_resumes(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("vitlab.data.store.CHUNK", 4)
    folder = photos(tmp_path / "f", {"train": 8, "test": 2})
    bad = folder / "train" / "bee" / "0003.png"
    bad.write_bytes(bad.read_bytes()[:60])  # the header reads, the pixels do not: found by the decoding workers
    out = tmp_path / "s"
    with pytest.raises(DataError, match=r"1 file\(s\) could not be read: cannot read image .*bee/0003.png: .*--skip-bad"):
        pack(data(f"folder:{folder}"), out, workers=1, progress=False)
    with pytest.raises(StoreError, match="not a complete vitlab store.*interrupted"):
        open_store(out)
    chunks = (out / PACK_DIR / "done").read_text().split()
    assert len(chunks) == 8 - 1  # 24 + 6 files in chunks of 4: all but the one with the bad file
    # with skip_bad the pack resumes: only the missing chunk is decoded, the bad file is left out and listed
    caplog.set_level("INFO")
    manifest = pack(data(f"folder:{folder}", skip_bad=True), out, workers=1, progress=False)
    assert "resuming the pack into" in caplog.text and "7 of 8 chunks are already written" in caplog.text
    assert manifest["splits"]["train"] == {"n": 24, "unreadable": 1} and "bee/0003.png" in manifest["unreadable"][0]
    assert not (out / PACK_DIR).exists()
    assert_same_splits(load_data(data(f"store:{out}")), load_data(data(f"folder:{folder}", skip_bad=True)))


def test_a_pack_killed_midway_resumes_to_the_store_of_an_uninterrupted_pack(tmp_path):
    folder = photos(tmp_path / "f", {"train": 400, "test": 10}, size=(16, 16), jpeg_every=1)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vitlab.cli", "data", "pack", f"folder:{folder}", "--out", str(out), "--workers",
           "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    done = out / PACK_DIR / "done"
    deadline = time.monotonic() + 60
    while not (done.is_file() and done.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not (out / MANIFEST).exists()
    with pytest.raises(StoreError, match="interrupted: run the same vitlab data pack command again"):
        load_data(data(f"store:{out}"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr
    fresh = tmp_path / "fresh"
    pack(data(f"folder:{folder}"), fresh, progress=False)
    for f in ("train.images", "train.labels", "test.images", "test.labels"):
        assert (out / f).read_bytes() == (fresh / f).read_bytes(), f


# -- bad input: each one line naming the file and what to do ------------------------------------------------------
@pytest.fixture
def packed(tmp_path):
    folder = photos(tmp_path / "f", {"train": 4, "test": 2})
    pack(data(f"folder:{folder}"), tmp_path / "s", progress=False)
    return folder, tmp_path / "s"


def test_a_store_whose_source_changed_is_refused(packed):
    folder, store = packed
    f = folder / "train" / "ant" / "0001.png"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    with pytest.raises(StoreError, match="the source has changed since.*pack it again"):
        load_data(data(f"store:{store}"))
    assert len(load_data(data(f"store:{store}", check_source=False)).test) == 6  # as it was packed, if asked
    shutil.rmtree(folder)  # a store taken to a machine without its source is used as packed
    assert len(load_data(data(f"store:{store}")).test) == 6


@pytest.mark.parametrize("damage, message", [
    (lambda s: (s / "train.images").write_bytes((s / "train.images").read_bytes()[:-5]),
     r"train.images should hold 5,184 bytes, has 5,179: truncated"),
    (lambda s: (s / "test.labels").unlink(), r"test.labels should hold 48 bytes, is missing"),
    (lambda s: (s / MANIFEST).write_text('{"format": "other/2"}'), r"is not a vitlab-store/1 manifest"),
    (lambda s: (s / MANIFEST).write_text("{oops"), r"is not valid JSON"),
    (lambda s: (s / MANIFEST).unlink(), r"is not a complete vitlab store: it has no manifest.json"),
])
def test_a_truncated_or_foreign_store_is_refused_with_one_line(packed, capsys, damage, message):
    _, store = packed
    damage(store)
    assert main(["data", "info", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_a_store_is_never_written_over_a_folder_that_is_not_one(packed, tmp_path):
    folder, store = packed
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(StoreError, match="is a folder that is not a vitlab store"):
        pack(data(f"folder:{folder}"), keep, overwrite=True, progress=False)
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    # a store of another source: refused without --overwrite, replaced with it
    other = photos(tmp_path / "g", {"train": 3, "test": 1}, classes=("x", "y"))
    with pytest.raises(StoreError, match="already holds a store of 'folder:.*pass --overwrite"):
        pack(data(f"folder:{other}"), store, progress=False)
    assert pack(data(f"folder:{other}"), store, overwrite=True, progress=False)["classes"] == ["x", "y"]
    assert load_data(data(f"store:{store}")).train.classes == ["x", "y"]
    # the same source again: nothing to do
    assert pack(data(f"folder:{other}"), store, progress=False)["classes"] == ["x", "y"]


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 200 KiB (tmpfs; needs root, as CI has)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)):
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_disk_that_fills_during_a_pack_leaves_no_store_that_looks_complete(tmp_path, small_disk, capsys,
                                                                             monkeypatch):
    monkeypatch.setattr("vitlab.data.store.CHUNK", 8)
    folder = photos(tmp_path / "f", {"train": 60, "test": 10}, size=(24, 24))  # 190 x 1728 B = 328 KB of rows
    out = small_disk / "s"
    assert main(["data", "pack", f"folder:{folder}", "--out", str(out), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write the store" in err and "No space left on device" in err, err
    assert not (out / MANIFEST).exists()
    with pytest.raises(StoreError, match="not a complete vitlab store"):
        open_store(out)
    assert _mount("-o", "remount,size=1m", str(small_disk))  # room again: the same command finishes it
    assert main(["data", "pack", f"folder:{folder}", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert_same_splits(load_data(data(f"store:{out}")), load_data(data(f"folder:{folder}")))


def test_a_read_only_path_cannot_be_packed_into_but_trains(packed, tmp_path, capsys):
    folder, store = packed
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copytree(store, ro / "s")
    if os.geteuid() == 0:  # root writes anywhere a mode bit forbids: a read-only mount is what refuses it
        if not (_mount("--bind", str(ro), str(ro)) and _mount("-o", "remount,ro,bind", str(ro))):
            pytest.skip("cannot make a read-only bind mount here")
    else:
        for p in (ro / "s", ro):
            p.chmod(0o555)
    try:
        assert main(["data", "pack", f"folder:{folder}", "--out", str(ro / "new"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "could not write the store" in err and "writable --out" in err, err
        run = main(["train", "--data", f"store:{ro / 's'}", "--out_dir", str(tmp_path / "runs"), "--epochs", "1",
                    "--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--batch-size", "4",
                    "--threads", "1", "-q"])
        assert run == 0, capsys.readouterr().err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=True)


def test_pack_refuses_what_it_cannot_store(tmp_path, capsys):
    photos(tmp_path / "f", {"train": 2, "test": 1})
    Image.fromarray(np.zeros((9, 12, 3), np.uint8)).save(tmp_path / "f" / "train" / "ant" / "wide.png")
    with pytest.raises(DataError, match="wide.png is 12x9 but the first is 12x12: pack with --img-size"):
        pack(data(f"folder:{tmp_path / 'f'}"), tmp_path / "s", progress=False)
    with pytest.raises(DataError, match="data.img_size and data.channels fit an image folder"):
        pack(data("digits", img_size=16), tmp_path / "t", progress=False)
    with pytest.raises(MissingFileError, match="store .*nowhere does not exist; make it with: vitlab data pack"):
        load_data(data(f"store:{tmp_path / 'nowhere'}"))
    assert main(["data", "pack", "digits", "--out", str(tmp_path / "d"), "--workers", "-1"]) == 2
    assert "--workers must be >= 0" in capsys.readouterr().err


# -- training from a store is the run on its source ---------------------------------------------------------------
FLAGS = ["--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--model.patch_size", "4",
         "--model.pool", "avg", "--model.drop_path", "0", "--data.augment", "none", "--batch-size", "64",
         "--epochs", "2", "--lr", "5e-3", "--optim.warmup_epochs", "1", "--threads", "1", "--device", "cpu", "-q"]


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    """The digits store, a run on digits in memory and the same run through the store."""
    tmp = tmp_path_factory.mktemp("store-runs")
    pack(data("digits"), tmp / "digits", progress=False)
    assert main(["train", "--name", "memory", "--out_dir", str(tmp), *FLAGS]) == 0
    assert main(["train", "--name", "store", "--data", f"store:{tmp / 'digits'}", "--out_dir", str(tmp),
                 *FLAGS]) == 0
    return tmp


def test_a_store_run_is_bit_identical_to_the_in_memory_run(digits_runs):
    memory, store = digits_runs / "memory", digits_runs / "store"
    a, b = load_file(memory / "model.safetensors"), load_file(store / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for r1, r2 in zip(rows(memory), rows(store), strict=True):
        timings = ("epoch_time_s", "images_per_s")
        assert {k: v for k, v in r1.items() if k not in timings} == {k: v for k, v in r2.items() if k not in timings}


def test_a_sigkilled_store_run_resumes_bit_identically(digits_runs, tmp_path):
    from vitlab.train.checkpoint import load_tensors

    cmd = [sys.executable, "-m", "vitlab.cli", "train", "--name", "killed", "--data", f"store:{digits_runs / 'digits'}",
           "--out_dir", str(tmp_path), "--ckpt-every", "3", *FLAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    ckpt = tmp_path / "killed" / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if ckpt.exists() and load_tensors(ckpt)[1].get("batch", 0) > 0:
                break
        except Exception:  # noqa: BLE001 - an atomic rename makes this unreachable; retry if it ever were not
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run([sys.executable, "-m", "vitlab.cli", "train", "--resume", str(tmp_path / "killed"), "-q"],
                             capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(digits_runs / "store" / "model.safetensors"), load_file(tmp_path / "killed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_on_a_store_equals_one_process_on_the_global_batch(digits_runs, tmp_path):
    """Each of 2 processes reads only its half of every batch from the store; DDP averages the gradients: the
    one-process run up to float rounding (the same tolerance as the in-memory test in test_distributed.py)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vitlab.cli",
           "train", "--name", "two", "--data", f"store:{digits_runs / 'digits'}", "--out_dir", str(tmp_path), *FLAGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes, 32 images each a step" in proc.stderr
    a, b = load_file(digits_runs / "store" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    for w in (a, b):  # the key bias gets only rounding noise (see test_distributed.py): left out
        w["blocks.0.attn.to_qkv.bias"] = torch.cat([w["blocks.0.attn.to_qkv.bias"][:16],
                                                    w["blocks.0.attn.to_qkv.bias"][32:]])
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    for r1, r2 in zip(rows(digits_runs / "store"), rows(tmp_path / "two"), strict=True):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-4)


def test_each_process_reads_only_its_part_of_every_batch(digits_runs, tmp_path, monkeypatch):
    """The loop shards a batch's indices before the store is read: with this process's part made the second half
    (as rank 1 of 2 has it), every training read asks the store for 32 rows of the batch of 64, those rows."""
    from vitlab.train import loop

    parts, reads = [], []
    monkeypatch.setattr(loop, "shard", lambda idx: parts.append(idx[32:]) or idx[32:])
    real = Rows.__getitem__
    monkeypatch.setattr(Rows, "__getitem__", lambda self, key: reads.append(key) or real(self, key))
    from vitlab.train import fit
    from vitlab.cli.common import parse_overrides
    from vitlab.configio import apply_overrides
    from vitlab.recipes import digits

    flags = parse_overrides(FLAGS[:-1] + ["--epochs", "1", "--data", f"store:{digits_runs / 'digits'}"])
    fit(apply_overrides(digits(), {**flags, "out_dir": str(tmp_path), "name": "half", "progress": "false"}))
    train_reads = [k for k in reads if isinstance(k, torch.Tensor) and len(k) == 32]
    assert len(parts) == 1292 // 64 and len(train_reads) == len(parts)
    assert all(torch.equal(k, p) for k, p in zip(train_reads, parts))


def test_a_folder_store_trains_with_no_flags_and_pretrains(tmp_path, capsys):
    folder = photos(tmp_path / "f", {"train": 12, "test": 3}, size=(16, 16))
    assert main(["data", "pack", f"folder:{folder}", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train 36, test 9" in out and "vitlab train --data store:" in out
    assert main(["train", "--data", f"store:{tmp_path / 's'}", "--out_dir", str(tmp_path / "runs"), "--epochs", "1",
                 "--threads", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "model fitted to it: in_chans 3, img_size 16, num_classes 3" in out, out
    assert main(["train", "--task", "pretrain", "--data", f"store:{tmp_path / 's'}", "--out_dir", str(tmp_path / "p"),
                 "--epochs", "1", "--batch-size", "16", "--model.dim", "16", "--model.depth", "1", "--model.heads",
                 "2", "--threads", "1", "-q"]) == 0
    assert json.loads(next((tmp_path / "p").iterdir()).joinpath("metrics.json").read_text())["test_knn_acc"] >= 0
