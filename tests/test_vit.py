"""The ViT model (vitlab/models/vit.py): sizes, the model surface, input checks, resolution changes."""
from __future__ import annotations

import pytest
import torch

from vitlab import SIZES, ModelConfig, ViT, count_params, load_state_dict_resampled, size_config
from vitlab.layers import resample_pos_embed

# Published parameter counts at 224×224×3 with a 1000-class head (timm's
# vit_{tiny,small,base,large}_patch16_224 and vit_huge_patch14_224).
PARAMS = {
    "Ti/16": 5_717_416,
    "S/16": 22_050_664,
    "B/16": 86_567_656,
    "L/16": 304_326_632,
    "H/14": 632_045_800,
}


def tiny(**overrides) -> ModelConfig:
    base = dict(img_size=32, patch_size=8, in_chans=3, num_classes=5, dim=32, depth=2, heads=4, mlp_ratio=2.0)
    return ModelConfig(**{**base, **overrides})


def _model(seed=0, **overrides) -> ViT:
    torch.manual_seed(seed)
    model = ViT(tiny(**overrides)).double().eval()
    if model.cls_token is not None:
        with torch.no_grad():
            model.cls_token.normal_()  # larger than its 1e-6 init, so a misplaced class token shows
    return model


def _images(b=2, c=3, h=32, w=32, seed=1):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_match_published_sizes(name):
    assert name in SIZES
    cfg = size_config(name, img_size=224, in_chans=3, num_classes=1000)
    with torch.device("meta"):
        model = ViT(cfg)
    assert count_params(model) == PARAMS[name]


def test_parameter_count_formula_for_a_small_model():
    """patch conv C·P²·D + D, class token D, positions (1+N)·D; per block two norms 4D, qkv
    3D² + 3D, out D² + D, MLP 2·D·M + M + D; final norm 2D; head D·K + K."""
    c, p, d, n, depth, m, k = 3, 8, 32, 16, 2, 64, 5
    per_block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (2 * d * m + m + d)
    expected = (c * p * p * d + d) + d + (1 + n) * d + depth * per_block + 2 * d + (d * k + k)
    assert count_params(ViT(tiny())) == expected


# -- the model surface -------------------------------------------------------------------------
def test_forward_shapes():
    model = _model()
    x = _images(b=3)
    assert model.forward_features(x).shape == (3, 1 + 16, 32)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (3, 32)
    assert model(x).shape == (3, 5)

    no_token = _model(class_token=False, pool="avg")
    assert no_token.cls_token is None
    assert no_token.forward_features(x).shape == (3, 16, 32)
    assert no_token(x).shape == (3, 5)

    headless = _model(num_classes=0)
    assert headless(x).shape == (3, 32)

    feats, weights = model.forward_features(x, return_weights=True)
    torch.testing.assert_close(feats, model.forward_features(x))
    assert len(weights) == 2 and all(w.shape == (3, 4, 17, 17) for w in weights)


@pytest.mark.parametrize("pool,class_token", [("token", True), ("avg", True), ("avg", False), ("max", True),
                                              ("max", False)])
def test_pooling(pool, class_token):
    model = _model(pool=pool, class_token=class_token)
    x = _images()
    feats = model.forward_features(x)  # (B, prefix + N, D)
    prefix = 1 if class_token else 0
    if pool == "token":
        expected = feats[:, 0]
    elif pool == "avg":
        expected = feats[:, prefix:].sum(dim=1) / 16
    else:
        expected = torch.stack([torch.stack([feats[b, prefix:, j].max() for j in range(32)])
                                for b in range(feats.shape[0])])
    pooled = model.forward_head(feats, pre_logits=True)
    torch.testing.assert_close(pooled, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model(x), expected @ model.head.weight.T + model.head.bias, rtol=1e-12, atol=1e-12)


def test_forward_features_is_patch_embed_plus_positions_then_blocks_then_norm():
    """Eq. 1 and 4 composed by hand from the submodules."""
    model = _model()
    x = _images()
    tokens = model.to_patch_embedding(x)
    tokens = torch.cat([model.cls_token.expand(2, -1, -1), tokens], dim=1) + model.pos_embed
    for block in model.blocks:
        tokens = block(tokens)
    expected = torch.nn.functional.layer_norm(tokens, (32,), model.norm.weight, model.norm.bias, 1e-6)
    torch.testing.assert_close(model.forward_features(x), expected, rtol=1e-12, atol=1e-12)


