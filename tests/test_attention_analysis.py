"""vitlab/analysis/attention.py: rollout, attention distance and embedding analyses against hand computations."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitlab.analysis import (add_residual, attention_rollout, last_layer_attention, mean_attention_distance,
                             patch_distances, patch_embed_components, pos_embed_similarity)
from vitlab.config import ModelConfig
from vitlab.models import ViT


def random_attention(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).softmax(dim=-1)


# -- the residual identity and rollout -----------------------------------------------------------------
def test_add_residual_by_hand():
    a = torch.tensor([[0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    # 0.5·A + 0.5·I = [[0.5, 0.5], [0.25, 0.75]]; rows already sum to 1
    assert torch.allclose(add_residual(a), torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64))
    # rows that do not sum to one are renormalised after the identity is added
    b = torch.tensor([[2.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # 0.5·B + 0.5·I = [[1.5, 0], [0, 0.5]]
    assert torch.allclose(add_residual(b), torch.eye(2, dtype=torch.float64))


def test_identity_attention():
    n, grid = 5, (2, 2)
    eye = torch.eye(n).expand(1, 3, n, n)  # every token attends only to itself, in 3 heads
    # with a class token, the class token keeps everything: nothing flows in from the patches
    assert torch.equal(attention_rollout([eye, eye], grid, 1), torch.zeros(1, 2, 2))
    # without one (4 patch tokens), the rollout is I and the mean of its rows is uniform, 1/4
    eye4 = torch.eye(4).expand(1, 2, 4, 4)
    assert torch.allclose(attention_rollout([eye4, eye4], grid, 0), torch.full((1, 2, 2), 0.25))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_uniform_attention_closed_form(layers):
    # A = J/N gives Â = ½U + ½I with U = J/N idempotent, so Â^L = 2^-L I + (1 - 2^-L) U:
    # the class token's weight on each patch is (1 - 2^-L)/N.
    n = 10  # class token + 3x3 patches
    uniform = torch.full((2, 4, n, n), 1 / n)
    out = attention_rollout([uniform] * layers, (3, 3), 1)
    assert torch.allclose(out, torch.full((2, 3, 3), (1 - 0.5**layers) / n))


def test_two_layers_against_numpy():
    b, h, n, grid = 2, 3, 7, (2, 3)  # class token + 2x3 patches
    w1, w2 = random_attention(b, h, n, n, seed=1), random_attention(b, h, n, n, seed=2)
    got = attention_rollout([w1, w2], grid, 1)
    for i in range(b):
        a1, a2 = w1[i].numpy().mean(0), w2[i].numpy().mean(0)
        r1 = 0.5 * a1 + 0.5 * np.eye(n)
        r1 /= r1.sum(1, keepdims=True)
        r2 = 0.5 * a2 + 0.5 * np.eye(n)
        r2 /= r2.sum(1, keepdims=True)
        rollout = r2 @ r1  # the last layer on the left
        np.testing.assert_allclose(got[i].numpy(), rollout[0, 1:].reshape(2, 3), rtol=1e-6)
        # the layer order matters: r1 @ r2 is a different matrix
        assert not np.allclose(rollout, r1 @ r2)
    # without a class token: the mean over all rows of the same product
    got0 = attention_rollout([w1[..., 1:, 1:], w2[..., 1:, 1:]], grid, 0)
    a1, a2 = w1[0, :, 1:, 1:].numpy().mean(0), w2[0, :, 1:, 1:].numpy().mean(0)
    r1, r2 = 0.5 * a1 + 0.5 * np.eye(6), 0.5 * a2 + 0.5 * np.eye(6)
    r1, r2 = r1 / r1.sum(1, keepdims=True), r2 / r2.sum(1, keepdims=True)
    np.testing.assert_allclose(got0[0].numpy(), (r2 @ r1).mean(0).reshape(2, 3), rtol=1e-6)


def test_last_layer_attention():
    w = [random_attention(2, 3, 5, 5, seed=3), random_attention(2, 3, 5, 5, seed=4)]
    got = last_layer_attention(w, (2, 2), 1)
    assert got.shape == (2, 3, 2, 2)
    assert torch.allclose(got, w[1][:, :, 0, 1:].reshape(2, 3, 2, 2).float())
    got0 = last_layer_attention([x[..., 1:, 1:] for x in w], (2, 2), 0)  # no class token: mean query row
    assert torch.allclose(got0, w[1][:, :, 1:, 1:].mean(2).reshape(2, 3, 2, 2).float())


def test_rollout_rejects_mismatched_grid():
    with pytest.raises(ValueError, match="prefix token"):
        attention_rollout([torch.eye(5).expand(1, 1, 5, 5)], (3, 3), 1)
    with pytest.raises(ValueError, match="no attention weights"):
        attention_rollout([], (2, 2))


# -- mean attention distance ---------------------------------------------------------------------------
def test_patch_distances_by_hand():
    d = patch_distances((2, 2), patch_size=4)  # patches (0,0) (0,1) (1,0) (1,1)
    r2 = 4 * math.sqrt(2)
    expected = torch.tensor([[0, 4, 4, r2], [4, 0, r2, 4], [4, r2, 0, 4], [r2, 4, 4, 0]], dtype=torch.float64)
    assert torch.allclose(d, expected)


def test_attention_to_self_is_distance_zero():
    w = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.equal(mean_attention_distance([w, w], (2, 2), 4, 1), torch.zeros(2, 3))


def test_uniform_attention_distance_on_2x2():
    # each query sees distances 0, 1, 1, √2 (in patches): mean (2 + √2)/4, times the patch size 3.
    # The class token gets half of every row here; it is dropped and the patch weights renormalised.
    n = 5
    w = torch.full((1, 2, n, n), 0.125)
    w[..., 0] = 0.5
    got = mean_attention_distance([w], (2, 2), 3, 1)
    assert torch.allclose(got, torch.full((1, 2), 3 * (2 + math.sqrt(2)) / 4))


def test_attention_distance_against_loops():
    b, h, grid, p = 2, 2, (2, 3), 2
    w = random_attention(b, h, 7, 7, seed=5)
    got = mean_attention_distance([w], grid, p, 1)
    coords = [(r, c) for r in range(grid[0]) for c in range(grid[1])]
    for head in range(h):
        total = 0.0
        for i in range(b):
            for q, (qr, qc) in enumerate(coords):
                row = w[i, head, 1 + q, 1:].numpy()
                row = row / row.sum()
                total += sum(row[k] * p * math.hypot(qr - kr, qc - kc) for k, (kr, kc) in enumerate(coords))
        assert got[0, head].item() == pytest.approx(total / (b * len(coords)), rel=1e-6)


# -- embeddings ------------------------------------------------------------------------------------------
def test_pos_embed_similarity_against_torch():
    pe = torch.randn(1, 1 + 9, 8, generator=torch.Generator().manual_seed(6))
    got = pos_embed_similarity(pe, num_prefix_tokens=1)
    assert got.shape == (9, 9)
    ref = F.cosine_similarity(pe[0, 1:, None, :], pe[0, None, 1:, :], dim=-1)
    assert torch.allclose(got, ref, atol=1e-6)
    assert torch.allclose(got.diagonal(), torch.ones(9), atol=1e-6)


def test_patch_embed_components_against_numpy():
    w = torch.randn(40, 3, 2, 2, generator=torch.Generator().manual_seed(7))  # 12-dimensional filters
    comps, explained = patch_embed_components(w, k=28)
    assert comps.shape == (12, 3, 2, 2) and explained.shape == (12,)  # capped at C·P·P = 12
    x = w.reshape(40, 12).double().numpy()
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    flat = comps.reshape(12, 12).double().numpy()
    np.testing.assert_allclose(np.abs(flat), np.abs(vt), atol=1e-5)  # up to each vector's sign
    np.testing.assert_allclose(np.abs((flat * vt).sum(1)), 1, atol=1e-5)
    np.testing.assert_allclose(flat @ flat.T, np.eye(12), atol=1e-5)  # orthonormal
    np.testing.assert_allclose(explained.numpy(), s**2 / (s**2).sum(), rtol=1e-5)
    few, _ = patch_embed_components(w, k=5)
    assert few.shape == (5, 3, 2, 2)


def test_on_a_model():
    cfg = ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=3, dim=16, depth=2, heads=2)
    model = ViT(cfg).eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        _, weights = model.forward_features(x, return_weights=True)
    r = attention_rollout(weights, (4, 4), model.num_prefix_tokens)
    assert r.shape == (3, 4, 4) and (r >= 0).all() and (r.sum(dim=(1, 2)) <= 1 + 1e-5).all()
    d = mean_attention_distance(weights, (4, 4), 2, model.num_prefix_tokens)
    assert d.shape == (2, 2) and (d >= 0).all() and (d <= 2 * math.hypot(3, 3)).all()
    assert pos_embed_similarity(model.pos_embed, 1).shape == (16, 16)
    comps, _ = patch_embed_components(model.to_patch_embedding.proj.weight)
    assert comps.shape == (4, 1, 2, 2)  # C·P·P = 4 < 28
