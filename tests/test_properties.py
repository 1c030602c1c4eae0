"""Property-based tests (hypothesis) over model configurations, vitlab/config.py and vitlab/models/vit.py.

Every valid ModelConfig in a small range builds and runs forward and backward with finite outputs and
gradients; every invalid one raises ValueError with a message naming the offending field.
"""
import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vitlab.config import ATTN_IMPLS, INITS, NORMS, POOLS, STEMS, ModelConfig
from vitlab.models import ViT

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


@st.composite
def valid_configs(draw):
    patch = draw(st.sampled_from([1, 2, 4, 8]))
    img = patch * draw(st.integers(1, 32 // patch))  # 4..32 for most patches, always divisible
    if img < 4:
        img = patch * math.ceil(4 / patch)
    heads = draw(st.integers(1, 4))
    class_token = draw(st.booleans())
    pool = draw(st.sampled_from(POOLS if class_token else tuple(p for p in POOLS if p != "token")))
    stem = draw(st.sampled_from(STEMS if patch >= 2 else ("patch",)))  # conv stems need P = 2^k >= 2
    return ModelConfig(img_size=img, patch_size=patch, in_chans=draw(st.integers(1, 3)),
                       num_classes=draw(st.integers(0, 5)), dim=heads * draw(st.sampled_from([2, 4, 8])),
                       depth=draw(st.integers(1, 3)), heads=heads, mlp_ratio=draw(st.sampled_from([1.0, 2.0])),
                       qkv_bias=draw(st.booleans()), class_token=class_token, pool=pool,
                       init=draw(st.sampled_from(INITS)), attn_impl=draw(st.sampled_from(ATTN_IMPLS)),
                       dropout=draw(st.sampled_from([0.0, 0.1])), drop_path=draw(st.sampled_from([0.0, 0.1])),
                       norm=draw(st.sampled_from(NORMS)), stem=stem)


@SETTINGS
@given(cfg=valid_configs(), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_every_valid_config_runs_forward_and_backward(cfg, batch, seed):
    # BatchNorm in train mode needs more than one value per feature: tokens (norm='batch') or
    # grid cells at the conv stem's last step
    assume(cfg.norm != "batch" or batch * (cfg.num_patches + cfg.class_token) > 1)
    assume(cfg.stem == "patch" or batch * cfg.num_patches > 1)
    torch.manual_seed(seed)
    model = ViT(cfg)
    x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size, requires_grad=True)
    out = model(x)
    assert out.shape == (batch, cfg.num_classes or cfg.dim)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


BREAKERS = {
    "img_size": (st.integers(-3, 0), "model.img_size"),
    "patch_size": (st.integers(-3, 0), "model.patch_size"),
    "dim": (st.integers(-3, 0), "model.dim"),
    "depth": (st.integers(-3, 0), "model.depth"),
    "heads": (st.integers(-3, 0), "model.heads"),
    "num_classes": (st.integers(-5, -1), "model.num_classes"),
    "mlp_ratio": (st.sampled_from([0.0, -1.0, float("nan")]), "model.mlp_ratio"),
    "dropout": (st.sampled_from([1.0, -0.1, 2.0]), "model.dropout"),
    "drop_path": (st.sampled_from([1.0, -0.5]), "model.drop_path"),
    "pool": (st.sampled_from(["cls", "mean", ""]), "model.pool"),
    "init": (st.sampled_from(["xavier", ""]), "model.init"),
    "attn_impl": (st.sampled_from(["flash", ""]), "model.attn_impl"),
    "norm": (st.sampled_from(["rms", "group", ""]), "model.norm"),
    "stem": (st.sampled_from(["conv", "conv+pool", ""]), "model.stem"),
}


@st.composite
def invalid_configs(draw):
    """A valid config with one thing broken, and a fragment the error message must contain."""
    base = draw(valid_configs()).__dict__.copy()
    kind = draw(st.sampled_from([*BREAKERS, "indivisible_img", "indivisible_dim", "token_without_class",
                                 "conv_stem_patch"]))
    if kind == "conv_stem_patch":
        base["stem"] = draw(st.sampled_from(STEMS[1:]))
        base["patch_size"] = draw(st.sampled_from([1, 3, 5, 6, 12]))
        base["img_size"] = base["patch_size"] * draw(st.integers(1, 4))
        return base, f"model.patch_size={base['patch_size']}"
    if kind == "indivisible_img":
        base["patch_size"] = draw(st.integers(2, 8))
        base["img_size"] = base["patch_size"] * draw(st.integers(1, 4)) + draw(st.integers(1, base["patch_size"] - 1))
        return base, "is not divisible by model.patch_size"
    if kind == "indivisible_dim":
        base["heads"] = draw(st.integers(2, 4))
        base["dim"] = base["heads"] * draw(st.integers(1, 4)) + draw(st.integers(1, base["heads"] - 1))
        return base, "is not divisible by model.heads"
    if kind == "token_without_class":
        base["pool"], base["class_token"] = "token", False
        return base, "class_token"
    strategy, fragment = BREAKERS[kind]
    base[kind] = draw(strategy)
    return base, fragment


@SETTINGS
@given(case=invalid_configs())
def test_every_invalid_config_raises_value_error_naming_it(case):
    kwargs, fragment = case
    try:
        ModelConfig(**kwargs)
    except ValueError as e:
        assert fragment in str(e), (kwargs, str(e))
    else:
        raise AssertionError(f"no error for {kwargs}")
