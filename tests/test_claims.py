"""vitlab claims: the statistics helper, the exact checks of claims 11 and 12, the shared lab, the report and the
command (the experiments themselves are run by `vitlab claims`, not by the suite; tests/test_claims_<topic>.py
cover each topic's own checks)."""
import csv
import math
import random

import pytest
import torch
from scipy import stats as scipy_stats

from vitlab.analysis.claims import CLAIMS, FAILS, HOLDS, Finding, Lab, report
from vitlab.analysis.claims import downsampling as D
from vitlab.analysis.claims import lab as L
from vitlab.analysis.claims import temperature as T
from vitlab.analysis.claims.stats import Spread, compare, welch
from vitlab.cli import main


# -- statistics ------------------------------------------------------------------------------------------------
def test_welch_by_hand():
    # a = 1, 2, 3 and b = 4, 5, 6: means 2 and 5, variances 1 and 1; t = -3 / sqrt(1/3 + 1/3) = -3.674, df = 4
    w = welch([1, 2, 3], [4, 5, 6])
    assert w.t == pytest.approx(-3 / math.sqrt(2 / 3))
    assert w.df == pytest.approx(4.0)
    assert w.p == pytest.approx(2 * scipy_stats.t.sf(3 / math.sqrt(2 / 3), 4))
    assert w.separable and w.p == pytest.approx(0.0213, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_welch_equals_scipys_unequal_variance_test(seed):
    rng = random.Random(seed)
    a = [rng.gauss(0.9, 0.02) for _ in range(rng.randint(2, 6))]
    b = [rng.gauss(0.91, 0.05) for _ in range(rng.randint(2, 6))]
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    w = welch(a, b)
    assert w.t == pytest.approx(ref.statistic)
    assert w.p == pytest.approx(ref.pvalue)


def test_welch_without_spread_and_with_too_few_values():
    assert welch([0.5, 0.5], [0.5, 0.5]).p == 1.0
    assert welch([0.5, 0.5], [0.6, 0.6]).p == 0.0
    with pytest.raises(ValueError, match=">= 2 values"):
        welch([0.5], [0.6, 0.7])


def test_spread_and_compare_sentence():
    s = Spread((0.97, 0.98, 0.99))
    assert s.mean == pytest.approx(0.98) and s.std == pytest.approx(0.01)
    assert s.fmt() == "98.00 ± 1.00"
    assert "within the seed spread" in compare("a", [0.97, 0.98, 0.99], "b", [0.975, 0.985, 0.99])
    assert "separable" in compare("a", [0.90, 0.91, 0.92], "b", [0.97, 0.98, 0.99])


def test_a_finding_takes_only_the_four_verdicts():
    with pytest.raises(ValueError, match="not one of"):
        Finding("probably", "why")


# -- claim 11: receptive fields ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, r", [("conv3,conv3,conv3", 7), ("conv3s2,conv3,conv3", 11), ("conv3,conv3", 5),
                                     ("conv5,conv5,conv5", 13), ("conv3,maxpool2s2,conv3,conv3", 12),
                                     ("conv3d2", 5), ("conv3s1p1,conv3s1p1", 5)])
def test_gradient_extent_is_the_receptive_field_worked_by_hand(spec, r):
    # r_l = r_{l-1} + (k_l - 1) j_{l-1}, j_l = j_{l-1} s_l: e.g. conv3s2, conv3, conv3 -> 3, 3 + 2*2, 7 + 2*2 = 11
    assert D.gradient_extent(spec) == r


def test_claim11_finds_the_stride_statement_backwards(tmp_path):
    f = D.claim11(Lab(out=tmp_path, runs=tmp_path / "runs"))
    assert f.verdict == FAILS
    assert "larger stride" in f.why and "7 → 11" in f.why


# -- claim 12: softmax limits --------------------------------------------------------------------------------------
def test_softmax_meets_its_limits_and_bounds():
    r = T.softmax_limits()
    assert r["ok"]
    assert float(r["to_max"][0]) == pytest.approx(3 * math.exp(-100), rel=1e-6)  # T = 0.01: (n-1) e^{-gap/T}, the 2nd term dominates
    assert float(r["to_uniform"][-1]) < 0.01


