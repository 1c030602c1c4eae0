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
        with pytest.raises(ValueError, match="optim.lr must be a finite number > 0"):
            OptimConfig(lr=lr)
    assert "optim.lr must be a finite number > 0" in cli_error(capsys, tmp_path, "--lr", "0")


def test_batch_size_must_be_positive(capsys, tmp_path):
    with pytest.raises(ValueError, match="optim.batch_size must be a positive integer, got 0"):
        OptimConfig(batch_size=0)
    assert "optim.batch_size must be a positive integer, got -4" in cli_error(capsys, tmp_path, "--batch-size=-4")


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


# -- issue 11, defect 14: one line where a traceback was, and messages that name the value ------------------------
@pytest.mark.parametrize("argv, fragments", [
    (["--optim.warmup_epochs", "inf"], ["optim.warmup_epochs must be a finite number >= 0", "inf"]),
    (["--optim.time_budget_s", "-60"], ["optim.time_budget_s must be a finite number >= 0", "-60"]),
    (["--device", "foo"], ["device='foo' is not a device", "cuda:N"]),
    (["--seed", "1000000000000000000000000000000"], ["seed must be an integer in [0, 2**32)",
                                                     "1000000000000000000000000000000"]),
    (["--seed", "10**30"], ["seed expects an integer", "'10**30'"]),
    (["--model.norm_eps", "-1"], ["model.norm_eps must be a finite number > 0", "-1"]),
    (["--model.norm_eps", "nan"], ["model.norm_eps must be a finite number > 0", "nan"]),
    (["--optim.weight_decay", "inf"], ["optim.weight_decay must be a finite number >= 0", "inf"]),
    (["--model.dim", "65536", "--model.heads", "1", "--model.depth", "64", "--model.mlp_ratio", "8"],
     ["parameters: training it needs at least", "GiB", "free on cpu"]),
])
def test_bad_values_get_one_line_naming_them(capsys, tmp_path, argv, fragments):
    """Each of these printed a traceback (OverflowError, RuntimeError) or passed the checks and only surfaced as
    "loss became nan ... try a lower lr"; the model too large for memory is refused before it is allocated."""
    err = cli_error(capsys, tmp_path, *argv)
    assert len(err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in err, err


def test_config_files_that_are_not_configs(capsys, tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "holds a list; expected a JSON table/object" in cli_error(capsys, tmp_path, "--config", tmp_path / "list.json")
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)) * 4)
    err = cli_error(capsys, tmp_path, "--config", tmp_path / "binary.toml")
    assert f"config file {tmp_path / 'binary.toml'} is not a text file" in err and "expected TOML" in err
    (tmp_path / "folder.json").mkdir()
    assert f"config file {tmp_path / 'folder.json'} is a folder" in cli_error(capsys, tmp_path, "--config",
                                                                            tmp_path / "folder.json")


def test_an_idx_header_claiming_more_images_than_the_file_holds(capsys, tmp_path):
    """It used to allocate what the header claimed (a MemoryError traceback for 2**32 - 1 images)."""
    import gzip
    import struct

    data = tmp_path / "mnist"
    data.mkdir()
    for name, magic, dims in (("train-images-idx3-ubyte", 0x803, (2**32 - 1, 28, 28)), ("train-labels-idx1-ubyte",
                                                                                        0x801, (3,)),
                              ("t10k-images-idx3-ubyte", 0x803, (3, 28, 28)), ("t10k-labels-idx1-ubyte", 0x801, (3,))):
        payload = bytes(3 * (784 if len(dims) == 3 else 1))
        with gzip.open(data / f"{name}.gz", "wb") as f:
            f.write(struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload)
    err = cli_error(capsys, tmp_path, "--data", f"mnist:{data}", "--model.img_size", "28")
    assert "train-images-idx3-ubyte.gz has 2352 bytes of data but its header says 4294967295 x 28 x 28" in err


@pytest.mark.parametrize("k", ["-1", "0"])
def test_predict_top_k_must_be_positive(capsys, tmp_path, k):
    """`--top-k -1` was a traceback and `--top-k 0` printed nothing and exited 0."""
    assert main(["train", *TINY, "--out_dir", str(tmp_path), "--name", "r"]) == 0
    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "x.png"), "--top-k", k]) == 2
    err = capsys.readouterr().err
    assert f"--top-k must be >= 1" in err and f"got {k}" in err


def test_verbose_shows_the_traceback_and_a_bug_keeps_its_own(capsys, tmp_path, monkeypatch):
    assert main(["-v", "train", *TINY, "--out_dir", str(tmp_path), "--name", "v", "--device", "foo"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "vitlab train: error: device='foo'" in err
    # anything that is not a VitlabError is a bug: it is not dressed up as a one-line error
    import vitlab.train.loop as loop

    monkeypatch.setattr(loop, "check_memory", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["train", *TINY, "--out_dir", str(tmp_path), "--name", "bug"])


def test_a_missing_extra_names_its_pip_command(monkeypatch, tmp_path, capsys):
    """`vitlab export --onnx` after the plain install crashed with ModuleNotFoundError: onnxscript."""
    import builtins

    real_import = builtins.__import__

    def without_onnxscript(name, *args, **kwargs):
        if name == "onnxscript" or name.startswith("onnxscript."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    import importlib
    import sys

    real_import_module = importlib.import_module

    def import_module_without_onnxscript(name, *args, **kwargs):
        if name == "onnxscript" or name.startswith("onnxscript."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import_module(name, *args, **kwargs)

    assert main(["train", *TINY, "--out_dir", str(tmp_path), "--name", "r"]) == 0
    monkeypatch.setattr(builtins, "__import__", without_onnxscript)
    monkeypatch.setattr(importlib, "import_module", import_module_without_onnxscript)
    for name in [m for m in sys.modules if m == "onnxscript" or m.startswith("onnxscript.")]:  # an earlier test's
        monkeypatch.delitem(sys.modules, name)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "r"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "onnxscript is needed" in err and "pip install 'vitlab[onnx]'" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()
