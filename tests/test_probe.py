import json

import pytest
import torch

from vitlab.cli import main
from vitlab.data import Normalize, load_data
from vitlab.train import load_model
from vitlab.train.probe import finetune, linear_probe
from vitlab.train.pretrain import load_pretrain_config

from test_pretrain import TINY


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    for name, tau in (("t02", "0.2"), ("t1", "1.0")):
        assert main(["pretrain", "--epochs", "1", "--tau", tau, "--out_dir", str(root), "--name", name, *TINY]) == 0
    return root


def test_probe_cli_writes_probe_json(runs, capsys):
    run = runs / "t02"
    assert main(["probe", str(run), "--epochs", "20", "--threads", "1"]) == 0
    assert main(["probe", str(run), "--random", "--epochs", "20"]) == 0
    result = json.loads((run / "probe.json").read_text())
    assert set(result) == {"linear", "random_linear"}
    for r in result.values():
        assert 0.0 <= r["test_acc"] <= 1.0 and r["epochs"] == 20
    assert "linear probe: test accuracy" in capsys.readouterr().out


def test_finetune_changes_encoder_linear_probe_does_not(runs):
    run = runs / "t02"
    cfg = load_pretrain_config(run)
    train, test = load_data(cfg.data)
    encoder, meta = load_model(run)
    normalize = Normalize(meta["mean"], meta["std"])
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    r = linear_probe(encoder, train, test, normalize, epochs=5)
    assert 0.0 <= r["test_acc"] <= 1.0
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    r = finetune(encoder, train, test, normalize, epochs=1, batch_size=256)
    assert 0.0 <= r["test_acc"] <= 1.0
    assert any(not torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    # the run's saved encoder is untouched by fine-tuning
    saved, _ = load_model(run)
    assert all(torch.equal(before[k], v) for k, v in saved.state_dict().items())


def test_tau_report_writes_pngs(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["tau-report", str(runs / "t1"), str(runs / "t02"), "--out", str(out), "--images", "64"]) == 0
    for f in ("hardness.png", "align_uniform.png", "probe_vs_tau.png", "tau_report.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    table = json.loads((out / "tau_report.json").read_text())
    assert [r["tau"] for r in table] == [0.2, 1.0]  # sorted by τ
    assert table[0]["top10"] >= table[1]["top10"] - 0.05  # lower τ concentrates weight (loosely: 1 epoch)


def test_probe_of_a_non_pretrain_run_exits_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model": {}}))
    assert main(["probe", str(tmp_path)]) == 2
    assert "not a pretraining run" in capsys.readouterr().err
