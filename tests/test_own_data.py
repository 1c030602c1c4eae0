"""Your own data (issue 12): an image folder trains with no flags, predictions you can trust, one resize policy
for training, evaluation and prediction (vitlab/recipes/from_data.py, data/folder.py, data/images.py, cli)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.cli import main
from vitlab.config import DataConfig, RunConfig
from vitlab.data import Normalize, load_data
from vitlab.data.folder import inspect_folder
from vitlab.data.images import fit_image, load_image
from vitlab.recipes import digits, fit_to_data
from vitlab.recipes.from_data import choose_patch
from vitlab.train import load_model

QUICK = ["--epochs", "2", "--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--threads", "1", "-q"]


def photos(root, counts, *, sizes=((50, 70), (64, 48), (90, 60)), grey_first=False, seed=0):
    """A folder of non-square RGB photos; class c tinted so that it can be learnt; optionally its first file
    (in sorted order) greyscale."""
    rng = np.random.default_rng(seed)
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            arr = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
            arr[..., c % 3] += 120
            img = Image.fromarray(arr)
            if grey_first and i == 0:
                img = img.convert("L")
            img.save(root / name / f"{i:03d}.png")
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


# -- a folder trains with no flags ------------------------------------------------------------------------------
def test_a_folder_trains_with_no_flags_and_says_what_it_chose(tmp_path, capsys):
    """It failed with 'has 3 channels but model.in_chans=1', then '64x64 images but model.img_size=8', one
    error at a time; a 2-class folder silently got a 10-way head."""
    folder = photos(tmp_path / "pets", {"cat": 12, "dog": 12}, grey_first=True)
    out = run(capsys, "train", "--data", f"folder:{folder}", "--out_dir", tmp_path / "runs", "--name", "pets", *QUICK)
    note = next(line for line in out.splitlines() if line.startswith(f"data folder:{folder}"))
    # 24 images, each class's first grey: 3 channels from the majority, 2 converted; shorter sides 50, 48, 60:
    # median 50, down to a multiple of 8: 48
    assert "24 images, 2 classes, 3 channel(s) (2 converted from other modes)" in note
    assert "64x48 to 90x60 -> center-crop 48x48 (data.resize)" in note
    assert "in_chans 3, img_size 48, num_classes 2, patch_size 6 (8x8 tokens of 6x6 pixels)" in note
    model, meta = load_model(tmp_path / "runs" / "pets")
    assert (model.cfg.in_chans, model.cfg.img_size, model.cfg.num_classes) == (3, 48, 2)
    assert meta["classes"] == ["cat", "dog"] and meta["resize"] == "center-crop"


def test_channels_come_from_every_image_not_the_first(tmp_path, caplog):
    folder = photos(tmp_path / "p", {"a": 6, "b": 6}, grey_first=True)
    info = inspect_folder(folder)
    assert info.modes == {"RGB": 10, "L": 2} and info.channels == 3 and info.converted(3) == 2
    with caplog.at_level("INFO"):
        train = load_data(DataConfig(name=f"folder:{folder}", img_size=32)).train
    assert train.shape[0] == 3 and "2 image(s) in other modes (L 2, RGB 10) are converted" in caplog.text


def test_what_the_person_sets_is_kept_and_a_contradiction_is_an_error(tmp_path, capsys):
    folder = photos(tmp_path / "p", {"a": 6, "b": 6})
    cfg, note = fit_to_data(apply(digits(), {"data.name": f"folder:{folder}", "model.img_size": 32,
                                             "model.patch_size": 4}), {"model.img_size", "model.patch_size"})
    assert (cfg.model.img_size, cfg.model.patch_size, cfg.data.img_size) == (32, 4, 32)  # the images fit the model
    cfg, note = fit_to_data(apply(digits(), {"data.name": f"folder:{folder}", "model.num_classes": 10}),
                            {"model.num_classes"})
    assert cfg.model.num_classes == 10
    assert main(["train", "--data", f"folder:{folder}", "--model.num_classes", "10", "--out_dir", str(tmp_path),
                 *QUICK]) == 2
    assert "has 2 classes but model.num_classes=10: the head would put probability on 8 class(es) that do not " \
           "exist" in capsys.readouterr().err


def test_a_patch_size_for_other_data_is_checked_against_that_datas_size(tmp_path, capsys):
    """`--data store:D --model.patch_size 16` failed with 'model.img_size=8 is not divisible by
    model.patch_size=16': the recipe's 8x8 size was checked against the new patch before the model was fitted
    to the 64x64 data. On the recipe's own data the same flag is still refused, naming the real sizes."""
    folder = photos(tmp_path / "big", {"a": 6, "b": 6}, sizes=((64, 64),))
    out = run(capsys, "train", "--data", f"folder:{folder}", "--model.patch_size", "16", "--out_dir",
              tmp_path / "runs", "--name", "p16", *QUICK)
    assert "img_size 64" in out and "(4x4 tokens of 16x16 pixels)" in out
    model, _ = load_model(tmp_path / "runs" / "p16")
    assert (model.cfg.img_size, model.cfg.patch_size) == (64, 16)
    assert main(["train", "--data", "digits", "--model.patch_size", "16", "--out_dir", str(tmp_path / "runs"),
                 *QUICK]) == 2
    assert "model.img_size=8 is not divisible by model.patch_size=16" in capsys.readouterr().err


