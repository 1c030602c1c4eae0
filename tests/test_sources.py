"""vitlab/data/sources.py: data set names on the CLI -> (train, test) ImageSets; DataConfig's data fields."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.cli import parse_overrides
from vitlab.config import DataConfig, RunConfig
from vitlab.errors import ConfigError
from vitlab.configio import apply_overrides
from vitlab.data import load_data, parse_source
from vitlab.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIRS

# shared/ sits beside the checkout (../shared from the repository root), locally and in CI
MNIST = next((p for p in (Path(__file__).resolve().parents[2] / "shared/datasets/mnist",
                          Path("/work/shared/datasets/mnist")) if p.is_dir()), Path("/work/shared/datasets/mnist"))


def test_parse_source_forms(tmp_path):
    assert parse_source("digits") == ("digits", None)
    assert parse_source(f"mnist:{tmp_path}") == ("mnist", tmp_path)
    assert parse_source(f"folder:{tmp_path}") == ("folder", tmp_path)
    assert parse_source("fashion-mnist") == ("fashion-mnist", None)
    home = Path("~").expanduser()
    assert parse_source("cifar10:~") == ("cifar10", home)


@pytest.mark.parametrize("name", ["imagenet", "mnst:/tmp", "", "cifar100:/tmp"])
def test_unknown_source_lists_valid_ones(name):
    with pytest.raises(ValueError) as e:
        load_data(DataConfig(name=name))
    for valid in ("digits", "mnist:PATH", "fashion-mnist[:PATH]", "cifar10:PATH", "folder:PATH"):
        assert valid in str(e.value)


@pytest.mark.parametrize("name, fragment", [("mnist", "mnist:PATH"), ("folder", "folder:PATH"),
                                            ("cifar10:", "empty PATH"), ("digits:/tmp", "takes no PATH")])
def test_path_required_or_refused(name, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        parse_source(name)


@pytest.mark.parametrize("source", ["mnist", "fashion-mnist", "cifar10", "folder"])
def test_missing_path_is_named(tmp_path, source):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError) as e:
        load_data(DataConfig(name=f"{source}:{missing}"))
    assert str(missing) in str(e.value)


def test_fashion_mnist_default_location():
    installed = any((d / "train-images-idx3-ubyte.gz").is_file() for d in FASHION_MNIST_DIRS)
    if not installed:
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            load_data(DataConfig(name="fashion-mnist"))
        pytest.skip("dataset-fashion-mnist is not installed; checked the error only")
    train, val, test = load_data(DataConfig(name="fashion-mnist"))
    # the official 60,000 / 10,000 split; validation: a stratified 10% of the training images (600 a class)
    assert train.images.shape == (54000, 1, 28, 28) and val.images.shape == (6000, 1, 28, 28)
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.classes == FASHION_MNIST_CLASSES
    assert train.labels.bincount().tolist() == [5400] * 10 and val.labels.bincount().tolist() == [600] * 10
    assert test.labels.bincount().tolist() == [1000] * 10


@pytest.mark.skipif(not MNIST.is_dir(), reason="the shared MNIST copy is not on this machine")
def test_mnist_by_name():
    train, val, test = load_data(DataConfig(name=f"mnist:{MNIST}"))
    assert (len(train), len(val), len(test), train.shape) == (54000, 6000, 10000, (1, 28, 28))
    assert train.classes == [str(d) for d in range(10)]
    # validation is carved from the 60,000 training images: together they are exactly the idx training file
    from vitlab.data import load_idx_dir

    full, official_test = load_idx_dir(MNIST)
    assert torch.equal(official_test.images, test.images)
    assert sorted(torch.cat([train.labels, val.labels]).tolist()) == sorted(full.labels.tolist())
    # round(0.1 * n_c) of each class n_c (MNIST's classes have 5,421 to 6,742 training images)
    assert val.labels.bincount().tolist() == [int(n * 0.1 + 0.5) for n in full.labels.bincount().tolist()]


def test_digits_test_split_unchanged_and_validation_carved_from_the_rest():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    train, val, test = load_data(DataConfig())
    bunch = load_digits()
    _, idx_test = train_test_split(np.arange(1797), test_size=0.2, stratify=bunch.target, random_state=0)
    assert torch.equal(test.labels, torch.from_numpy(bunch.target[np.sort(idx_test)]))  # sklearn's own split
    assert len(test) == 360 and len(train) + len(val) == 1437 and train.shape == (1, 8, 8)
    rest = np.bincount(bunch.target, minlength=10) - np.bincount(bunch.target[idx_test], minlength=10)
    assert val.labels.bincount().tolist() == [int(n * 0.1 + 0.5) for n in rest]
    # the split does not move with the training seed, only with data.split_seed
    again = load_data(DataConfig(split_seed=0))
    assert torch.equal(again.val.images, val.images)
    assert not torch.equal(load_data(DataConfig(split_seed=1)).val.images, val.images)


def test_another_validation_fold_keeps_the_test_split_and_carves_other_images():
    """data.val_fold k > 0: another stratified 10% of the same 1,437 training digits is held out, the 360 test
    digits stay the same, and fold 0 is the split every run had before."""
    train, val, test = load_data(DataConfig())
    assert torch.equal(load_data(DataConfig(val_fold=0)).val.images, val.images)
    folds = [load_data(DataConfig(val_fold=k)) for k in (1, 2)]
    for other in folds:
        assert torch.equal(other.test.images, test.images) and torch.equal(other.test.labels, test.labels)
        assert other.val.labels.bincount().tolist() == val.labels.bincount().tolist()  # stratified alike
        pool = torch.cat([train.images, val.images]).flatten(1)
        assert sorted(map(bytes, torch.cat([other.train.images, other.val.images]).flatten(1).numpy())) == \
            sorted(map(bytes, pool.numpy()))  # the same training images, split otherwise
    held = [{bytes(r) for r in s.val.images.flatten(1).numpy()} for s in (load_data(DataConfig()), *folds)]
    assert all(len(a & b) < len(a) / 2 for a, b in ((held[0], held[1]), (held[0], held[2]), (held[1], held[2])))
    with pytest.raises(ConfigError, match="data.val_fold must be an integer"):
        DataConfig(val_fold=-1)


def test_folder_options_reach_the_loader(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a" / "9.png").write_bytes(b"broken")
    # The CLI form: --data folder:PATH --test-split 0.4 --val-split 0.34 --data.img_size 8 --data.channels 1 ...
    tokens = ["--data", f"folder:{tmp_path}", "--test-split", "0.4", "--val-split", "0.34", "--data.img_size", "8",
              "--data.channels", "1", "--data.skip_bad", "true"]
    cfg = apply_overrides(RunConfig(), parse_overrides(tokens)).data
    assert (cfg.test_split, cfg.val_split, cfg.img_size, cfg.channels, cfg.skip_bad) == (0.4, 0.34, 8, 1, True)
    train, val, test = load_data(cfg)
    assert train.shape == (1, 8, 8) and train.images.dtype == torch.uint8
    # 5 readable images a class: 2 (40%) for testing, then 1 of the other 3 (34%) for validation
    assert test.labels.bincount().tolist() == [2, 2] and val.labels.bincount().tolist() == [1, 1]
    assert train.labels.bincount().tolist() == [2, 2]
    assert str(tmp_path / "a" / "9.png") in caplog.text
    with pytest.raises(ValueError, match="9.png"):
        load_data(DataConfig(name=f"folder:{tmp_path}"))  # skip_bad is off by default


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(val_split=0.0), ["val_split", "0.0"]),
    (dict(val_split=1.0), ["val_split", "1.0"]),
    (dict(img_size=-1), ["img_size", "-1"]),
    (dict(channels=2), ["channels", "2", "0 (infer), 1 (grey) or 3 (RGB)"]),
])
def test_data_config_invariants(kwargs, fragments):
    with pytest.raises(ValueError) as e:
        DataConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(e.value)
