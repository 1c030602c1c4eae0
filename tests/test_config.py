"""vitlab/config.py: invariants checked at construction; the size table."""
import dataclasses
import pytest

from vitlab.config import SIZES, DataConfig, ModelConfig, OptimConfig, RunConfig, size_config


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(img_size=30, patch_size=16), ["img_size=30", "patch_size=16"]),
    (dict(img_size=8, patch_size=3), ["img_size=8", "patch_size=3"]),
    (dict(dim=100, heads=3), ["dim=100", "heads=3"]),
    (dict(dim=0), ["model.dim", "0"]),
    (dict(depth=-1), ["model.depth", "-1"]),
    (dict(heads=2.5), ["model.heads", "2.5"]),
    (dict(patch_size=True), ["model.patch_size", "True"]),
    (dict(num_classes=-2), ["num_classes", "-2"]),
    (dict(mlp_ratio=0.0), ["mlp_ratio", "0.0"]),
    (dict(dropout=1.0), ["model.dropout", "1.0"]),
    (dict(attn_dropout=-0.1), ["attn_dropout", "-0.1"]),
    (dict(drop_path=1.5), ["drop_path", "1.5"]),
    (dict(pool="cls"), ["pool", "'cls'", "token", "avg", "max"]),
    (dict(init="xavier"), ["init", "'xavier'", "trunc_normal"]),
    (dict(attn_impl="flash"), ["attn_impl", "'flash'", "sdpa", "explicit"]),
    (dict(pool="token", class_token=False), ["pool='token'", "class_token"]),
])
def test_model_invariants(kwargs, fragments):
    with pytest.raises(ValueError) as e:
        ModelConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_valid_model_configs_build():
    assert ModelConfig(pool="avg", class_token=False).num_patches == 196
    c = ModelConfig(img_size=8, patch_size=2, dim=6, heads=3, num_classes=0)
    assert (c.grid_size, c.num_patches) == (4, 16)


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(lr=0.0), ["optim.lr", "0.0"]),
    (dict(lr=-1e-3), ["optim.lr", "-0.001"]),
    (dict(lr=float("nan")), ["optim.lr", "nan"]),
    (dict(batch_size=0), ["batch_size", "0"]),
    (dict(batch_size=-8), ["batch_size", "-8"]),
    (dict(epochs=0), ["epochs", "0"]),
    (dict(epochs=-3), ["epochs", "-3"]),
    (dict(lr=1e-3, min_lr=1e-2), ["min_lr", "0.01"]),
    (dict(min_lr=-1e-5), ["min_lr", "-1e-05"]),
    (dict(warmup_epochs=-1.0), ["warmup_epochs", "-1.0"]),
    (dict(weight_decay=-0.1), ["weight_decay", "-0.1"]),
    (dict(label_smoothing=1.0), ["label_smoothing", "1.0"]),
    (dict(grad_clip=-1.0), ["grad_clip", "-1.0"]),
])
def test_optim_invariants(kwargs, fragments):
    with pytest.raises(ValueError) as e:
        OptimConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(e.value)


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(val_split=0.0), ["val_split", "0.0"]),
    (dict(val_split=1.0), ["val_split", "1.0"]),
    (dict(test_split=0.0), ["test_split", "0.0"]),
    (dict(augment="cutmix"), ["augment", "'cutmix'", "none", "digits"]),
])
def test_data_invariants(kwargs, fragments):
    with pytest.raises(ValueError) as e:
        DataConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_configs_are_frozen():
    cfg = RunConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 1
    with pytest.raises(AttributeError):
        cfg.model.dim = 3
    changed = dataclasses.replace(cfg, seed=5)
    assert changed.seed == 5 and cfg.seed == 0


@pytest.mark.parametrize("name, expected", [
    ("S", (384, 12, 6, 16)),
    ("s/16", (384, 12, 6, 16)),
    ("ViT-B/16", (768, 12, 12, 16)),
    ("vit_l", (1024, 24, 16, 16)),
    ("Ti", (192, 12, 3, 16)),
    (" H/14 ", (1280, 32, 16, 14)),
])
def test_size_config_resolves(name, expected):
    c = size_config(name)
    assert (c.dim, c.depth, c.heads, c.patch_size) == expected
    assert c.mlp_ratio == 4.0


def test_size_config_overrides_fields():
    c = size_config("S", img_size=32, num_classes=10, patch_size=4)
    assert (c.dim, c.img_size, c.num_classes, c.patch_size) == (384, 32, 10, 4)


@pytest.mark.parametrize("name", ["XL", "S/32", "ViT-G/14", ""])
def test_unknown_size_lists_valid_ones(name):
    with pytest.raises(ValueError) as e:
        size_config(name)
    msg = str(e.value)
    assert repr(name) in msg
    for key in SIZES:
        assert key in msg
