"""vitlab/data/augment.py: presets keep shape/dtype/range; crop is a translation; MixUp/CutMix and
their soft targets against hand-worked references; a short training run with mixing."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from vitlab.config import AUGMENTS, DataConfig
from vitlab.configio import apply_overrides
from vitlab.data.augment import build_augment, cutmix, mix_batch, mixup, smoothed_one_hot
from vitlab.recipes import digits
from vitlab.train import fit

torch.set_num_threads(1)


@pytest.mark.parametrize("preset", AUGMENTS)
@pytest.mark.parametrize("channels", [1, 3])
def test_presets_keep_shape_dtype_range(preset, channels):
    torch.manual_seed(0)
    aug = build_augment(DataConfig(augment=preset, random_erasing=0.5))
    x = torch.rand(6, channels, 8, 8)
    for _ in range(3):  # RandAugment/TrivialAugment pick random operations: a few draws
        out = aug(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1 + 1e-6


def test_none_is_identity():
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(build_augment(DataConfig())(x), x)


def _shift(img, dy, dx):
    """img (C, H, W) moved down by dy and right by dx, zero fill."""
    out = torch.zeros_like(img)
    H, W = img.shape[-2:]
    out[:, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        img[:, max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def test_crop_with_padding_is_a_translation():
    torch.manual_seed(0)
    pad = 2
    crop = build_augment(DataConfig(augment="crop-flip", crop_padding=pad))[0]
    img = (torch.arange(1, 1 + 3 * 10 * 10, dtype=torch.float32) / 300).view(3, 10, 10)  # all distinct, > 0
    out = crop(img.expand(32, -1, -1, -1).contiguous())
    seen = set()
    for o in out:
        shifts = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                  if torch.equal(o, _shift(img, dy, dx))]
        assert len(shifts) == 1
        seen.add(shifts[0])
    assert len(seen) > 5  # the offsets really vary


@pytest.mark.parametrize("preset", [dict(augment="flip"), dict(augment="crop-flip", crop_padding=0)])
def test_flip_flips(preset):
    """'flip' (and crop-flip without padding, the same draws): every image is itself or its mirror, about half each."""
    x = torch.rand(64, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    flip = build_augment(DataConfig(**preset))
    torch.manual_seed(0)
    out = flip(x)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped ^ kept).all()) and 10 < int(flipped.sum()) < 54
    crop_flip = build_augment(DataConfig(augment="crop-flip", crop_padding=0))
    torch.manual_seed(0)
    assert torch.equal(crop_flip(x), out)


def test_mixup_matches_reference():
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 5, (8,))
    m = mix_batch(x, y, 5, mixup_alpha=0.4, smoothing=0.1)
    assert torch.allclose(m.images, m.lam * x + (1 - m.lam) * x[m.perm])
    expected = m.lam * F.one_hot(y, 5).float() * 0.9 + (1 - m.lam) * F.one_hot(y[m.perm], 5).float() * 0.9 + 0.02
    assert torch.allclose(m.targets, expected) and torch.allclose(m.targets.sum(1), torch.ones(8))
    assert torch.equal(m.labels, y if m.lam >= 0.5 else y[m.perm])
    assert torch.equal(mixup(x, 0.3, m.perm), 0.3 * x + 0.7 * x[m.perm])


def test_cutmix_pastes_box_and_sets_lambda_from_its_area():
    torch.manual_seed(1)
    x = torch.rand(6, 3, 10, 12)
    perm = torch.randperm(6)
    for lam in (0.2, 0.5, 0.9):
        out, lam_box, (t, b, l, r) = cutmix(x, lam, perm)
        inside = torch.zeros(10, 12, dtype=torch.bool)
        inside[t:b, l:r] = True
        assert torch.equal(out[..., inside], x[perm][..., inside])
        assert torch.equal(out[..., ~inside], x[..., ~inside])
        assert lam_box == pytest.approx(1 - inside.sum().item() / (10 * 12))
    m = mix_batch(x, torch.arange(6), 6, cutmix_alpha=1.0)  # lam in the result is the box's
    changed = (m.images != x).any(1)  # (B, H, W)
    assert m.lam >= 1 - changed[0].float().mean().item() - 1e-6


def test_both_on_picks_each_about_half():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 6, 6)
    kinds = []
    for _ in range(60):
        m = mix_batch(x, torch.arange(4), 4, mixup_alpha=1.0, cutmix_alpha=1.0)
        kinds.append(torch.allclose(m.images, m.lam * x + (1 - m.lam) * x[m.perm]))
    assert 15 < sum(kinds) < 45


def test_soft_target_loss_is_weighted_sum_of_hard_losses():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    perm, lam, s = torch.randperm(8), 0.3, 0.1
    target = lam * smoothed_one_hot(y, 5, s) + (1 - lam) * smoothed_one_hot(y[perm], 5, s)
    expected = (lam * F.cross_entropy(logits, y, label_smoothing=s)
                + (1 - lam) * F.cross_entropy(logits, y[perm], label_smoothing=s))
    assert torch.allclose(F.cross_entropy(logits, target), expected, atol=1e-6)


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(augment="autoaugment"), ["augment", "'autoaugment'", "crop-flip", "randaugment", "trivialaugment"]),
    (dict(mixup=-0.1), ["data.mixup", "-0.1"]),
    (dict(cutmix=-1.0), ["data.cutmix", "-1.0"]),
    (dict(mixup=float("nan")), ["data.mixup", "nan"]),
    (dict(random_erasing=-0.5), ["data.random_erasing", "-0.5"]),
    (dict(random_erasing=1.5), ["data.random_erasing", "1.5"]),
    (dict(crop_padding=-1), ["data.crop_padding", "-1"]),
    (dict(randaugment_m=30), ["data.randaugment_m", "30"]),
    (dict(randaugment_n=0), ["data.randaugment_n", "0"]),
])
def test_config_errors(kwargs, fragments):
    with pytest.raises(ValueError) as e:
        DataConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_training_with_mixing_runs(tmp_path):
    """One short epoch on the digits with every switch on: the soft-target path trains and logs."""
    cfg = apply_overrides(digits(), {
        "model.dim": 16, "model.depth": 1, "model.heads": 2, "model.patch_size": 4, "model.mlp_ratio": 2.0,
        "model.pool": "avg", "optim.epochs": 1, "optim.batch_size": 64, "optim.warmup_epochs": 0.5,
        "data.augment": "crop-flip", "data.random_erasing": 0.25, "data.mixup": 0.2, "data.cutmix": 1.0,
        "device": "cpu", "progress": False, "threads": 1, "out_dir": str(tmp_path)})
    run = fit(cfg)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0
    # accuracy against each image's dominant label, counted over 20 batches of 64 (1,292 digits, drop_last)
    assert row["train_acc"] * 1280 == pytest.approx(round(row["train_acc"] * 1280), abs=1e-6)
