"""vitlab/train/probe.py and `vitlab tau-report` on tiny pretraining runs."""
import json
from pathlib import Path

import pytest
import torch

from vitlab.analysis.tau import tau_report
from vitlab.cli import main
from vitlab.errors import ConfigError
from vitlab.data import Normalize, load_data
from vitlab.train import load_model, load_run_config
from vitlab.train.checkpoint import load_tensors
from vitlab.train.probe import linear_probe

from test_pretrain import TINY


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    for name, tau in (("t02", "0.2"), ("t1", "1.0")):
        assert main(["pretrain", "--epochs", "1", "--tau", tau, "--out_dir", str(root), "--name", name, *TINY]) == 0
    return root


def test_probe_cli_writes_probe_json(runs, capsys):
    run = runs / "t02"
    assert main(["probe", str(run), "--epochs", "50", "--threads", "1"]) == 0
    assert main(["probe", str(run), "--random", "--epochs", "50"]) == 0
    result = json.loads((run / "probe.json").read_text())
    assert set(result) == {"linear", "random_linear"}
    for r in result.values():
        # 145 validation and 360 test digits: each accuracy is a count; a linear probe is far above chance (0.1)
        assert r["val_acc"] * 145 == pytest.approx(round(r["val_acc"] * 145), abs=1e-3) and r["val_acc"] > 0.5
        assert r["test_acc"] * 360 == pytest.approx(round(r["test_acc"] * 360), abs=1e-3) and r["epochs"] == 50
    assert "linear probe: val accuracy" in capsys.readouterr().out


def test_probe_features_cli_writes_entries_of_their_own(runs, capsys):
    run = runs / "t1"
    assert main(["probe", str(run), "--epochs", "50"]) == 0
    pooled = json.loads((run / "probe.json").read_text())["linear"]
    assert main(["probe", str(run), "--features", "tokens", "--epochs", "50"]) == 0
    assert main(["probe", str(run), "--features", "blocks", "--random", "--epochs", "50"]) == 0
    result = json.loads((run / "probe.json").read_text())
    assert result["linear"] == pooled  # the pooled probe's entry is left as it was
    assert result["linear_tokens"]["features"] == "tokens" and result["random_linear_blocks"]["features"] == "blocks"
    assert result["linear_tokens"]["val_acc"] > 0.5 and result["linear_tokens"]["epochs"] == 50
    assert "linear_tokens probe: val accuracy" in capsys.readouterr().out
    for bad in (["--pixels"], ["--finetune"]):
        assert main(["probe", str(run), "--features", "tokens", *bad]) == 2
        assert "cannot be combined with" in capsys.readouterr().err


@pytest.mark.parametrize("depth, pool, class_token", [(5, "token", True), (2, "avg", False), (3, "max", False)])
def test_probe_features_equal_a_hand_written_forward(depth, pool, class_token):
    """Each feature kind against the encoder run block by block by hand (no hooks): 'blocks' is the last four
    blocks' (all, when fewer) normed, pooled outputs side by side; 'tokens' the final normed patch tokens in
    row-major grid order; 'pooled' what the loss sees."""
    from vitlab.config import ModelConfig
    from vitlab.models import ViT
    from vitlab.train.tasks.pretrain import encode

    torch.manual_seed(0)
    cfg = ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=0, dim=12, depth=depth, heads=2,
                      pool=pool, class_token=class_token)
    model = ViT(cfg).eval()
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    normalize = Normalize([0.5], [0.25])
    x = (images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        t = model.to_patch_embedding(x)  # (B, 16, D)
        if class_token:
            t = torch.cat([model.cls_token.expand(5, -1, -1), t], dim=1)
        t = t + model.pos_embed
        outs = []
        for block in model.blocks:
            t = block(t)
            outs.append(model.norm(t))
    p = 1 if class_token else 0
    pool_of = {"token": lambda h: h[:, 0], "avg": lambda h: h[:, p:].mean(1), "max": lambda h: h[:, p:].amax(1)}[pool]
    ref = {"pooled": pool_of(outs[-1]), "blocks": torch.cat([pool_of(h) for h in outs[-4:]], dim=1),
           "tokens": outs[-1][:, p:].reshape(5, 16 * 12)}
    for kind, want in ref.items():
        got = encode(model, images, normalize, batch_size=2, features=kind)
        assert got.shape == (5, {"pooled": 12, "blocks": 12 * min(depth, 4), "tokens": 16 * 12}[kind])
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="not one of"):
        encode(model, images, normalize, features="cls")


