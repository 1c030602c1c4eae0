"""vitlab/data/sources.py: data set names on the CLI -> (train, test) ImageSets; DataConfig's data fields."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.cli import parse_overrides
from vitlab.config import DataConfig, RunConfig
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
    train, test = load_data(DataConfig(name="fashion-mnist"))
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.classes == FASHION_MNIST_CLASSES
    assert train.labels.bincount().tolist() == [6000] * 10 and test.labels.bincount().tolist() == [1000] * 10


@pytest.mark.skipif(not MNIST.is_dir(), reason="the shared MNIST copy is not on this machine")
def test_mnist_by_name():
    train, test = load_data(DataConfig(name=f"mnist:{MNIST}"))
    assert (len(train), len(test), train.shape, int(train.labels[0])) == (60000, 10000, (1, 28, 28), 5)
    assert train.classes == [str(d) for d in range(10)]


def test_digits_unchanged():
    train, test = load_data(DataConfig())
    assert (len(train), len(test), train.shape) == (1437, 360, (1, 8, 8))


def test_folder_options_reach_the_loader(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a" / "9.png").write_bytes(b"broken")
    # The CLI form: --data folder:PATH --val-split 0.4 --data.img_size 8 --data.channels 1 --data.skip_bad true
    tokens = ["--data", f"folder:{tmp_path}", "--val-split", "0.4", "--data.img_size", "8", "--data.channels", "1",
              "--data.skip_bad", "true"]
    cfg = apply_overrides(RunConfig(), parse_overrides(tokens)).data
    assert (cfg.val_split, cfg.img_size, cfg.channels, cfg.skip_bad) == (0.4, 8, 1, True)
    train, test = load_data(cfg)
    assert train.shape == (1, 8, 8) and train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() == [3, 3] and test.labels.bincount().tolist() == [2, 2]
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
