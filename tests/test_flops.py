"""forward_flops (vitlab/flops.py) against the FLOPs of a ViT worked out by hand.

FLOPs = 2 × multiply-accumulates of the patch convolution, every matmul in the blocks
(QKV, QKᵀ, weights·V, output projection, the two MLP layers) and the head.
"""
from __future__ import annotations

import pytest

from vitlab import ModelConfig, size_config
from vitlab.flops import forward_flops


def _hand_macs(*, img, patch, chans, dim, depth, mlp_ratio, classes, class_token=True) -> int:
    patches = (img // patch) ** 2
    n = patches + (1 if class_token else 0)  # tokens in the blocks
    hidden = int(dim * mlp_ratio)
    conv = patches * dim * chans * patch * patch
    block = (n * dim * 3 * dim  # QKV projection
             + n * n * dim  # scores QKᵀ, all heads together
             + n * n * dim  # attention-weighted sum of V
             + n * dim * dim  # output projection
             + 2 * n * dim * hidden)  # fc1 and fc2
    head = dim * classes
    return conv + depth * block + head


@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
@pytest.mark.parametrize("class_token,pool", [(True, "token"), (False, "avg")])
def test_tiny_config_matches_hand_formula(attn_impl, class_token, pool):
    cfg = ModelConfig(img_size=32, patch_size=8, in_chans=3, num_classes=10, dim=48, depth=2, heads=3,
                      mlp_ratio=3.0, class_token=class_token, pool=pool, attn_impl=attn_impl)
    expected = 2 * _hand_macs(img=32, patch=8, chans=3, dim=48, depth=2, mlp_ratio=3.0, classes=10,
                              class_token=class_token)
    assert forward_flops(cfg) == expected


def test_tiny_config_worked_number():
    """The formula above, evaluated by hand for one case so the formula itself is pinned:
    N_p = 16, N = 17, D = 32, depth 1, hidden 64, 1 channel, P = 8, 4 classes.
    conv 16·32·64 = 32,768; block 17·32·96 + 2·17·17·32 + 17·32·32 + 2·17·32·64
    = 52,224 + 18,496 + 17,408 + 69,632 = 157,760; head 128. MACs 190,656."""
    cfg = ModelConfig(img_size=32, patch_size=8, in_chans=1, num_classes=4, dim=32, depth=1, heads=2, mlp_ratio=2.0)
    assert forward_flops(cfg) == 2 * 190_656


def test_no_head_counts_no_head():
    cfg = ModelConfig(img_size=32, patch_size=8, num_classes=0, dim=32, depth=1, heads=2)
    expected = 2 * _hand_macs(img=32, patch=8, chans=3, dim=32, depth=1, mlp_ratio=4.0, classes=0)
    assert forward_flops(cfg) == expected


def test_vit_b16_matches_published_gmacs():
    """timm lists vit_base_patch16_224 at 17.6 GMACs; the exact count is 17.56 G."""
    cfg = size_config("B/16", img_size=224, num_classes=1000)
    macs = forward_flops(cfg) / 2
    assert macs == _hand_macs(img=224, patch=16, chans=3, dim=768, depth=12, mlp_ratio=4.0, classes=1000)
    assert macs / 1e9 == pytest.approx(17.56, rel=0.005)
    assert macs / 1e9 == pytest.approx(17.6, rel=0.005)
