import torch

from vitlab.config import PretrainConfig
from vitlab.data.views import make_views, uses_flip


def test_shapes_and_views_differ():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    v1, v2 = make_views(PretrainConfig(), 1, 8)(x)
    assert v1.shape == v2.shape == x.shape
    assert not torch.allclose(v1, v2)
    x3 = torch.rand(4, 3, 16, 16)
    a, b = make_views(PretrainConfig(), 3, 16)(x3)
    assert a.shape == b.shape == x3.shape and not torch.allclose(a, b)


def test_deterministic_under_seed():
    views = make_views(PretrainConfig(), 3, 16)
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(3)
    a1, a2 = views(x)
    torch.manual_seed(3)
    b1, b2 = views(x)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)


def test_flip_only_where_allowed():
    assert not uses_flip(PretrainConfig(), 1) and uses_flip(PretrainConfig(), 3)
    assert not uses_flip(PretrainConfig(flip="off"), 3) and uses_flip(PretrainConfig(flip="on"), 1)
    names = lambda v: [type(m).__name__ for m in v.augment]  # noqa: E731
    assert "RandomHorizontalFlip" not in names(make_views(PretrainConfig(), 1, 8))
    assert "RandomHorizontalFlip" not in names(make_views(PretrainConfig(flip="off"), 3, 16))
    assert "RandomHorizontalFlip" in names(make_views(PretrainConfig(), 3, 16))
    # with crop scale 1 and no translation/colour the views are the input itself: nothing mirrors it
    cfg = PretrainConfig(crop_scale=1.0, translate=0.0, flip="off")
    views = make_views(cfg, 1, 8)
    views.augment[0].ratio = (1.0, 1.0)
    x = torch.rand(8, 1, 8, 8)
    v1, _ = views(x)
    assert torch.allclose(v1, x, atol=1e-5)


def test_grey_jitter_is_a_random_affine_intensity_map_per_image():
    """pretrain.grey_jitter on 1-channel images: with the crop, flips and shifts off, a view is the image itself (p
    0.2) or v = a·x + b with one a, b per image (brightness and contrast are affine in the intensity), a in
    [(1 − j)², (1 + j)²]; about 80% of the images are changed, each differently. Without it the view is the image."""
    import pytest

    j = 0.4
    views = make_views(PretrainConfig(crop_scale=1.0, translate=0.0, flip="off", grey_jitter=j), 1, 8)
    views.augment[0].ratio = (1.0, 1.0)
    torch.manual_seed(0)
    x = 0.4 + 0.2 * torch.rand(400, 1, 8, 8)  # mid-grey: no step of the jitter reaches the clamp to [0, 1]
    v, _ = views(x)
    changed, slopes = 0, []
    for xi, vi in zip(x.flatten(1).double(), v.flatten(1).double()):
        if torch.allclose(vi, xi, atol=1e-6):
            continue
        changed += 1
        design = torch.stack([xi, torch.ones_like(xi)], 1)  # (64, 2)
        a, b = torch.linalg.lstsq(design, vi.unsqueeze(1)).solution.flatten()
        assert (design @ torch.stack([a, b]) - vi).abs().max() < 1e-5  # affine in the intensity
        assert (1 - j) ** 2 - 1e-3 <= a <= (1 + j) ** 2 + 1e-3
        slopes.append(float(a))
    assert changed / len(x) == pytest.approx(0.8, abs=0.06)
    assert len({round(s, 6) for s in slopes}) > 0.95 * len(slopes)  # each image its own draw
    plain = make_views(PretrainConfig(crop_scale=1.0, translate=0.0, flip="off"), 1, 8)
    plain.augment[0].ratio = (1.0, 1.0)
    assert torch.allclose(plain(x)[0], x, atol=1e-5)


def test_a_bad_grey_jitter_is_one_line():
    import pytest

    from vitlab.errors import ConfigError
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"^pretrain.grey_jitter must be in \[0, 1\], got"):
            PretrainConfig(grey_jitter=bad)
