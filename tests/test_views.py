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