def test_the_softmax_check_catches_a_softmax_that_ignores_small_temperatures():
    broken = lambda z, dim: torch.softmax(z.clamp(-3, 3), dim)  # noqa: E731  saturating logits: no one-hot limit
    assert not T.softmax_limits(broken)["ok"]


def test_claim12_holds_and_draws_its_plot(tmp_path):
    f = T.claim12(Lab(out=tmp_path, runs=tmp_path / "runs"))
    assert f.verdict == HOLDS
    assert (tmp_path / f.plots[0]).stat().st_size > 1000


# -- claim 9: reading a τ sweep ---------------------------------------------------------------------------------
def test_sweep_runs_reads_the_tau_column(tmp_path):
    with open(tmp_path / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["pretrain.tau", "val_knn_acc_mean", "run_dirs"])
        w.writeheader()
        w.writerow({"pretrain.tau": "0.1", "val_knn_acc_mean": 0.9, "run_dirs": "/r/a;/r/b"})
        w.writerow({"pretrain.tau": "0.5", "val_knn_acc_mean": 0.8, "run_dirs": "/r/c;/r/d"})
    runs = T.sweep_runs(tmp_path)
    assert {t: [p.name for p in ds] for t, ds in runs.items()} == {0.1: ["a", "b"], 0.5: ["c", "d"]}


def test_sweep_runs_refuses_a_folder_that_is_not_a_tau_sweep(tmp_path):
    with pytest.raises(Exception, match="no sweep.csv"):
        T.sweep_runs(tmp_path)
    (tmp_path / "sweep.csv").write_text("model.depth,run_dirs\n2,/r/a\n")
    with pytest.raises(Exception, match="no pretrain.tau column"):
        T.sweep_runs(tmp_path)


def test_claim9_on_a_small_tau_sweep(tmp_path):
    """The sweep path end to end: 2 τ × 2 seeds of a 1-epoch digits pretraining, probed, then read by claim 9."""
    from dataclasses import replace

    from vitlab.recipes.pretrain_digits import pretrain_digits
    from vitlab.sweep import run_sweep
    from vitlab.train.probe import probe

    base = pretrain_digits()
    base = replace(base, progress=False, optim=replace(base.optim, epochs=1), model=replace(base.model, depth=1))
    sweep = run_sweep(base, {"pretrain.tau": ["0.1", "1.0"]}, seeds=2, out_dir=tmp_path / "sweep")
    for runs in T.sweep_runs(sweep).values():
        for d in runs:
            probe(d, epochs=20)
    f = T.claim9(Lab(out=tmp_path / "out", runs=tmp_path / "runs", tau_sweep=tmp_path / "sweep"))
    assert "the τ sweep in" in f.evidence[0]
    table = [line for line in f.evidence if line.startswith("| 0.1 ") or line.startswith("| 1 ")]
    assert len(table) == 2 and all(line.rstrip().endswith("| 2 |") for line in table)  # two seeds each
    # the loss's own weighting on one fixed encoder falls with τ whatever was learned
    fixed = [float(x.split(": ")[1]) for x in f.evidence[2].split(". Decreasing")[0].split("every τ: ")[1].split(", ")]
    assert fixed == sorted(fixed, reverse=True) and fixed[0] > 5 * fixed[-1]
    assert not (tmp_path / "runs").exists()  # nothing trained: the sweep's runs were read


# -- the lab ---------------------------------------------------------------------------------------------------
def test_textures_share_their_mean_and_std_and_are_seeded():
    x, y = L.textures(64, seed=3)
    assert x.shape == (64, 1, 16, 16) and y.bincount().tolist() == [16, 16, 16, 16]
    assert torch.allclose(x.mean((1, 2, 3)), torch.full((64,), 0.5), atol=1e-5)
    assert torch.allclose(x.std((1, 2, 3)), torch.full((64,), 0.2), atol=1e-5)
    x2, y2 = L.textures(64, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, L.textures(64, seed=4)[0])
    noisy, _ = L.textures(64, noise=0.8, seed=3)
    assert torch.allclose(noisy.mean((1, 2, 3)), torch.full((64,), 0.5), atol=1e-5)


