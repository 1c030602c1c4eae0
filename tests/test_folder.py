"""vitlab/data/folder.py: image folders with and without train/test, written here as small PNG/JPEG files."""
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.data import stratified_split
from vitlab.data.folder import load_folder


def save(path, arr, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def make_folder(root, counts: dict[str, int], size=(6, 5), mode="RGB", ext=".png", seed=0):
    """``counts`` images per class with random pixels; returns {path: array} of what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for cls, n in counts.items():
        for i in range(n):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            written[save(root / cls / f"{i:03d}{ext}", arr)] = arr
    return written


def test_train_test_layout_exact_pixels(tmp_path):
    train_files = make_folder(tmp_path / "train", {"zebra": 2, "ant": 3})
    test_files = make_folder(tmp_path / "test", {"ant": 1, "zebra": 1}, seed=1)
    train, val, test = load_folder(tmp_path)
    assert val is None  # no val/ folder: vitlab.data.load_data carves the validation split from train/
    assert train.classes == ["ant", "zebra"] and test.classes == ["ant", "zebra"]
    assert train.images.shape == (5, 3, 5, 6) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 0, 0, 1, 1] and test.labels.tolist() == [0, 1]
    # Sorted classes, then sorted files: the first training image is ant/000.png, as HWC -> CHW.
    expected = np.stack([train_files[tmp_path / "train" / c / f"{i:03d}.png"] for c, i in
                         [("ant", 0), ("ant", 1), ("ant", 2), ("zebra", 0), ("zebra", 1)]]).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(train.images.numpy(), expected)
    np.testing.assert_array_equal(test.images[1].numpy(), test_files[tmp_path / "test/zebra/000.png"].transpose(2, 0, 1))


def test_class_order_is_sorted_and_stable(tmp_path):
    for i, cls in enumerate(["b", "C", "a", "10", "2"]):  # created in an arbitrary order
        make_folder(tmp_path / "x", {cls: 2}, seed=i)
    first = load_folder(tmp_path / "x")
    assert first[0].classes == sorted(["b", "C", "a", "10", "2"]) == ["10", "2", "C", "a", "b"]
    again = load_folder(tmp_path / "x")
    assert torch.equal(first[0].images, again[0].images) and torch.equal(first[2].labels, again[2].labels)


def test_train_val_test_layout_gives_all_three(tmp_path):
    make_folder(tmp_path / "train", {"a": 3, "b": 3})
    make_folder(tmp_path / "val", {"a": 1, "b": 2}, seed=1)
    make_folder(tmp_path / "test", {"a": 2, "b": 1}, seed=2)
    train, val, test = load_folder(tmp_path)
    assert (len(train), len(val), len(test)) == (6, 3, 3)
    assert val.labels.tolist() == [0, 1, 1] and test.labels.tolist() == [0, 0, 1]
    # train/ + val/ only: val/ is the test split (ImageNet's layout), the validation split is carved later
    import shutil

    shutil.rmtree(tmp_path / "test")
    train, val, test = load_folder(tmp_path)
    assert val is None and test.labels.tolist() == [0, 1, 1]


def test_test_split_is_stratified(tmp_path):
    counts = {"cat": 20, "dog": 10, "eel": 5}
    make_folder(tmp_path, counts, size=(4, 4))
    train, _, test = load_folder(tmp_path, test_split=0.2, seed=3)
    assert train.labels.bincount().tolist() == [16, 8, 4] and test.labels.bincount().tolist() == [4, 2, 1]
    # Together the two parts are the whole folder, each image once.
    both = torch.cat([train.images, test.images]).flatten(1)
    assert len(both) == 35 and len({tuple(r.tolist()) for r in both}) == 35
    # A different seed picks different images, the same counts.
    *_, other = load_folder(tmp_path, test_split=0.2, seed=4)
    assert other.labels.bincount().tolist() == [4, 2, 1] and not torch.equal(other.images, test.images)


def test_stratified_split_proportions():
    labels = np.repeat(np.arange(3), [100, 50, 3])
    train, held = stratified_split(labels, 0.3, seed=0)
    assert np.bincount(labels[held]).tolist() == [30, 15, 1] and np.bincount(labels[train]).tolist() == [70, 35, 2]
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(153))
    with pytest.raises(ValueError, match="'solo' has 1 image"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0, classes=["pair", "solo"])


def test_channels_inferred_and_resized(tmp_path):
    make_folder(tmp_path / "grey", {"a": 2, "b": 2}, size=(10, 10), mode="L")
    train, _, test = load_folder(tmp_path / "grey", img_size=4)
    assert train.shape == (1, 4, 4) and test.shape == (1, 4, 4)
    train3, *_ = load_folder(tmp_path / "grey", channels=3)
    assert train3.shape == (3, 10, 10) and torch.equal(train3.images[:, 0], train3.images[:, 2])
    # A JPEG in RGB gives 3 channels; the decoded size is the file's.
    make_folder(tmp_path / "jpg", {"a": 2, "b": 2}, size=(8, 8), ext=".jpg")
    assert load_folder(tmp_path / "jpg")[0].shape == (3, 8, 8)


def test_sizes_must_agree_without_img_size(tmp_path):
    make_folder(tmp_path, {"a": 2}, size=(4, 4))
    make_folder(tmp_path, {"b": 2}, size=(5, 4), seed=1)
    with pytest.raises(ValueError, match=r"b/000.png is 5x4 but earlier images are 4x4.*data.img_size"):
        load_folder(tmp_path)
    assert load_folder(tmp_path, img_size=3)[0].shape == (3, 3, 3)


def test_corrupt_image_is_named(tmp_path):
    make_folder(tmp_path, {"a": 3, "b": 3})
    bad = tmp_path / "b" / "001.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ValueError) as e:
        load_folder(tmp_path)
    assert str(bad) in str(e.value) and "cannot read image" in str(e.value)


def test_skip_bad_warns_with_each_file(tmp_path, caplog):
    make_folder(tmp_path, {"a": 4, "b": 4}, size=(4, 4))
    bad1, bad2 = tmp_path / "a" / "002.png", tmp_path / "b" / "000.png"
    bad1.write_bytes(b"garbage")
    good = (tmp_path / "b" / "001.png").read_bytes()
    bad2.write_bytes(good[: len(good) // 2])  # truncated
    with caplog.at_level(logging.WARNING, logger="vitlab.data.folder"):
        train, _, test = load_folder(tmp_path, test_split=0.5, skip_bad=True)
    assert len(train) + len(test) == 6
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipped 2 unreadable image(s)" in record.getMessage()
    assert str(bad1) in record.getMessage() and str(bad2) in record.getMessage()


def test_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"image folder {tmp_path / 'empty'} is empty"):
        load_folder(tmp_path / "empty")
    make_folder(tmp_path / "one", {"a": 2})
    (tmp_path / "one" / "b").mkdir()
    (tmp_path / "one" / "b" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"class folder {tmp_path / 'one' / 'b'} has no image files"):
        load_folder(tmp_path / "one")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_folder(tmp_path / "missing")


def test_test_class_unknown_to_train(tmp_path):
    make_folder(tmp_path / "train", {"a": 1, "b": 1})
    make_folder(tmp_path / "test", {"a": 1, "c": 1})
    with pytest.raises(ValueError, match=r"class folder\(s\) \['c'\] that the training split lacks"):
        load_folder(tmp_path)