def test_linear_probe_leaves_the_encoder_alone(runs):
    run = runs / "t02"
    splits = load_data(load_run_config(run).data)
    encoder, meta = load_model(run)
    normalize = Normalize(meta["mean"], meta["std"])
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    r = linear_probe(encoder, splits.train, {"val": splits.val}, normalize, epochs=5)
    assert set(r) == {"train_acc", "val_acc", "epochs", "lr", "features"} and r["features"] == "pooled"
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_probe_finetune_is_a_run_of_the_engine_beside_the_pretraining_run(runs, capsys):
    run = runs / "t02"
    saved = load_tensors(run / "model.safetensors")[0]
    assert main(["probe", str(run), "--finetune", "--epochs", "1", "--lr", "2e-3", "--threads", "1", "-q"]) == 0
    ft = runs / "t02-finetune"
    cfg = load_run_config(ft)
    assert cfg.task == "classify" and cfg.init.source == str(run / "model.safetensors") and cfg.init.sha256
    assert cfg.optim.epochs == 1 and cfg.optim.lr == 2e-3 and cfg.model.num_classes == 10
    final = json.loads((ft / "metrics.json").read_text())
    result = json.loads((run / "probe.json").read_text())["finetune"]
    assert result == {"val_acc": final["val_acc"], "test_acc": final["test_acc"], "epochs": 1, "lr": 2e-3,
                      "run": str(ft)}
    tuned = load_tensors(ft / "model.safetensors")[0]
    assert any(not torch.equal(saved[k], tuned[k]) for k in saved)  # the encoder trained...
    assert all(torch.equal(saved[k], v) for k, v in load_tensors(run / "model.safetensors")[0].items())  # ...a copy
    assert "finetune probe: val accuracy" in capsys.readouterr().out
    # an existing fine-tuning run is replaced only with --overwrite
    assert main(["probe", str(run), "--finetune", "--epochs", "1", "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # the baseline: the same architecture from the run's seed, no init
    assert main(["probe", str(run), "--finetune", "--random", "--epochs", "1", "--threads", "1", "-q"]) == 0
    assert load_run_config(runs / "t02-random-finetune").init.source == ""
    assert set(json.loads((run / "probe.json").read_text())) >= {"finetune", "random_finetune"}


def test_tau_report_writes_pngs(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["tau-report", str(runs / "t1"), str(runs / "t02"), "--out", str(out), "--images", "64"]) == 0
    for f in ("hardness.png", "align_uniform.png", "probe_vs_tau.png", "tau_report.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    table = json.loads((out / "tau_report.json").read_text())
    assert [r["tau"] for r in table] == [0.2, 1.0]  # sorted by τ
    assert table[0]["top10"] >= table[1]["top10"] - 0.05  # lower τ concentrates weight (loosely: 1 epoch)


def test_probe_of_a_non_pretrain_run_exits_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model": {"img_size": 8, "patch_size": 2}}))
    assert main(["probe", str(tmp_path)]) == 2
    assert "vitlab probe takes a pretraining run" in capsys.readouterr().err


def test_probe_pixels_records_the_raw_pixel_baseline_beside_the_encoders(runs, tmp_path, capsys):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    run = runs / "t1"
    assert main(["probe", str(run), "--pixels"]) == 0
    entry = json.loads((run / "probe.json").read_text())["pixels"]
    s = load_data(load_run_config(run).data)
    flat = lambda split: split.images.flatten(1).float().numpy() / 255  # noqa: E731
    tr = flat(s.train)
    mu, sd = tr.mean(0), np.maximum(tr.std(0, ddof=1), 1e-6)
    ref = LogisticRegression(max_iter=5000).fit((tr - mu) / sd, s.train.labels.numpy())
    assert abs(entry["val_acc"] - ref.score((flat(s.val) - mu) / sd, s.val.labels.numpy())) < 0.03
    assert "pixels probe: val accuracy" in capsys.readouterr().out
    assert main(["probe", str(run), "--pixels", "--random"]) == 2
    assert "cannot be combined with --finetune or --random" in capsys.readouterr().err
    out = tmp_path / "report"  # tau-report draws the baseline beside the encoders' probes
    assert main(["tau-report", str(run), "--out", str(out), "--images", "16"]) == 0
    assert json.loads((out / "tau_report.json").read_text())[0]["pixels_probe_acc"] == entry["val_acc"]


def test_the_pixel_probe_scores_like_scikit_learns_logistic_regression():
    """The raw-pixel baseline (the probe protocol with no encoder) against an independent linear classifier on the
    same standardised pixels: both are a softmax regression, so they land within a few points."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from vitlab.config import DataConfig
    from vitlab.train.probe import pixel_probe

    s = load_data(DataConfig(name="digits"))
    ours = pixel_probe(s.train, {"val": s.val, "test": s.test})
    flat = lambda split: split.images.flatten(1).float().numpy() / 255  # noqa: E731
    tr = flat(s.train)
    mu, sd = tr.mean(0), np.maximum(tr.std(0, ddof=1), 1e-6)
    ref = LogisticRegression(max_iter=5000).fit((tr - mu) / sd, s.train.labels.numpy())
    for name in ("val", "test"):
        split = getattr(s, name)
        assert abs(ours[f"{name}_acc"] - ref.score((flat(split) - mu) / sd, split.labels.numpy())) < 0.03
    assert ours["train_acc"] > 0.99 and ours["epochs"] == 300


def test_tau_report_reads_a_sweep_folder_and_summarises_each_tau_over_its_seeds(tmp_path, capsys):
    """`vitlab sweep pretrain.tau=0.2,1.0 --seeds 2` then `vitlab tau-report SWEEP`: one row a run, and per τ the
    mean ± std over the 2 seeds, the fixed encoder's profile (the loss's weighting, sharper at the lower τ on the same
    embeddings) and the best τ with Welch's test against the other."""
    sweep = tmp_path / "sweep"
    assert main(["sweep", "pretrain.tau=0.2,1.0", "--seeds", "2", "--out", str(sweep), "--",
                 "--task", "pretrain", "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["tau-report", str(sweep), "--images", "32"]) == 0
    printed = capsys.readouterr().out
    out = sweep / "tau-report"
    rows = json.loads((out / "tau_report.json").read_text())
    assert [(r["tau"], r["seed"]) for r in rows] == [(0.2, 0), (0.2, 1), (1.0, 0), (1.0, 1)]
    summary = json.loads((out / "tau_summary.json").read_text())
    knn = {t: [r["knn_acc"] for r in rows if r["tau"] == t] for t in (0.2, 1.0)}
    for r in summary["by_tau"]:
        assert r["n"] == 2 and r["knn_acc"] == pytest.approx(sum(knn[r["tau"]]) / 2)
        assert r["knn_acc_std"] == pytest.approx(abs(knn[r["tau"]][0] - knn[r["tau"]][1]) / 2 ** 0.5)
    fixed = {p["tau"]: p for p in summary["fixed_encoder"]["profiles"]}
    assert summary["fixed_encoder"]["tau"] == 0.2 and fixed[0.2]["top1pct"] > fixed[1.0]["top1pct"]
    best = summary["best"]
    assert best["metric"] == "knn_acc" and best["tau"] == max(summary["by_tau"], key=lambda r: r["knn_acc"])["tau"]
    assert len(best["neighbours"]) == 1 and "p" in best["neighbours"][0]
    assert "best τ by knn_acc" in printed and "fixed encoder" in printed
    assert main(["tau-report", str(sweep), "--reference", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "is not one of the runs" in capsys.readouterr().err
    # --features tokens: the accuracies come from each run's token-map probe (linear_tokens), not the pooled one
    values = {}
    for i, run in enumerate(sorted((sweep / "runs").iterdir())):
        values[run.name] = 0.6 + 0.01 * i
        (run / "probe.json").write_text(json.dumps({
            "linear": {"val_acc": 0.1, "test_acc": 0.1},
            "linear_tokens": {"val_acc": values[run.name], "test_acc": values[run.name] - 0.05},
            **({"random_linear_tokens": {"val_acc": 0.55, "test_acc": 0.5}} if i == 0 else {})}))
    assert main(["tau-report", str(sweep), "--features", "tokens", "--out", str(tmp_path / "tok"), "--images", "8"]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((tmp_path / "tok" / "tau_report.json").read_text())
    assert {Path(r["run"]).name: r["probe_acc"] for r in rows} == pytest.approx(values)
    summary = json.loads((tmp_path / "tok" / "tau_summary.json").read_text())
    assert summary["features"] == "tokens" and summary["best"]["metric"] == "probe_acc"
    by_tau = {r["tau"]: r for r in summary["by_tau"]}
    assert by_tau[1.0]["probe_acc"] == pytest.approx((0.62 + 0.63) / 2)  # the runs in name order: 0.2 s0, s1, 1.0 s0, s1
    assert by_tau[1.0]["probe_test_acc"] == pytest.approx((0.57 + 0.58) / 2)
    assert summary["best"]["tau"] == 1.0 and summary["best"]["neighbours"][0]["difference"] == pytest.approx(0.02)
    assert "linear probe on the tokens features" in printed and "random encoder" in printed and "val 0.5500" in printed
    with pytest.raises(ConfigError, match="'patches' is not one of"):  # the API's check (argparse's for the CLI)
        tau_report(sweep, tmp_path / "bad", features="patches")
    assert not (tmp_path / "bad").exists()
