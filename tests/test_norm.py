"""vitlab/layers/norm.py: LayerNorm vs BatchNorm over tokens, checked against the formulas by hand."""
import pytest
import torch
from torch import nn

from vitlab.config import ModelConfig
from vitlab.layers import Block, TokenBatchNorm, init_weights, make_norm
from vitlab.models import ViT
from vitlab.train.optim import param_groups

EPS = 1e-5


def _tokens():
    torch.manual_seed(0)
    return torch.randn(2, 3, 4, dtype=torch.float64) * 3 + 1  # (B, N, D)


def _affine(norm):
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, -1.0, 2.0, 1.5]))
        norm.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.0]))
    return norm.double()


def test_batch_norm_normalises_each_feature_over_batch_and_tokens():
    x = _tokens()
    norm = _affine(make_norm("batch", 4, eps=EPS)).train()
    rows = x.reshape(6, 4)  # (B·N, D)
    mean = rows.mean(0)  # per column
    var = ((rows - mean) ** 2).mean(0)  # biased
    expected = (rows - mean) / torch.sqrt(var + EPS) * norm.weight + norm.bias
    torch.testing.assert_close(norm(x), expected.reshape(2, 3, 4).detach())


def test_layer_norm_normalises_each_token_over_features():
    x = _tokens()
    norm = _affine(make_norm("layer", 4, eps=EPS))
    assert type(norm) is nn.LayerNorm
    mean = x.mean(-1, keepdim=True)  # per row
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + EPS) * norm.weight + norm.bias
    torch.testing.assert_close(norm(x), expected.detach())


def test_batch_norm_eval_uses_running_statistics():
    x = _tokens()
    norm = _affine(make_norm("batch", 4, eps=EPS)).eval()
    rm = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    rv = torch.tensor([4.0, 0.25, 1.0, 9.0], dtype=torch.float64)
    norm.running_mean.copy_(rm)
    norm.running_var.copy_(rv)
    expected = (x - rm) / torch.sqrt(rv + EPS) * norm.weight + norm.bias
    torch.testing.assert_close(norm(x), expected.detach())
    torch.testing.assert_close(norm(x[:1, :1]), expected[:1, :1].detach())  # one token is fine in eval


def test_batch_norm_running_statistics_move_with_momentum():
    x = _tokens()
    norm = make_norm("batch", 4, eps=EPS).double().train()
    m = norm.momentum
    rm0, rv0 = torch.randn(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + 0.5
    norm.running_mean.copy_(rm0)
    norm.running_var.copy_(rv0)
    norm(x)
    rows = x.reshape(6, 4)
    torch.testing.assert_close(norm.running_mean, (1 - m) * rm0 + m * rows.mean(0))
    torch.testing.assert_close(norm.running_var, (1 - m) * rv0 + m * rows.var(0, unbiased=True))
    assert norm.num_batches_tracked.item() == 1


def test_unknown_norm_lists_the_choices():
    with pytest.raises(ValueError, match="'layer', 'batch'"):
        make_norm("group", 4)
    with pytest.raises(ValueError, match="model.norm='rms'.*'layer', 'batch'"):
        ModelConfig(norm="rms")


def test_block_and_vit_use_the_chosen_norm_with_the_same_keys():
    block = Block(dim=8, heads=2, norm="batch")
    assert isinstance(block.norm1, TokenBatchNorm) and isinstance(block.norm2, TokenBatchNorm)
    cfg = dict(img_size=8, patch_size=4, in_chans=1, num_classes=3, dim=8, depth=1, heads=2)
    layer, batch = ViT(ModelConfig(**cfg)), ViT(ModelConfig(**cfg, norm="batch"))
    assert isinstance(batch.norm, TokenBatchNorm)
    layer_keys = set(layer.state_dict())
    assert {"blocks.0.norm1.weight", "blocks.0.norm2.bias", "norm.weight", "norm.bias"} <= layer_keys
    assert not any("running" in k for k in layer_keys)
    # the batch model adds only BatchNorm buffers, at the same names
    extra = set(batch.state_dict()) - layer_keys
    assert extra and all(k.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked") for k in extra)
    assert layer_keys <= set(batch.state_dict())
    x = torch.randn(2, 1, 8, 8)
    assert batch(x).shape == (2, 3)
    batch.eval()
    assert batch(x[:1]).shape == (1, 3)


def test_batch_norm_init_and_weight_decay_groups():
    norm = TokenBatchNorm(4)
    with torch.no_grad():
        norm.weight.fill_(3.0)
        norm.bias.fill_(2.0)
    init_weights(norm)
    assert torch.equal(norm.weight, torch.ones(4)) and torch.equal(norm.bias, torch.zeros(4))
    model = ViT(ModelConfig(img_size=8, patch_size=4, in_chans=1, num_classes=3, dim=8, depth=1, heads=2,
                            norm="batch", stem="conv+stride"))
    bn = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(bn) == 3 + 2  # norm1, norm2, final norm; two stem steps
    norm_params = {id(p) for m in bn for p in m.parameters()}
    decayed = {id(p) for g in param_groups(model, weight_decay=0.1) if g["weight_decay"] > 0 for p in g["params"]}
    assert len(norm_params) == 10 and not norm_params & decayed
    assert decayed  # the matrices still decay


def test_running_statistics_survive_save_and_load(tmp_path):
    from vitlab.train.artifacts import load_model, save_model

    cfg = ModelConfig(img_size=8, patch_size=4, in_chans=1, num_classes=3, dim=8, depth=1, heads=2,
                      norm="batch", stem="conv+maxpool")
    model = ViT(cfg)
    model(torch.randn(4, 1, 8, 8))  # one train-mode step moves the running statistics
    model.eval()
    save_model(tmp_path / "model.safetensors", model)
    loaded, _ = load_model(tmp_path / "model.safetensors")
    assert loaded.cfg.norm == "batch" and loaded.cfg.stem == "conv+maxpool"
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded.eval()(x), model(x))
