"""vitlab/cli.py: the ``vitlab`` command, called in-process through ``main`` and once as the installed script."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from vitlab.cli import main, parse_overrides
from vitlab.data import Normalize
from vitlab.train import load_model, load_run_config

# Pinned so that tuning the digits recipe does not move these numbers: 12 epochs of this reach
# >= 0.947 test accuracy over seeds 0-6 (see tests/test_train.py, which trains the same model).
SMALL = ["--model.dim", "32", "--model.depth", "2", "--model.heads", "2", "--model.patch_size", "4",
         "--model.mlp_ratio", "2", "--model.pool", "avg", "--data.augment", "none", "--batch-size", "32",
         "--lr", "5e-3", "--optim.min_lr", "1e-5", "--optim.warmup_epochs=1", "--optim.weight_decay", "0.05",
         "--optim.label_smoothing", "0.1", "--optim.grad_clip", "1", "--device", "cpu",
         "--threads", "1"]  # two OpenMP threads on a busy 2-core machine spin-wait and run ~50x slower
TINY = [*SMALL, "--model.dim", "16", "--model.depth", "1", "--batch-size", "64"]

EXACT_PARAMS = {"Ti": "5,717,416", "S": "22,050,664", "B": "86,567,656", "L": "304,326,632", "H": "632,045,800"}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def digit_png(path, index, mode="L"):
    """A real digit from scikit-learn (0..16 grey levels scaled to 0..255) as a PNG file."""
    bunch = load_digits()
    pixels = np.rint(bunch.images[index] * (255.0 / 16.0)).astype(np.uint8)  # (8, 8)
    Image.fromarray(pixels, mode="L").convert(mode).save(path)
    return pixels, int(bunch.target[index])


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    argv = ["train", "-q", *SMALL, "--epochs", "12", "--seed", "0", "--out_dir", str(out), "--name", "digits-cli"]
    code = main(argv)
    assert code == 0
    return out / "digits-cli", argv


def test_models_prints_the_size_table_with_exact_counts(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^ViT-(\w+)\s+.*?\s([\d,]{9,})\s", out, re.M)}
    assert rows == EXACT_PARAMS
    assert re.search(r"^ViT-B\s+16\s+768\s+12\s+12\s+3072\s", out, re.M)
    assert re.search(r"^ViT-H\s+14\s+1280\s+32\s+16\s+5120\s", out, re.M)


def test_train_creates_the_run_folder(cli_run, capsys):
    run_dir, argv = cli_run
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "argv.json", "metrics.jsonl", "metrics.json",
                                                   "model.safetensors", "checkpoint.safetensors", "curves.png"}
    cfg = load_run_config(run_dir)
    assert (cfg.model.dim, cfg.model.depth, cfg.model.heads, cfg.model.patch_size) == (32, 2, 2, 4)
    assert (cfg.optim.epochs, cfg.optim.batch_size, cfg.optim.lr, cfg.optim.warmup_epochs) == (12, 32, 5e-3, 1.0)
    assert (cfg.data.augment, cfg.name, cfg.threads, cfg.progress) == ("none", "digits-cli", 1, False)
    # argv.json records the command that was given, not the host process's arguments
    assert json.loads((run_dir / "argv.json").read_text())[1:] == argv
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    assert json.loads((run_dir / "metrics.json").read_text())["test_acc"] >= 0.90


def test_train_prints_a_summary(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "-q", *TINY, "--epochs", "1", "--out_dir", tmp_path, "--name", "one")
    assert code == 0
    final = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert f"run folder: {tmp_path / 'one'}" in out
    assert (f"classify: val acc {final['val_acc']:.4f} (best {final['best_val_acc']:.4f} at epoch 1), test acc "
            f"{final['test_acc']:.4f} after 1 epochs") in out
    # 16 wide, 1 block, 2x2 patches of 4x4 pixels: patch embedding 272 + class token 16 + position 80
    # + block 2,224 (norms 64, qkv 816, projection 272, MLP 544 + 528) + final norm 32 + head 170
    assert "2,794 parameters" in out and final["params"] == 2794


def test_eval_prints_accuracy_and_writes_confusion_png(cli_run, capsys):
    run_dir, _ = cli_run
    (run_dir / "confusion.png").unlink(missing_ok=True)
    code, out, _ = run_cli(capsys, "eval", run_dir)
    assert code == 0
    final = json.loads((run_dir / "metrics.json").read_text())
    m = re.search(r"test accuracy (\d\.\d{4}) \((\d+)/(\d+)\)", out)
    assert m, out
    correct, total = int(m.group(2)), int(m.group(3))
    assert total == 360 and correct / total == pytest.approx(final["test_acc"])
    assert m.group(1) == f"{final['test_acc']:.4f}"
    # per-class recall x support adds up to the correct count; supports add up to the test set
    rows = re.findall(r"^\s+(\d)\s+(\d\.\d{4})\s+(\d+)$", out, re.M)
    assert [r[0] for r in rows] == [str(i) for i in range(10)]
    supports = [int(r[2]) for r in rows]
    assert sum(supports) == 360 and all(35 <= s <= 37 for s in supports)  # a stratified 20% of ~180 a class
    assert sum(float(r[1]) * s for r, s in zip(rows, supports)) == pytest.approx(correct, abs=0.05)
    png = (run_dir / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    with Image.open(run_dir / "confusion.png") as img:
        img.verify()


def test_eval_out_option(cli_run, tmp_path, capsys):
    run_dir, _ = cli_run
    code, out, _ = run_cli(capsys, "eval", run_dir, "--out", tmp_path / "cm.png")
    assert code == 0 and (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"confusion matrix: {tmp_path / 'cm.png'}" in out


def parse_predictions(out):
    """`vitlab predict`'s lines, 'PATH (how it was fitted): class p, class p, ...' -> {PATH: [(class, p), ...]}."""
    preds = {}
    for line in out.strip().splitlines():
        path, fitted, rest = re.fullmatch(r"(.*) \(([^)]*)\): (.*)", line).groups()
        assert fitted == "8x8"  # already the model's size: nothing resized
        preds[path] = [(c, float(p)) for c, p in (item.split() for item in rest.split(", "))]
    return preds


