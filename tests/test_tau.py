import math

import pytest
import torch

from vitlab.analysis.tau import alignment, uniformity, weight_profile


def test_alignment_identical_is_zero_and_antipodal_is_four():
    z = torch.randn(5, 3)
    assert alignment(z, z.clone()) == pytest.approx(0.0, abs=1e-12)
    # unit vectors e1 and -e1: ‖2 e1‖² = 4; scale does not matter (rows are normalised)
    assert alignment(torch.tensor([[3.0, 0.0]]), torch.tensor([[-1.0, 0.0]])) == pytest.approx(4.0)
    # orthogonal: ‖e1 − e2‖² = 2; mean over the two pairs of 4 and 2 is 3
    assert alignment(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[-1.0, 0.0], [0.0, 2.0]])) == \
        pytest.approx(3.0)


def test_uniformity_hand_worked():
    # two antipodal unit vectors: the one pair i<j has ‖x − y‖² = 4, so log exp(−2·4) = −8
    assert uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    # three points: e1, e1, −e1 -> pairs (0,1): d²=0, (0,2): 4, (1,2): 4 -> log((1 + 2e^-8) / 3)
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
    assert uniformity(z) == pytest.approx(math.log((1 + 2 * math.exp(-8)) / 3))
    # all identical: every pair at distance 0 -> log 1 = 0, the worst value
    assert uniformity(torch.ones(4, 3)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        uniformity(torch.ones(1, 3))


def test_weight_profile_sums_to_one_and_sharpens_with_low_tau():
    torch.manual_seed(0)
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    hot, cold = weight_profile(z1, z2, 1.0), weight_profile(z1, z2, 0.05)
    for p in (hot, cold):
        assert p["negatives"] == 30 and len(p["sorted"]) == 30
        assert sum(p["sorted"]) == pytest.approx(1.0)
        assert all(a >= b - 1e-9 for a, b in zip(p["sorted"], p["sorted"][1:]))
    assert cold["top1pct"] > hot["top1pct"] and cold["top10"] > hot["top10"]


def _profile_by_hand(z1, z2, tau):
    """Each anchor's softmax over its 2N - 2 negatives, written out with cosine similarities and math.exp."""
    import torch.nn.functional as F
    z = F.normalize(torch.cat([z1, z2]), dim=1).tolist()
    n = len(z1)
    rows = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = [sum(a * b for a, b in zip(z[i], z[j])) for j in range(2 * n) if j not in (i, positive)]
        e = [math.exp(s / tau) for s in sims]
        rows.append(sorted((v / sum(e) for v in e), reverse=True))
    return [sum(r[k] for r in rows) / len(rows) for k in range(len(rows[0]))]


def test_the_hardest_ten_percent_share_by_hand():
    """N = 30 pairs: 58 negatives an anchor, so the hardest 1% is ceil(0.58) = 1 negative, 10% is ceil(5.8) = 6."""
    torch.manual_seed(1)
    z1, z2 = torch.randn(30, 4, dtype=torch.float64), torch.randn(30, 4, dtype=torch.float64)
    for tau in (0.1, 0.5):
        avg = _profile_by_hand(z1, z2, tau)
        p = weight_profile(z1, z2, tau)
        assert p["negatives"] == 58
        assert p["top1pct"] == pytest.approx(avg[0], rel=1e-9)
        assert p["top10pct"] == pytest.approx(sum(avg[:6]), rel=1e-9)
        assert p["top10"] == pytest.approx(sum(avg[:10]), rel=1e-9)


def test_a_fixed_encoder_concentrates_weight_as_tau_falls():
    """The loss's own weighting: the same embeddings under a lower τ put more weight on the hardest negatives, and
    each profile is the hand-written softmax at that τ."""
    from vitlab.analysis.tau import fixed_encoder_profiles

    torch.manual_seed(2)
    z1, z2 = torch.randn(20, 6, dtype=torch.float64), torch.randn(20, 6, dtype=torch.float64)
    taus = [0.05, 0.1, 0.2, 0.5, 1.0]
    profiles = fixed_encoder_profiles(z1, z2, taus)
    assert [p["tau"] for p in profiles] == taus
    tops = [p["top10pct"] for p in profiles]
    assert all(a > b for a, b in zip(tops, tops[1:]))
    for p in profiles:
        assert p["top10pct"] == pytest.approx(sum(_profile_by_hand(z1, z2, p["tau"])[:4]), rel=1e-9)  # ceil(3.8)


def test_runs_grouped_by_tau_and_the_best_tau_against_its_neighbours():
    """Three seeds a τ: mean and sample std by hand, and Welch's test against scipy's (unequal variances)."""
    from scipy import stats

    from vitlab.analysis.tau import best_tau, summarise_by_tau

    probes = {0.1: [0.70, 0.72, 0.71], 0.2: [0.80, 0.79, 0.81], 0.5: [0.78, 0.80, 0.77]}
    rows = [{"tau": t, "seed": s, "probe_acc": v, "knn_acc": v - 0.01, "alignment": 0.2, "uniformity": -3.0,
             "top1pct": 0.1 / t, "top10pct": 0.2, "probe_test_acc": None, "random_probe_acc": None,
             "pixels_probe_acc": None}
            for t, vs in probes.items() for s, v in enumerate(vs)]
    by_tau = summarise_by_tau(rows)
    assert [r["tau"] for r in by_tau] == [0.1, 0.2, 0.5] and all(r["n"] == 3 for r in by_tau)
    assert by_tau[1]["probe_acc"] == pytest.approx(0.80) and by_tau[1]["probe_acc_std"] == pytest.approx(0.01)
    assert "probe_test_acc" not in by_tau[0]  # no run has it
    best = best_tau(rows)
    assert (best["metric"], best["tau"], best["n"]) == ("probe_acc", 0.2, 3)
    lower, higher = best["neighbours"]
    for n, other in ((lower, 0.1), (higher, 0.5)):
        ref = stats.ttest_ind(probes[0.2], probes[other], equal_var=False)
        assert n["tau"] == other and n["t"] == pytest.approx(ref.statistic) and n["p"] == pytest.approx(ref.pvalue)
    assert lower["separable"] and not higher["separable"]  # 9 points apart vs 1.3 points within the spread
    assert best_tau([r for r in rows if r["tau"] == 0.2]) is None  # one τ: nothing to compare
