"""vitlab/analysis/claims/upsampling.py: the checkerboard measure on hand-worked maps, the verdict logic of claim 3
on made-up seeds, and the exact checks of claims 4 and 5 against references and against broken variants.

The engine runs of claim 3 are not run here (minutes); its config, data and finding are.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitlab.analysis.claims.claim import CAVEATS, FAILS, HOLDS, UNDECIDED, Lab
from vitlab.analysis.claims import upsampling as U
from vitlab.layers.upsample import METHODS, Upsample2x


@pytest.fixture
def lab(tmp_path):
    return Lab(out=tmp_path / "out", runs=tmp_path / "runs")


# ---------------------------------------------------------------- claim 3: period2_share

def _grid(h, w):
    i = torch.arange(h, dtype=torch.float64).view(h, 1)
    j = torch.arange(w, dtype=torch.float64).view(1, w)
    return i, j


def test_period2_share_by_hand():
    i, j = _grid(8, 6)
    checker = (-1.0) ** (i + j)  # all its variation is at (H/2, W/2)
    assert U.period2_share(checker) == pytest.approx(1.0, abs=1e-12)
    lattice = ((i % 2 == 0) & (j % 2 == 0)).double()  # one 1 in every 2x2 block: (1 + a)(1 + b)/4
    assert U.period2_share(lattice) == pytest.approx(1.0, abs=1e-12)
    assert U.period2_share(torch.full((8, 6), 3.0)) == 0.0  # no variation
    assert U.period2_share(U.smooth_map(16)) == pytest.approx(0.0, abs=1e-12)
    # (-1)^i has energy H·W, sqrt(2)·cos(2πj/W) energy H·W too, and they are orthogonal: share 1 / (1 + 1) = 0.5
    mixed = (-1.0) ** i + math.sqrt(2) * torch.cos(2 * math.pi * j / 6)
    assert U.period2_share(mixed) == pytest.approx(0.5, abs=1e-12)
    # channels pool their energies: a checkerboard channel and an equally strong smooth one give 0.5
    smooth = torch.cos(2 * math.pi * i / 8).expand(8, 6)
    both = torch.stack([checker, smooth * checker.norm() / smooth.norm()])
    assert U.period2_share(both) == pytest.approx(0.5, abs=1e-12)


def test_period2_share_of_white_noise_is_three_over_hw():
    g = torch.Generator().manual_seed(0)
    shares = [U.period2_share(torch.randn(16, 16, generator=g)) for _ in range(400)]
    assert sum(shares) / len(shares) == pytest.approx(3 / 255, rel=0.15)


def test_period2_share_needs_even_sides():
    with pytest.raises(ValueError, match="even height and width, got 7x8"):
        U.period2_share(torch.randn(7, 8))


def test_initialised_shares():
    init = U.initialised_shares([0, 1])
    for m in ("nearest", "bilinear"):
        assert init[m]["constant"].values == (0.0, 0.0)
    assert max(init["nearest"]["smooth"].values) < 1e-12  # a 2x2 box filter: zero response at Nyquist
    assert 0 < init["bilinear"]["smooth"].mean < 1e-3  # the clamped edges leave a trace
    # a random 2x2 kernel tiles a constant input: all of the output's variation has period 2
    assert init["transposed"]["constant"].mean == pytest.approx(1.0, abs=1e-12)
    # ties put every value at its block's top-left: a lattice
    assert init["unpool"]["constant"].mean == pytest.approx(1.0, abs=1e-12)


def test_a_balanced_transposed_kernel_has_no_checkerboard():
    # the measure tells kernels apart: four equal taps paint a constant, four unequal ones a period-2 tile
    up = Upsample2x("transposed", 2).double()
    with torch.no_grad():
        up.to_up.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 2, 1, 1).expand(2, 2, 2, 2))
    x = torch.ones(1, 2, 4, 4, dtype=torch.float64)
    assert U.period2_share(up(x)) == 0.0
    with torch.no_grad():
        up.to_up.weight[0, 0, 0, 0] += 1.0
    assert U.period2_share(up(x)) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------- claim 3: config, data, verdict

@pytest.mark.parametrize("resize", U.RESIZES)
def test_small_segment_config(resize):
    for method in METHODS:
        cfg = U.small_segment_config(method, resize)
        assert (cfg.task, cfg.segment.upsample, cfg.segment.resize) == ("segment", method, resize)
        assert cfg.model.img_size == cfg.segment.canvas == 16
        assert cfg.model.patch_size == 4  # two 2x up-sampling steps, as in the recipe
        assert cfg.threads == 1 and not cfg.tensorboard and not cfg.progress


def test_nearest_labels_have_no_period2_energy_and_bilinear_ones_do():
    # a 2x nearest enlargement is a 2x2 box filter of the zero-inserted digit, and the box's response is zero at
    # the Nyquist frequencies: the label maps of resize='nearest' have no period-2 energy at all
    from vitlab.data.segmentation import load_segmentation

    shares = {}
    for resize in U.RESIZES:
        cfg = U.small_segment_config("nearest", resize)
        val = load_segmentation(cfg.segment, cfg.data).val
        onehot = F.one_hot(val.labels[:50], 11).permute(0, 3, 1, 2).double()  # (50, 11, 16, 16)
        shares[resize] = U.period2_share(onehot)
    assert shares["nearest"] == pytest.approx(0.0, abs=1e-12)
    assert shares["bilinear"] > 1e-3


def test_blank_canvas_share(tmp_path):
    from vitlab.models.segmenter import Segmenter
    from vitlab.train.artifacts import save_segmenter

    cfg = U.small_segment_config("transposed", "nearest")
    torch.manual_seed(0)
    model = Segmenter(cfg.model, cfg.segment, num_classes=11).eval()
    save_segmenter(tmp_path / "model.safetensors", model, {"mean": [0.2], "std": [0.5]})
    blank = torch.full((1, 1, 16, 16), (0.0 - 0.2) / 0.5)
    with torch.no_grad():
        expected = U.period2_share(model(blank))
    assert U.blank_canvas_share(tmp_path) == pytest.approx(expected, rel=1e-9)


def _seeds(**means):
    """Three seeds a method around the given means (spread ± 0.005), the other methods at 0.5."""
    return {m: [means.get(m, 0.5) + d for d in (-0.005, 0.0, 0.005)] for m in METHODS}


def test_upsample_outcome():
    assert U.upsample_outcome(_seeds(bilinear=0.85, nearest=0.80)) == (1, "bilinear", "nearest")
    assert U.upsample_outcome(_seeds(bilinear=0.80, nearest=0.85)) == (-1, "nearest", "bilinear")
    tied = _seeds(bilinear=0.80, nearest=0.80)
    tied["nearest"] = [0.70, 0.81, 0.92]  # best mean, but spread wide
    assert U.upsample_outcome(tied) == (0, "nearest", "bilinear")


def test_claim3_verdict():
    assert U.claim3_verdict([1, 1], [0.8, 0.8]) == HOLDS
    assert U.claim3_verdict([-1, -1], [0.8, 0.8]) == FAILS
    assert U.claim3_verdict([-1, 0], [0.8, 0.8]) == FAILS
    assert U.claim3_verdict([1, -1], [0.8, 0.8]) == CAVEATS
    assert U.claim3_verdict([1, 0], [0.8, 0.8]) == CAVEATS
    assert U.claim3_verdict([0, 0], [0.8, 0.8]) == UNDECIDED
    assert U.claim3_verdict([1, 1], [0.8, 0.5]) == UNDECIDED  # one setting never learned the task


def _results(per_resize):
    return {r: {m: [{"val_miou": v, "test_miou": v, "blank_share": 0.01} for v in vals] for m, vals in s.items()}
            for r, s in per_resize.items()}


def test_claim3_finding_follows_the_numbers(lab):
    init = U.initialised_shares([0, 1])
    good = _results({r: _seeds(bilinear=0.85, nearest=0.80) for r in U.RESIZES})
    f = U.claim3_finding(lab, good, init, 1.0)
    assert f.verdict == HOLDS
    assert "bilinear was best (85.0% vs nearest 80.0%, separable)" in f.why
    assert (lab.out / f.plots[0]).exists()
    bad = _results({"nearest": _seeds(bilinear=0.80, nearest=0.85), "bilinear": _seeds(bilinear=0.80, unpool=0.9)})
    f = U.claim3_finding(lab, bad, init, 1.0)
    assert f.verdict == FAILS
    assert "with bilinear-enlarged labels unpool was best (90.0% vs bilinear 80.0%, separable)" in f.why
    assert any("| bilinear | unpool **best** |" in line for line in f.evidence)


# ---------------------------------------------------------------- claim 4

def test_zero_insertion_by_hand():
    # k = s = 2, p = 0: each input pixel paints its own 2x2 block, x[i, j] * w
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64).view(1, 1, 2, 2)
    w = torch.tensor([[1.0, 10.0], [100.0, 1000.0]], dtype=torch.float64).view(1, 1, 2, 2)
    expected = torch.tensor([[1, 10, 2, 20],
                             [100, 1000, 200, 2000],
                             [3, 30, 4, 40],
                             [300, 3000, 400, 4000]], dtype=torch.float64)
    assert torch.equal(U.zero_insertion_transpose(x, w, None, 2, 0)[0, 0], expected)
    assert torch.equal(F.conv_transpose2d(x, w, stride=2)[0, 0], expected)
    # without the flip each block comes out rotated by 180 degrees
    assert torch.equal(U.zero_insertion_transpose(x, w, None, 2, 0, flip=False)[0, 0, :2, :2],
                       torch.tensor([[1000.0, 100.0], [10.0, 1.0]], dtype=torch.float64))


@pytest.mark.parametrize("k,s,p", U.CLAIM4_CASES)
def test_zero_insertion_matches_conv_transpose(k, s, p):
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(3, 2, k, stride=s, padding=p).double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    out = U.zero_insertion_transpose(x, layer.weight, layer.bias, s, p)
    torch.testing.assert_close(out, layer(x), rtol=1e-12, atol=1e-12)
    assert (U.zero_insertion_transpose(x, layer.weight, layer.bias, s, p, flip=False) - layer(x)).abs().max() > 1e-3
    with pytest.raises(RuntimeError):  # (C_in, C_out, k, k) read as (C_out', C_in') expects 2 input channels
        U.zero_insertion_transpose(x, layer.weight, layer.bias, s, p, swap=False)


def test_transpose_errors_catch_a_broken_recipe():
    rows = U.transpose_errors()
    assert all(r["recipe"] < 1e-12 for r in rows)
    assert all(r["no swap"] is None for r in rows)

    def off_by_one_padding(x, weight, bias, stride, padding, **kw):
        return U.zero_insertion_transpose(x, weight, bias, stride, padding, **kw)[..., 1:, 1:]

    broken = U.transpose_errors(recipe=off_by_one_padding)
    assert all(r["recipe"] is None or r["recipe"] > 1e-3 for r in broken)


def test_claim4_verdict(lab):
    f = U.claim4(lab)
    assert f.verdict == CAVEATS
    assert "only with the kernel flipped spatially and its in/out channels swapped" in f.why


# ---------------------------------------------------------------- claim 5

def test_scatter_unpool_by_hand():
    values = torch.tensor([[5.0, 7.0], [6.0, 9.0]]).view(1, 1, 2, 2)
    indices = torch.tensor([[1, 6], [8, 15]]).view(1, 1, 2, 2)
    assert U.scatter_unpool(values, indices, (4, 4))[0, 0].tolist() == [[0.0, 5.0, 0.0, 0.0],
                                                                         [0.0, 0.0, 7.0, 0.0],
                                                                         [6.0, 0.0, 0.0, 0.0],
                                                                         [0.0, 0.0, 0.0, 9.0]]


def test_block_argmax_by_hand():
    x = torch.tensor([[1.0, 5.0, 2.0, 2.0],
                      [3.0, 2.0, 2.0, 2.0],
                      [6.0, 0.0, 1.0, 1.5],
                      [4.0, 2.0, 3.0, 9.0]]).view(1, 1, 4, 4)
    # block (0, 1) is a four-way tie: the first in scan order, (0, 2) = flat 2
    assert U.block_argmax_by_hand(x, 2, 2).flatten().tolist() == [1, 2, 8, 15]
    assert F.max_pool2d(x, 2, return_indices=True)[1].flatten().tolist() == [1, 2, 8, 15]
    # overlapping 3x3 windows at stride 1: the 6 at (2, 0) is the maximum of two of them, the 5 and the 9 of one
    assert U.block_argmax_by_hand(x, 3, 1).flatten().tolist() == [8, 1, 8, 15]
    assert F.max_pool2d(x, 3, stride=1, return_indices=True)[1].flatten().tolist() == [8, 1, 8, 15]


def test_unpool_errors_are_zero_and_catch_a_broken_unpool():
    errs = U.unpool_errors()
    assert errs and all(v == 0 for v in errs.values())
    nearest = lambda v, i: F.interpolate(v, scale_factor=2, mode="nearest")  # noqa: E731
    assert U.unpool_errors(unpool=nearest)["given"] > 0.1

    def top_left(v, i):  # every value at its block's first position, whatever was recorded
        out = torch.zeros(*v.shape[:2], 2 * v.shape[2], 2 * v.shape[3], dtype=v.dtype)
        out[..., ::2, ::2] = v
        return out

    assert U.unpool_errors(unpool=top_left)["given"] > 0.1


def test_tie_and_overlap_facts():
    facts = U.tie_and_overlap_facts()
    assert facts["ties go to the first position"] == 1.0
    assert facts["pool(unpool(p)) vs max(p, 0)"] == 0.0
    assert facts["negative maxima"] > 0 and facts["pool(unpool(p)) vs p"] > 0
    assert 0 < facts["overlap: windows sharing a position"] < 1


def test_claim5_verdict(lab):
    f = U.claim5(lab)
    assert f.verdict == HOLDS
    assert "exactly (max diff 0" in f.why
