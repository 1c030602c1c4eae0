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
