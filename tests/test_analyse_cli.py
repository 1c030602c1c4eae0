"""vitlab/cli.py: `vitlab analyse` and `vitlab predict --attention` write PNG figures for a run.

The run folder is a random (untrained) tiny model saved the way ``fit`` saves one: model.safetensors
with the normalisation statistics and class names, and config.json. The figures only need weights.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.analysis.plots import plot_attention
from vitlab.cli import main
from vitlab.configio import apply_overrides, save_json, to_dict
from vitlab.models import ViT
from vitlab.recipes import digits
from vitlab.train import load_run_config, save_model

TINY = {"model.dim": 16, "model.depth": 2, "model.heads": 2, "model.patch_size": 2, "model.class_token": True,
        "device": "cpu", "progress": False, "threads": 1}


def make_run(folder, **overrides):
    cfg = apply_overrides(digits(), {**TINY, "out_dir": str(folder.parent), "name": folder.name, **overrides})
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    save_model(folder / "model.safetensors", ViT(cfg.model),
               {"mean": [0.3], "std": [0.4], "classes": [str(i) for i in range(10)]})
    save_json(folder / "config.json", to_dict(cfg))
    assert load_run_config(folder) == cfg
    return folder


def assert_png(path):
    """A readable PNG, large enough to be a figure, with something drawn on it."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 100 and img.height > 100
        assert np.asarray(img.convert("L")).std() > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(2):
        arr = np.zeros((8, 8), dtype=np.uint8)
        arr[1:7, 2 + i:4 + i] = 255  # a vertical stroke
        path = folder / f"digit{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


def test_analyse_writes_figures(run, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["analyse", str(run), "--out", str(out), "--images", "70"]) == 0
    for name in ("attention_distance.png", "pos_embed_similarity.png", "patch_embed_pca.png"):
        assert_png(out / name)
    text = capsys.readouterr().out
    assert "mean attention distance in pixels (70 validation images, patch 2, grid 4x4)" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"]  # one row per layer
    # on a 4x4 grid of 2-pixel patches no distance can exceed the diagonal, 2·√18
    assert all(0 <= float(v) <= 2 * 18**0.5 for r in rows for v in r[1:])


def test_analyse_default_folder_without_class_token(tmp_path):
    folder = make_run(tmp_path / "avg", **{"model.class_token": False, "model.pool": "avg"})
    assert main(["analyse", str(folder), "--images", "8"]) == 0
    for name in ("attention_distance.png", "pos_embed_similarity.png", "patch_embed_pca.png"):
        assert_png(folder / "analysis" / name)


def test_predict_attention_one_and_several(run, digit_pngs, tmp_path, capsys):
    one = tmp_path / "att.png"
    assert main(["predict", str(run), digit_pngs[0], "--attention", str(one)]) == 0
    assert_png(one)
    several = tmp_path / "many" / "att.png"
    assert main(["predict", str(run), *digit_pngs, "--attention", str(several)]) == 0
    assert_png(tmp_path / "many" / "att-0.png")
    assert_png(tmp_path / "many" / "att-1.png")
    assert not several.exists()
    assert "attention:" in capsys.readouterr().out


def test_analyse_errors(tmp_path, capsys):
    assert main(["analyse", str(tmp_path)]) == 2
    assert "not a vitlab run folder" in capsys.readouterr().err


def test_plot_attention_rgb(tmp_path):
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    plot_attention(image, torch.rand(4, 4), torch.rand(4, 4, 4), tmp_path / "rgb.png")
    assert_png(tmp_path / "rgb.png")
