"""vitlab/analysis/claims/norms.py: claim 7's exact check against hand-worked numbers and wrong norms, and claim
8's parts and verdict on made-up accuracies (the training itself is not run here)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlab.analysis.claims import CAVEATS, FAILS, HOLDS, UNDECIDED
from vitlab.analysis.claims import norms
from vitlab.layers import TokenBatchNorm, make_norm


def test_column_and_row_norm_worked_by_hand():
    x = torch.tensor([[1.0, 10.0], [2.0, 10.0], [3.0, 40.0]], dtype=torch.float64)
    # column 0: mean 2, biased variance 2/3, so (x - 2) / sqrt(2/3) = -sqrt(1.5), 0, sqrt(1.5)
    # column 1: mean 20, biased variance 200: -10/sqrt(200), -10/sqrt(200), 20/sqrt(200)
    expected = torch.tensor([[-math.sqrt(1.5), -10 / math.sqrt(200)], [0.0, -10 / math.sqrt(200)],
                             [math.sqrt(1.5), 20 / math.sqrt(200)]], dtype=torch.float64)
    torch.testing.assert_close(norms.column_norm(x, eps=0.0), expected)
    # row [1, 10]: mean 5.5, biased variance 20.25 (std 4.5): -1, 1
    torch.testing.assert_close(norms.row_norm(x, eps=0.0)[0], torch.tensor([-1.0, 1.0], dtype=torch.float64))
    # eps enters under the root: a constant column stays 0, a column of ±1 becomes ±1/sqrt(1 + eps)
    y = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    torch.testing.assert_close(norms.column_norm(y, eps=0.5), y / math.sqrt(1.5))


def test_pytorch_and_vitlab_norms_match_their_own_direction_only():
    d = norms.norm_diffs()
    for own in (d.bn_own, d.ln_own, d.tokens_bn_own, d.tokens_ln_own, d.running_var, d.bn_eval_vs_running,
                d.ln_dependence):
        assert own < 1e-12
    for other in (d.bn_other, d.ln_other, d.tokens_bn_other, d.tokens_ln_other, d.bn_eval_vs_batch, d.bn_dependence):
        assert other > 0.1
    assert norms.verdict7(d) == CAVEATS  # eval mode leaves the batch statistics


class _UnbiasedBN(nn.BatchNorm1d):
    """Wrong: normalises with the unbiased variance (÷ (B − 1))."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mean, var = x.mean(0), x.var(0, unbiased=True)
        super().forward(x)  # keep the running statistics moving as BatchNorm would
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class _RowBN(nn.BatchNorm1d):
    """Wrong: a BatchNorm that normalises each row, as LayerNorm does."""

    def forward(self, x):
        super().forward(x)
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias


def _wrong_token_norm(kind, dim, eps):
    """Wrong: 'batch' pools the tokens of the first image only (the statistics of one sample's sequence)."""
    if kind == "layer":
        return make_norm(kind, dim, eps=eps)

    class FirstImage(TokenBatchNorm):
        def forward(self, x):
            mean = x[0].mean(0)
            var = ((x[0] - mean) ** 2).mean(0)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias

    return FirstImage(dim, eps=eps)


@pytest.mark.parametrize("kwargs, field", [
    (dict(batch_norm=_UnbiasedBN), "bn_own"),
    (dict(batch_norm=_RowBN), "bn_own"),
    (dict(layer_norm=lambda f, eps: nn.BatchNorm1d(f, eps=eps)), "ln_own"),
    (dict(token_norm=_wrong_token_norm), "tokens_bn_own"),
])
def test_a_wrong_norm_is_caught(kwargs, field):
    d = norms.norm_diffs(**kwargs)
    assert getattr(d, field) > 0.01
    assert norms.verdict7(d) == FAILS


def test_a_batch_norm_without_running_statistics_holds():
    d = norms.norm_diffs(batch_norm=lambda f, eps: nn.BatchNorm1d(f, eps=eps, track_running_stats=False))
    assert d.bn_eval_vs_batch < 1e-12 and math.isinf(d.bn_eval_vs_running)
    assert norms.verdict7(d) == HOLDS


def test_lr_is_scaled_by_the_square_root_of_the_batch():
    assert norms.lr_for(norms.BASE_BATCH) == pytest.approx(norms.BASE_LR)
    assert norms.lr_for(4 * norms.BASE_BATCH) == pytest.approx(2 * norms.BASE_LR)
    assert norms.lr_for(2) / norms.lr_for(8) == pytest.approx(0.5)