def test_max_pooling_keeps_what_average_pooling_loses_of_equal_mean_textures():
    data = L.texture_data(0, train=400, val=200, test=8)
    assert D.pooled_pixels_accuracy(data, "max") > D.pooled_pixels_accuracy(data, "avg") + 0.2


def test_small_cnn_flops_worked_by_hand():
    # 8×8 digits, widths 16, 32, max pools: conv1 2·9·1·16·64, conv2 (at 4×4) 2·9·16·32·16, head 2·32·10
    with torch.device("meta"):
        assert D.cnn_flops(L.SmallCNN(down="max")) == 18_432 + 147_456 + 640
        assert D.cnn_flops(L.SmallCNN(down="stride")) == 2 * 9 * 16 * 16 + 2 * 9 * 16 * 32 * 4 + 640
    wide = D.matched_widths(300_000)
    with torch.device("meta"):
        assert abs(D.cnn_flops(L.SmallCNN(widths=wide)) - 300_000) < 12_000


def test_small_cnn_heads_and_bad_choices():
    x = torch.zeros(2, 1, 8, 8)
    assert L.SmallCNN(down="none", head="flatten").head.in_features == 32 * 8 * 8
    assert L.SmallCNN(down="max", head="flatten").head.in_features == 32 * 2 * 2
    assert L.SmallCNN(down="conv", head="gap")(x).shape == (2, 10)
    for kw, msg in ((dict(down="blur"), "down="), (dict(norm="group"), "norm="), (dict(head="attn"), "head=")):
        with pytest.raises(ValueError, match=msg):
            L.SmallCNN(**kw)


def test_train_classifier_is_seeded_and_learns_the_digits():
    data = L.digits_data()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(L.train_classifier(L.SmallCNN(), data, epochs=2, seed=0))
    assert runs[0].val_acc == runs[1].val_acc and runs[0].test_acc == runs[1].test_acc
    assert runs[0].val_acc[-1] > 0.5  # 10 classes: chance is 0.1


# -- the report and the command -------------------------------------------------------------------------------------
def test_every_claim_of_the_issue_is_registered_in_order():
    assert sorted(CLAIMS) == list(range(1, 15))
    assert all(c.kind in ("exact", "experiment") for c in CLAIMS.values())


def test_the_report_links_its_plots_relative_to_itself(tmp_path):
    lab = Lab(out=tmp_path / "plots", runs=tmp_path / "runs")
    results = [(CLAIMS[12], Finding(HOLDS, "because", ["- a number"], ["p.png"]), 1.5)]
    path = report.write(results, lab, tmp_path / "claims.md")
    text = path.read_text()
    assert "| 12 | Softmax" in text and "**holds**" in text and "![claim 12](plots/p.png)" in text


def test_the_command_checks_claims_and_never_overwrites_a_report(tmp_path, capsys):
    args = ["claims", "--only", "11,12", "--out", str(tmp_path / "c")]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("11  does not hold") and lines[1].startswith("12  holds")
    text = (tmp_path / "c" / "claims.md").read_text()
    assert "## 11." in text and "## 12." in text and "claim12_softmax.png" in text
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "c" / "claims.md").read_text() == text


@pytest.mark.parametrize("args, message", [(["--only", "15"], "there is no claim 15"),
                                           (["--only", "x"], "expected claim numbers"),
                                           (["--seeds", "1"], "--seeds must be >= 2"),
                                           (["--tau-sweep", "/nonexistent"], "no sweep.csv there")])
def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    assert main(["claims", "--out", str(tmp_path / "c"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_the_command_gives_the_engine_its_log_level_back(tmp_path):
    import logging

    engine = logging.getLogger("vitlab.train")
    before = engine.level
    assert main(["claims", "--only", "11", "--out", str(tmp_path / "c")]) == 0
    assert engine.level == before  # later INFO lines of the engine (resume messages, ...) still reach their handlers