def test_drop_path_rate_grows_linearly_to_the_configured_rate():
    model = ViT(tiny(depth=5, drop_path=0.2))
    assert [b.drop_path1.p for b in model.blocks] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert [b.drop_path2.p for b in model.blocks] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])


# -- input checks ------------------------------------------------------------------------------
def test_img_size_not_divisible_by_patch_size():
    with pytest.raises(ValueError, match=r"img_size=30.*patch_size=8"):
        tiny(img_size=30)


def test_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"dim=30.*heads=4"):
        tiny(dim=30)


def test_wrong_number_of_channels_at_forward():
    model = _model()
    with pytest.raises(ValueError, match=r"3 input channels, got 1"):
        model(_images(c=1))


def test_wrong_resolution_at_forward():
    model = _model()
    with pytest.raises(ValueError, match=r"32x32, got 48x48"):
        model(_images(h=48, w=48))
    with pytest.raises(ValueError, match=r"\(2, 32, 32\)"):
        model(_images()[:, 0])


def test_dynamic_size_not_divisible_by_patch():
    model = _model(dynamic_img_size=True)
    with pytest.raises(ValueError, match=r"36x32.*8"):
        model(_images(h=36, w=32))


def test_token_pool_needs_class_token():
    with pytest.raises(ValueError, match=r"pool='token'.*class_token"):
        tiny(pool="token", class_token=False)


def test_unknown_pool():
    with pytest.raises(ValueError, match=r"'gem'"):
        tiny(pool="gem")


# -- another resolution ------------------------------------------------------------------------
def test_dynamic_img_size_equals_a_model_built_for_that_resolution():
    """Trained at 32×32, run at 48×48: resampling on the fly gives what a 48×48 model gets
    when the 32×32 weights are loaded with the position embedding resampled."""
    trained = _model(dynamic_img_size=True)
    x = _images(h=48, w=48)
    out = trained(x)
    assert out.shape == (2, 5)

    resized = ViT(tiny(img_size=48)).double().eval()
    load_state_dict_resampled(resized, trained.state_dict())
    assert resized.pos_embed.shape == (1, 1 + 36, 32)
    torch.testing.assert_close(resized.pos_embed, resample_pos_embed(trained.pos_embed, (6, 6)))
    torch.testing.assert_close(out, resized(x), rtol=1e-12, atol=1e-12)


def test_dynamic_img_size_non_square_grid_with_the_trained_token_count():
    """64×16 has as many patches (8×2) as the trained 32×32 (4×4) but laid out differently:
    the embedding must still be resampled to the 8×2 grid, not used as it is."""
    model = _model(dynamic_img_size=True)
    x = _images(h=64, w=16)
    pe = resample_pos_embed(model.pos_embed, (8, 2))
    tokens = model.to_patch_embedding(x)  # (B, 16, D)
    tokens = torch.cat([model.cls_token.expand(2, -1, -1), tokens], dim=1) + pe
    for block in model.blocks:
        tokens = block(tokens)
    expected = model.forward_head(model.norm(tokens))
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)
    # and that differs from adding the 4×4 embedding unchanged
    wrong = torch.cat([model.cls_token.expand(2, -1, -1), model.to_patch_embedding(x)], dim=1) + model.pos_embed
    for block in model.blocks:
        wrong = block(wrong)
    assert not torch.allclose(model(x), model.forward_head(model.norm(wrong)))


def test_dynamic_img_size_without_class_token():
    model = _model(dynamic_img_size=True, class_token=False, pool="avg")
    x = _images(h=24, w=40)
    resized_pe = resample_pos_embed(model.pos_embed, (3, 5), num_prefix_tokens=0)
    tokens = model.to_patch_embedding(x) + resized_pe
    for block in model.blocks:
        tokens = block(tokens)
    torch.testing.assert_close(model(x), model.forward_head(model.norm(tokens)), rtol=1e-12, atol=1e-12)


# -- training ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ["token", "avg", "max"])
def test_gradient_reaches_every_parameter(pool):
    torch.manual_seed(0)
    model = ViT(tiny(pool=pool)).train()
    x = torch.randn(4, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