def test_predict_top_k_on_real_digit_pngs(cli_run, tmp_path, capsys):
    run_dir, _ = cli_run
    model, meta = load_model(run_dir)
    normalize = Normalize(meta["mean"], meta["std"])
    indices = list(range(0, 1797, 180))  # 10 images, a mix of training and test images
    paths, pixels, labels = [], [], []
    for i in indices:
        px, label = digit_png(tmp_path / f"digit{i}.png", i)
        paths.append(tmp_path / f"digit{i}.png")
        pixels.append(px)
        labels.append(label)
    code, out, _ = run_cli(capsys, "predict", run_dir, *paths, "--top-k", "3")
    assert code == 0
    preds = parse_predictions(out)
    assert list(preds) == [str(p) for p in paths]

    # Reference: the same pixels straight from scikit-learn through the Python API (no PNG involved).
    with torch.no_grad():
        probs = model(normalize(torch.from_numpy(np.stack(pixels))[:, None])).softmax(-1)
    top1_right = 0
    for path, ref, label in zip(paths, probs, labels):
        got = preds[str(path)]
        assert len(got) == 3 and len({c for c, _ in got}) == 3
        ps = [p for _, p in got]
        assert ps == sorted(ps, reverse=True)
        ref_p, ref_i = ref.topk(3)
        assert [c for c, _ in got] == [str(i) for i in ref_i.tolist()]
        assert ps == pytest.approx(ref_p.tolist(), abs=5.1e-5)
        top1_right += got[0][0] == str(label)
    assert top1_right >= 8


def test_predict_reads_rgb_images_as_grey(cli_run, tmp_path, capsys):
    run_dir, _ = cli_run
    digit_png(tmp_path / "grey.png", 5)
    digit_png(tmp_path / "rgb.png", 5, mode="RGB")
    _, out, _ = run_cli(capsys, "predict", run_dir, tmp_path / "grey.png", tmp_path / "rgb.png", "--top-k", "20")
    preds = parse_predictions(out)
    assert preds[str(tmp_path / "grey.png")] == preds[str(tmp_path / "rgb.png")]
    assert len(preds[str(tmp_path / "grey.png")]) == 10  # top-k capped at the number of classes
    assert sum(p for _, p in preds[str(tmp_path / "grey.png")]) == pytest.approx(1.0, abs=6e-4)


def test_predict_missing_image_is_an_error(cli_run, tmp_path, capsys):
    run_dir, _ = cli_run
    code, _, err = run_cli(capsys, "predict", run_dir, tmp_path / "nope.png")
    assert code == 2 and "nope.png" in err


def test_console_script_entry_point(cli_run, tmp_path, capsys):
    """The installed ``vitlab`` script runs the same code as ``main``."""
    run_dir, _ = cli_run
    digit_png(tmp_path / "d.png", 7)
    script = Path(sys.executable).parent / "vitlab"
    assert script.is_file()
    proc = subprocess.run([str(script), "predict", str(run_dir), str(tmp_path / "d.png")], capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    _, out, _ = run_cli(capsys, "predict", run_dir, tmp_path / "d.png")
    assert proc.stdout == out and out.startswith(f"{tmp_path / 'd.png'} (8x8): ")
    proc = subprocess.run([str(script), "train", "--model.dimm", "3"], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and "model.dimm" in proc.stderr


def test_unknown_key_exits_2_and_lists_valid_keys(tmp_path, capsys):
    code, out, err = run_cli(capsys, "train", "--model.dimm", "3", "--out_dir", tmp_path, "--name", "x")
    assert code == 2
    assert "model.dimm" in err and "valid keys" in err
    for key in ("model.dim", "model.depth", "optim.lr", "optim.epochs", "data.augment", "seed", "out_dir"):
        assert key in err
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, key", [
    (["--model.depth", "abc"], "model.depth"),
    (["--epochs", "3.5"], "optim.epochs"),
    (["--progress", "maybe"], "progress"),
    (["--optim.betas", "0.9"], "optim.betas"),
])
def test_wrong_type_exits_2_naming_the_key(tmp_path, capsys, flags, key):
    code, _, err = run_cli(capsys, "train", *flags, "--out_dir", tmp_path)
    assert code == 2 and key in err
    assert list(tmp_path.iterdir()) == []