def test_a_recipe_that_fits_its_data_is_left_alone():
    cfg = digits()
    assert fit_to_data(cfg) == (cfg, "")
    mnist_like, note = fit_to_data(apply(digits(), {"data.name": "digits", "model.img_size": 16}))
    assert mnist_like.model.img_size == 8 and "img_size 8" in note  # not explicit: taken from the data


@pytest.mark.parametrize("size, current, stem, expected", [
    (8, 2, "patch", 2), (28, 4, "patch", 4), (28, 2, "patch", 4), (56, 8, "patch", 8), (56, 3, "patch", 7),
    (224, 16, "patch", 28), (224, 2, "patch", 28), (32, 4, "patch", 4), (32, 2, "patch", 4),
    (64, 2, "conv+avgpool", 8), (100, 3, "patch", 10), (31, 4, "patch", None)])
def test_the_patch_size_makes_a_sensible_grid(size, current, stem, expected):
    assert choose_patch(size, current, stem) == expected


# -- one resize policy, everywhere ------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["center-crop", "squash", "pad"])
def test_the_resize_policies_by_hand(policy):
    """A 6x2 image (W x H) with a different value in each column, to 4x4."""
    arr = np.tile(np.arange(0, 240, 40, dtype=np.uint8), (2, 1))  # (H=2, W=6)
    out = np.asarray(fit_image(Image.fromarray(arr), 4, policy))
    assert out.shape == (4, 4)
    if policy == "center-crop":  # shorter side 2 -> 4 (x2): 12x4, then the centre 4 columns, 4..7
        wide = np.asarray(Image.fromarray(arr).resize((12, 4), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(out, wide[:, 4:8])
    elif policy == "squash":
        np.testing.assert_array_equal(out, np.asarray(Image.fromarray(arr).resize((4, 4), Image.Resampling.BICUBIC)))
    else:  # longer side 6 -> 4: 4x1 (round(2 * 4/6) = 1 row), centred on black: row 1 of 4
        small = np.asarray(Image.fromarray(arr).resize((4, 1), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(out[1:2], small)
        assert not out[[0, 2, 3]].any()


def test_predict_sees_what_training_and_evaluation_saw(tmp_path, capsys):
    """One policy for train, eval and predict: `vitlab predict` on a test file gives the probabilities of the
    model on that image as the data loader prepared it; it says how the image was resized; top-k is clipped to
    the class count; --json for scripts."""
    folder = photos(tmp_path / "pets", {"cat": 10, "dog": 10})
    run(capsys, "train", "--data", f"folder:{folder}", "--data.resize", "pad", "--out_dir", tmp_path / "runs",
        "--name", "r", *QUICK)
    model, meta = load_model(tmp_path / "runs" / "r")
    assert meta["resize"] == "pad"
    image = folder / "dog" / "001.png"  # 64x48
    out = json.loads(run(capsys, "predict", tmp_path / "runs" / "r", image, "--top-k", "5", "--json"))
    assert out[0]["fitted"] == "64x48 -> pad 48x48" and len(out[0]["top"]) == 2
    x = load_image(image, channels=3, size=48, resize="pad")[None]
    with torch.no_grad():
        probs = model(Normalize(meta["mean"], meta["std"])(x)).softmax(-1)[0]
    assert {c["class"]: c["p"] for c in out[0]["top"]} == pytest.approx({"cat": float(probs[0]),
                                                                         "dog": float(probs[1])}, abs=1e-6)
    assert sum(c["p"] for c in out[0]["top"]) == pytest.approx(1.0, abs=1e-5)  # no probability on absent classes
    text = run(capsys, "predict", tmp_path / "runs" / "r", image)
    assert text.startswith(f"{image} (64x48 -> pad 48x48): ")


def test_eval_takes_a_model_file_and_a_data_source(tmp_path, capsys):
    folder = photos(tmp_path / "pets", {"cat": 10, "dog": 10})
    run(capsys, "train", "--data", f"folder:{folder}", "--out_dir", tmp_path / "runs", "--name", "r", *QUICK)
    final = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    shutil_copy = (tmp_path / "runs" / "r" / "model.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(shutil_copy)
    out = run(capsys, "eval", tmp_path / "m.safetensors", "--data", f"folder:{folder}")
    assert f"test accuracy {final['test_acc']:.4f}" in out
    assert main(["eval", str(tmp_path / "m.safetensors")]) == 2
    assert "say which data to score it on with --data" in capsys.readouterr().err


def test_a_segmentation_run_predicts_a_mask_over_each_image(tmp_path, capsys):
    run(capsys, "train", "--task", "segment", "--epochs", "1", "--segment.train_images", "32", "--segment.val_images",
        "8", "--segment.test_images", "8", "--out_dir", tmp_path, "--name", "seg", "--threads", "1", "-q")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "blank.png")
    out = json.loads(run(capsys, "predict", tmp_path / "seg", tmp_path / "blank.png", "--out", tmp_path / "masks",
                         "--json"))
    assert out[0]["mask"] == str(tmp_path / "masks" / "blank-mask.png") and sum(out[0]["pixels"].values()) == \
        pytest.approx(1.0, abs=1e-3)
    with Image.open(tmp_path / "masks" / "blank-mask.png") as img:
        img.verify()


# -- bad input ----------------------------------------------------------------------------------------------------
def test_a_decompression_bomb_is_one_line(tmp_path, capsys):
    folder = photos(tmp_path / "p", {"a": 3, "b": 3})
    code = main(["train", "--data", f"folder:{folder}", "--data.max_pixels", "1000", "--out_dir", str(tmp_path),
                 *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and "pixels, more than data.max_pixels=1,000" in err and "a/000.png" in err


def test_class_names_for_a_source_that_has_none(tmp_path):
    names = ",".join(f"digit-{i}" for i in range(10))
    assert load_data(DataConfig(classes=names)).test.classes == [f"digit-{i}" for i in range(10)]
    with pytest.raises(ValueError, match="names 2 class"):
        load_data(DataConfig(classes="a,b"))


def apply(cfg: RunConfig, changes: dict) -> RunConfig:
    from vitlab.configio import apply_overrides

    return apply_overrides(cfg, changes)


# -- smaller frictions --------------------------------------------------------------------------------------------
def test_train_help_lists_the_tasks_and_their_recipes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "classify: digits (default), mnist, fashion-mnist, fashion-mnist-vit, cifar10; segment: segment (default); " \
           "pretrain: digits (default), fashion-mnist" in text


def test_a_short_epochs_shrinks_the_warm_up_so_the_learning_rate_still_decays(tmp_path, capsys):
    """The digits recipe warms up for 2 of its 25 epochs: `--epochs 2` used to spend both of them warming up."""
    assert (digits().optim.warmup_epochs, digits().optim.epochs) == (2, 25)
    run(capsys, "train", "--epochs", "2", "--out_dir", tmp_path, "--name", "short", "--threads", "1", "-q")
    cfg = json.loads((tmp_path / "short" / "config.json").read_text())
    assert cfg["optim"]["warmup_epochs"] == pytest.approx(2 * 2 / 25)
    rows = [json.loads(line) for line in (tmp_path / "short" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == pytest.approx(cfg["optim"]["min_lr"])  # the cosine reached its end
    run(capsys, "train", "--epochs", "2", "--optim.warmup_epochs", "3", "--out_dir", tmp_path, "--name", "as-said",
        "--threads", "1", "-q")
    assert json.loads((tmp_path / "as-said" / "config.json").read_text())["optim"]["warmup_epochs"] == 3


def test_sweep_tables_print_constants_without_a_spread():
    from vitlab.sweep import _mean_std

    assert _mean_std(69194.0, 0.0, "params") == "69194" and _mean_std(0.9, 0.01, "val_acc") == "0.9000 ± 0.0100"


def test_rf_explains_its_columns(capsys):
    assert main(["rf", "conv3p1,maxpool2s2", "--input-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "r: receptive field" in out and "j: jump" in out and "start:" in out and "size: the output side" in out


def test_a_larger_data_set_gets_fewer_epochs_so_a_run_stays_short(monkeypatch):
    """The digits recipe's 25 epochs on 50,000 CIFAR images would take most of an hour on two cores: a fitted run
    sees about IMAGES_SEEN images (here made small: a 16x16 recipe fitted to digits). A recipe whose model already
    fits its data keeps the epochs chosen for it (the cifar10 recipe on the CIFAR-10 store ran 4 epochs, not 15)."""
    import vitlab.recipes.from_data as from_data

    monkeypatch.setattr(from_data, "IMAGES_SEEN", 5000)
    foreign = replace(digits(), model=replace(digits().model, img_size=16, patch_size=4))
    cfg, note = fit_to_data(foreign)
    assert cfg.model.img_size == 8 and cfg.optim.epochs == round(5000 / 1292) == 4
    assert cfg.optim.warmup_epochs == pytest.approx(2 * 4 / 25)
    assert "epochs 4 (about 5,168 training images seen)" in note
    kept, _ = fit_to_data(foreign, {"optim.epochs"})
    assert kept.optim.epochs == 25
    own, note = fit_to_data(digits())
    assert own.optim.epochs == 25 and note == ""