def test_the_tiny_models_use_the_norm_asked_for():
    x = torch.randn(3, 1, 8, 8)
    for norm, kind in (("layer", nn.LayerNorm), ("batch", TokenBatchNorm)):
        vit = norms.tiny_vit(norm)
        assert vit(x).shape == (3, 10)
        assert isinstance(vit.blocks[0].norm1, kind) and isinstance(vit.norm, kind)
    assert any(isinstance(m, nn.BatchNorm2d) for m in norms.tiny_cnn("batch").modules())
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in norms.tiny_cnn("layer").modules())
    assert norms.tiny_cnn("layer")(x).shape == (3, 10)


def test_one_thread_restores_the_setting():
    before = torch.get_num_threads()
    with norms.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_every_batch_size_gets_its_epochs_and_at_least_the_minimum_steps():
    # 1,292 images: batch 256 is 6 steps an epoch, so 200 steps take ceil(200 / 6) = 34 epochs; batch 32 is 41
    # steps an epoch, and 5 epochs (205 steps) already pass 200
    assert [norms.epochs_for(b) for b in (2, 8, 32, 256)] == [5, 5, 5, 34]


def test_a_job_is_seeded(monkeypatch):
    monkeypatch.setattr(norms, "EPOCHS", 1)
    monkeypatch.setattr(norms, "MIN_STEPS", 0)
    data = norms.digits_data()
    small = type(data)(data.train_x[:64], data.train_y[:64], data.val_x[:64], data.val_y[:64], data.test_x[:64],
                       data.test_y[:64])
    job = norms.Job("CNN", "batch", 32, seed=3)
    with norms.one_thread():
        a, b = norms.train_job(job, small), norms.train_job(job, small)
    assert (a.val, a.test) == (b.val, b.test) and a.job == job


# -- claim 8's parts, on made-up validation accuracies ------------------------------------------------------------

def _results(vit_gap, cnn_gap, batches=(2, 32, 256)):
    """results[(model, norm, batch)] with LN − BN = gap[batch] (in fractions), a little seed spread."""
    out = {}
    for model, gaps in (("ViT", vit_gap), ("CNN", cnn_gap)):
        for b in batches:
            base = [0.90, 0.91, 0.92]
            out[(model, "layer", b)] = base
            out[(model, "batch", b)] = [v - gaps[b] for v in (0.905, 0.9, 0.915)]
    return out


def _status(parts, prefix):
    return next(s for name, s, _ in parts if name.startswith(prefix))


def test_parts_hold_when_ln_wins_sequences_and_small_batches_and_bn_wins_cnns():
    parts = norms.subclaims(_results({2: 0.2, 32: 0.05, 256: 0.05}, {2: 0.2, 32: -0.05, 256: -0.05}))
    assert _status(parts, "LayerNorm suits sequences") == HOLDS
    assert _status(parts, "BatchNorm suffers with small batches (ViT)") == HOLDS
    assert _status(parts, "BatchNorm suffers with small batches (CNN)") == HOLDS
    assert _status(parts, "CV suits BN") == HOLDS
    assert norms.verdict8(parts) == CAVEATS  # NLP untested: never more than caveats


def test_parts_fail_or_stay_undecided_from_the_numbers():
    # BN wins the ViT at every batch, and by more at batch 2 than at 32; nothing separates in the CNN
    parts = norms.subclaims(_results({2: -0.1, 32: -0.05, 256: -0.05}, {2: 0.0, 32: 0.0, 256: 0.0}))
    assert _status(parts, "LayerNorm suits sequences") == FAILS
    assert _status(parts, "BatchNorm suffers with small batches (ViT)") == FAILS
    assert _status(parts, "BatchNorm suffers with small batches (CNN)") == UNDECIDED
    assert _status(parts, "CV suits BN") == UNDECIDED
    assert norms.verdict8(parts) == FAILS
    nothing = norms.subclaims(_results({2: 0.0, 32: 0.0, 256: 0.0}, {2: 0.0, 32: 0.0, 256: 0.0}))
    assert {s for _, s, _ in nothing} == {UNDECIDED}
    assert norms.verdict8(nothing) == UNDECIDED


def test_a_preference_that_changes_with_the_batch_is_undecided():
    results = _results({2: 0.0, 32: -0.05, 256: 0.1}, {2: 0.0, 32: 0.0, 256: 0.0})
    status, detail = norms.prefers(results, "ViT", "layer")
    # the made-up seed spread adds 0.33 points to every gap
    assert status == UNDECIDED and "B=32: -4.67*" in detail and "B=256: +10.33*" in detail
    assert "B=2:" not in detail  # the smallest batch is the other part's
