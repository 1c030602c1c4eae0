"""Bad inputs and what vitlab does with them (docs/errors.md lists every row with its test).

Each case goes through the public surface a person meets: the config classes, the model's forward,
and the ``vitlab`` command (exit status 2, one line on stderr naming the problem, no traceback).
"""
import pytest
import torch

from vitlab.cli import main
from vitlab.config import ModelConfig, OptimConfig, RunConfig
from vitlab.data import ImageSet
from vitlab.models import ViT

TINY = ["--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--model.patch_size", "4",
        "--batch-size", "64", "--epochs", "1", "--device", "cpu", "--threads", "1", "-q"]


def cli_error(capsys, tmp_path, *argv):
    code = main(["train", *TINY, "--out_dir", str(tmp_path), "--name", "bad", *map(str, argv)])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("vitlab train: error:") and "Traceback" not in err
    assert not (tmp_path / "bad").exists()  # nothing was created
    return err


def small_model(**kw):
    return ViT(ModelConfig(**{**dict(img_size=8, patch_size=4, in_chans=1, num_classes=10, dim=16, depth=1,
                                     heads=2), **kw}))


def test_image_size_not_divisible_by_patch(capsys, tmp_path):
    with pytest.raises(ValueError, match=r"model.img_size=10 is not divisible by model.patch_size=4"):
        ModelConfig(img_size=10, patch_size=4)
    err = cli_error(capsys, tmp_path, "--model.img_size", "10")
    assert "model.img_size=10" in err and "model.patch_size=4" in err


def test_wrong_channels():
    with pytest.raises(ValueError, match=r"expected 1 input channels, got 3"):
        small_model()(torch.zeros(2, 3, 8, 8))


def test_wrong_resolution():
    with pytest.raises(ValueError, match=r"expected input resolution 8x8, got 16x16"):
        small_model()(torch.zeros(2, 1, 16, 16))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_input_to_the_model_is_refused(bad):
    x = torch.zeros(2, 1, 8, 8)
    x[1, 0, 3, 4] = bad
    with pytest.raises(ValueError, match=r"input holds 1 NaN or Inf value\(s\)"):
        small_model()(x)
    small_model()(torch.zeros(2, 1, 8, 8))  # finite input still runs


def test_nan_or_inf_images_cannot_enter_training_or_evaluation():
    """fit, evaluate and predict take images only as uint8 (ImageSet, load_image), where NaN and Inf
    do not exist; a float batch, NaN or not, is refused when the data set is built."""
    labels = torch.zeros(2, dtype=torch.long)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="must be uint8"):
            ImageSet(torch.full((2, 1, 8, 8), bad), labels, ["0"])


def test_learning_rate_must_be_positive(capsys, tmp_path):
    for lr in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="optim.lr must be > 0"):
            OptimConfig(lr=lr)
    assert "optim.lr must be > 0" in cli_error(capsys, tmp_path, "--lr", "0")


def test_batch_size_must_be_positive(capsys, tmp_path):
    with pytest.raises(ValueError, match="optim.batch_size must be > 0, got 0"):
        OptimConfig(batch_size=0)
    assert "optim.batch_size must be > 0, got -4" in cli_error(capsys, tmp_path, "--batch-size=-4")


def test_checkpoint_settings_are_checked(capsys, tmp_path):
    with pytest.raises(ValueError, match="ckpt_every must be an integer >= 0"):
        RunConfig(ckpt_every=-1)
    with pytest.raises(ValueError, match="keep_last must be an integer >= 1"):
        RunConfig(keep_last=0)
    assert "keep_last" in cli_error(capsys, tmp_path, "--keep-last", "0")


def test_unknown_model_size(capsys, tmp_path):
    err = cli_error(capsys, tmp_path, "--size", "XXL")
    assert "unknown model size 'XXL'" in err and "Ti/16" in err


def test_unknown_data_set(capsys, tmp_path):
    err = cli_error(capsys, tmp_path, "--data", "nosuchdata")
    assert "unknown data set 'nosuchdata'" in err
