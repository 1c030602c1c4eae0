"""vitlab/sweep.py and `vitlab sweep`: a grid × seeds of tiny runs, tabulated as mean ± std."""
import csv
import json
import statistics
from pathlib import Path

import pytest

from vitlab.cli import main
from vitlab.configio import ConfigError
from vitlab.sweep import parse_grid

TINY = ["--model.dim", "8", "--model.depth", "1", "--model.heads", "1", "--model.patch_size", "4",
        "--model.mlp_ratio", "1.0", "--epochs", "1", "--batch-size", "128", "--threads", "1", "--device", "cpu",
        "--optim.warmup_epochs", "0", "-q"]


def test_two_by_two_grid_with_two_seeds(tmp_path, capsys):
    out = tmp_path / "sw"
    rc = main(["sweep", "optim.lr=1e-3,3e-3", "model.pool=avg,max", "--seeds", "2", "--out", str(out), "--",
               *TINY, "--out_dir", str(tmp_path / "unused")])
    assert rc == 0
    for name in ("sweep.md", "sweep.csv", "sweep.png"):
        assert (out / name).is_file()
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 4
    assert {(r["optim.lr"], r["model.pool"]) for r in rows} == {(a, b) for a in ("1e-3", "3e-3")
                                                                 for b in ("avg", "max")}
    for row in rows:
        dirs = [Path(d) for d in row["run_dirs"].split(";")]
        assert len(dirs) == 2 and row["seeds"] == "2"
        finals = [json.loads((d / "metrics.json").read_text()) for d in dirs]
        configs = [json.loads((d / "config.json").read_text()) for d in dirs]
        assert sorted(c["seed"] for c in configs) == [0, 1]
        assert all(c["optim"]["lr"] == float(row["optim.lr"]) and c["model"]["pool"] == row["model.pool"]
                   for c in configs)
        for key in ("val_acc", "test_acc", "test_loss", "train_time_s", "params"):
            values = [f[key] for f in finals]
            assert float(row[f"{key}_mean"]) == pytest.approx(statistics.mean(values))
            assert float(row[f"{key}_std"]) == pytest.approx(statistics.stdev(values))
        assert int(row["flops"]) > 0
    table = (out / "sweep.md").read_text()
    assert table.count("\n| ") == 5 and " ± " in table  # header + 4 grid points
    assert "sweep folder" in capsys.readouterr().out
    # the same sweep again refuses before training anything
    rc = main(["sweep", "optim.lr=1e-3,3e-3", "model.pool=avg,max", "--seeds", "2", "--out", str(out), "--", *TINY])
    assert rc == 2 and "exist already" in capsys.readouterr().err


def test_a_pretraining_key_is_swept_like_any_other(tmp_path, capsys):
    """Issue 11: `vitlab sweep pretrain.tau=... -- --task pretrain` (the τ study used to be a shell loop)."""
    from test_pretrain import TINY as PRETRAIN_TINY

    out = tmp_path / "tau"
    assert main(["sweep", "pretrain.tau=0.1,0.5", "--out", str(out), "--", "--task", "pretrain", *PRETRAIN_TINY,
                 "--epochs", "1"]) == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["pretrain.tau"] for r in rows] == ["0.1", "0.5"]
    for row in rows:
        (run,) = [Path(d) for d in row["run_dirs"].split(";")]
        config = json.loads((run / "config.json").read_text())
        assert config["task"] == "pretrain" and config["pretrain"]["tau"] == float(row["pretrain.tau"])
        final = json.loads((run / "metrics.json").read_text())
        assert float(row["val_knn_acc_mean"]) == pytest.approx(final["val_knn_acc"])
    assert "val_knn_acc" in (out / "sweep.md").read_text()


def test_unknown_key_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"unknown config key 'model.depht'.*valid keys:.*model\.depth"):
        parse_grid(["model.depht=1,2"])
    rc = main(["sweep", "optim.lrr=1,2", "--out", str(tmp_path / "x"), "--", *TINY])
    assert rc == 2 and "valid keys" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_value_fails_before_any_run(tmp_path, capsys):
    rc = main(["sweep", "model.depth=1,two", "--out", str(tmp_path / "y"), "--", *TINY])
    assert rc == 2 and "model.depth expects an integer" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid(["model.depth"])
