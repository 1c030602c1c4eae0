"""vitlab/train/optim.py: which parameters are decayed, and what decoupled decay does to them."""
import copy

import pytest
import torch
from torch import nn

from vitlab.config import ModelConfig, OptimConfig
from vitlab.models import ViT
from vitlab.train.optim import build_optimizer, param_groups


def tiny_vit(**kw):
    torch.manual_seed(0)
    cfg = dict(img_size=8, patch_size=4, in_chans=1, num_classes=10, dim=16, depth=2, heads=2, mlp_ratio=2.0)
    return ViT(ModelConfig(**{**cfg, **kw}))


def expected_split(model):
    """Names of decayed / not-decayed parameters, classified by the module that owns them."""
    decay, no_decay = set(), set()
    for mod_name, mod in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            decay.add(prefix + "weight")
            if mod.bias is not None:
                no_decay.add(prefix + "bias")
        elif isinstance(mod, nn.LayerNorm):
            no_decay |= {prefix + "weight", prefix + "bias"}
    for name in ("cls_token", "pos_embed"):
        if getattr(model, name, None) is not None:
            no_decay.add(name)
    return decay, no_decay


@pytest.mark.parametrize("kw", [{}, dict(class_token=False, pool="avg"), dict(qkv_bias=False)])
def test_param_groups_split(kw):
    model = tiny_vit(**kw)
    groups = param_groups(model, weight_decay=0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    got_decay = [names[id(p)] for p in groups[0]["params"]]
    got_no_decay = [names[id(p)] for p in groups[1]["params"]]
    decay, no_decay = expected_split(model)
    # Every parameter is owned by a Linear/Conv/LayerNorm or is a token/embedding we listed.
    assert decay | no_decay == set(names.values())
    assert set(got_decay) == decay and set(got_no_decay) == no_decay
    # ...and each appears exactly once across the two groups.
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert len(all_ids) == len(set(all_ids)) == len(list(model.parameters()))
    assert "to_patch_embedding.proj.weight" in got_decay and "head.weight" in got_decay
    assert "blocks.0.attn.to_qkv.weight" in got_decay and "blocks.1.mlp.fc2.weight" in got_decay
    assert "norm.weight" in got_no_decay and "blocks.0.norm1.bias" in got_no_decay
    assert "pos_embed" in got_no_decay and ("cls_token" in got_no_decay) == model.cfg.class_token


def test_frozen_parameters_are_left_out():
    model = tiny_vit()
    model.pos_embed.requires_grad_(False)
    model.head.weight.requires_grad_(False)
    ids = {id(p) for g in param_groups(model, 0.1) for p in g["params"]}
    assert id(model.pos_embed) not in ids and id(model.head.weight) not in ids
    assert len(ids) == len(list(model.parameters())) - 2


def test_one_adamw_step_matches_adam_plus_decoupled_decay():
    """AdamW (Loshchilov & Hutter 2019): p <- p - lr*adam_update - lr*wd*p for decayed params, and
    exactly the Adam update for the rest. Reference: torch.optim.Adam with weight_decay=0."""
    lr, wd = 1e-2, 0.1
    model = tiny_vit()
    reference = copy.deepcopy(model)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 7, 9])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        q.grad = p.grad.clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    opt = build_optimizer(model, OptimConfig(lr=lr, min_lr=0.0, weight_decay=wd, betas=(0.9, 0.999)))
    assert isinstance(opt, torch.optim.AdamW)
    opt.step()
    torch.optim.Adam(reference.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0).step()

    decay, no_decay = expected_split(model)
    ref = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        if name in no_decay:
            torch.testing.assert_close(p.detach(), ref[name].detach(), rtol=0, atol=1e-7, msg=name)
        else:
            expected = ref[name].detach() - lr * wd * before[name]
            torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7, msg=name)
            # the decay is big enough to tell apart from plain Adam
            assert not torch.allclose(p.detach(), ref[name].detach(), rtol=0, atol=1e-7), name


def test_the_engines_adamw_is_fused_and_takes_torchs_reference_steps():
    """build_optimizer fuses AdamW on CPU; five steps of it equal five of torch's for-loop AdamW (the reference
    implementation), same groups and hyper-parameters, up to float rounding. No q/k/v bias: the key bias gets
    only rounding noise as gradient (softmax ignores a shift of all scores), which Adam scales up to full steps."""
    fused_model, loop_model = tiny_vit(qkv_bias=False), tiny_vit(qkv_bias=False)
    cfg = OptimConfig(lr=1e-2, weight_decay=0.05)
    fused = build_optimizer(fused_model, cfg)
    assert all(g["fused"] for g in fused.param_groups)
    reference = torch.optim.AdamW(param_groups(loop_model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas,
                                  foreach=False, fused=False)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    for _ in range(5):
        for model, opt in ((fused_model, fused), (loop_model, reference)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for (name, a), b in zip(fused_model.named_parameters(), loop_model.parameters()):
        assert not torch.equal(a, tiny_vit(qkv_bias=False).state_dict()[name]), name  # it moved
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