def test_broken_invariant_exits_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model.dim", "30", "--model.heads", "4", "--out_dir", tmp_path)
    assert code == 2 and "model.dim=30" in err and "model.heads=4" in err


def test_config_file_is_applied_and_flags_win(tmp_path, capsys):
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text('threads = 1\nprogress = false\ndevice = "cpu"\nseed = 3\n'
                        '[model]\ndim = 16\ndepth = 1\nheads = 2\npatch_size = 4\nmlp_ratio = 2.0\n'
                        '[data]\naugment = "none"\n[optim]\nepochs = 4\nbatch_size = 64\nlr = 5e-3\n'
                        'betas = [0.9, 0.98]\n')
    code, _, err = run_cli(capsys, "train", "--config", cfg_file, "--epochs", "1", "--out_dir", tmp_path,
                           "--name", "from-file")
    assert code == 0, err
    cfg = load_run_config(tmp_path / "from-file")
    assert (cfg.model.dim, cfg.model.depth, cfg.model.heads, cfg.model.patch_size) == (16, 1, 2, 4)
    assert (cfg.optim.batch_size, cfg.optim.lr, cfg.optim.betas, cfg.seed) == (64, 5e-3, (0.9, 0.98), 3)
    assert cfg.optim.epochs == 1  # the flag beats the file's 4
    assert cfg.model.img_size == 8 and cfg.model.num_classes == 10  # the recipe under both
    rows = (tmp_path / "from-file" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1


def test_resume_continues_a_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "-q", *TINY, "--epochs", "1", "--out_dir", tmp_path, "--name", "r")
    assert code == 0, err
    run_dir = tmp_path / "r"
    first = (run_dir / "metrics.jsonl").read_text().splitlines()
    code, out, err = run_cli(capsys, "train", "-q", "--resume", run_dir, "--epochs", "3")
    assert code == 0, err
    assert "after 3 epochs" in out
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and json.dumps(rows[0]) == first[0]
    assert [r["step"] for r in rows] == [20, 40, 60]  # 1,292 training digits, batches of 64
    assert load_run_config(run_dir).optim.epochs == 3
    # resuming a finished run without --epochs trains nothing more
    before = (run_dir / "checkpoint.safetensors").read_bytes()
    code, out, err = run_cli(capsys, "train", "-q", "--resume", run_dir)
    assert code == 0, err
    assert "after 3 epochs" in out and (run_dir / "checkpoint.safetensors").read_bytes() == before


def test_existing_run_folder_exits_2_unless_overwrite(tmp_path, capsys):
    args = ["train", "-q", *TINY, "--epochs", "1", "--out_dir", tmp_path, "--name", "same"]
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert run_cli(capsys, *args, "--overwrite")[0] == 0


def test_parse_overrides():
    assert parse_overrides(["--model.depth", "6", "--optim.lr=3e-3", "--no-progress", "--batch-size", "8",
                            "--model.qkv_bias", "--seed", "-3"]) == {
        "model.depth": "6", "optim.lr": "3e-3", "progress": "false", "optim.batch_size": "8",
        "model.qkv_bias": "true", "seed": "-3"}


def test_rf_prints_the_hand_worked_receptive_fields(capsys):
    # conv3p1 -> conv3p1 -> maxpool2s2 -> conv3s2p1, on 32 pixels, worked by hand:
    # r: 3, 3+2*1=5, 5+1*1=6, 6+2*2=10; jump: 1, 1, 2, 4; size: 32, 32, 16, 8.
    code, out, _ = run_cli(capsys, "rf", "conv3p1,conv3p1,maxpool2s2,conv3s2p1", "--input-size", "32")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [(r[1], int(r[6]), int(r[7]), int(r[9])) for r in rows] == [
        ("conv3p1", 3, 1, 32), ("conv3p1", 5, 1, 32), ("maxpool2s2", 6, 2, 16), ("conv3s2p1", 10, 4, 8)]


def test_rf_bad_spec_exits_2_with_the_grammar(capsys):
    code, _, err = run_cli(capsys, "rf", "conv3x")
    assert code == 2 and "conv3x" in err and "dilation" in err
