"""What a trained ViT attends to and what its embeddings learnt (Dosovitskiy et al. 2021, Figures 6–7).

The functions here are pure tensor code over the per-block attention weights that
``ViT.forward_features(x, return_weights=True)`` returns, plus the position and patch embeddings;
``vitlab.analysis.plots`` draws them.

* ``attention_rollout``: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", with
  the residual connection modelled as an identity added to each layer's head-averaged attention.
* ``mean_attention_distance``: ViT paper Figure 7 (right), "attention distance" per head and layer.
* ``pos_embed_similarity``: Figure 7 (centre), cosine similarity between position embeddings.
* ``patch_embed_components``: Figure 7 (left), principal components of the patch-embedding filters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def add_residual(attn: torch.Tensor) -> torch.Tensor:
    """0.5·A + 0.5·I with rows renormalised to sum to one: the residual path as attention to self.

    Shape:
        (..., N, N) -> (..., N, N)
    """
    if attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attention must be square in its last two dims, got shape {tuple(attn.shape)}")
    eye = torch.eye(attn.shape[-1], dtype=attn.dtype, device=attn.device)
    a = 0.5 * attn + 0.5 * eye
    return a / a.sum(dim=-1, keepdim=True)


def _check_weights(weights: list[torch.Tensor]) -> None:
    if not weights:
        raise ValueError("no attention weights: the model has no blocks, or forward_features was called "
                         "without return_weights=True")
    for i, w in enumerate(weights):
        if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
            raise ValueError(f"attention weights of block {i} must be (B, H, N, N), got shape {tuple(w.shape)}")


def _summary_row(m: torch.Tensor, num_prefix_tokens: int, grid: tuple[int, int]) -> torch.Tensor:
    """The class token's row over the patch tokens, or the mean row without a class token; (..., gh, gw)."""
    n_patches = grid[0] * grid[1]
    if m.shape[-1] != num_prefix_tokens + n_patches:
        raise ValueError(f"{m.shape[-1]} tokens do not match {num_prefix_tokens} prefix token(s) plus a "
                         f"{grid[0]}x{grid[1]} patch grid")
    row = m[..., 0, :] if num_prefix_tokens else m.mean(dim=-2)  # (..., N)
    return row[..., num_prefix_tokens:].reshape(*row.shape[:-1], *grid)  # (..., gh, gw)


def attention_rollout(weights: list[torch.Tensor], grid: tuple[int, int],
                      num_prefix_tokens: int = 1) -> torch.Tensor:
    """Attention rollout: how much each patch flows into the class token through all layers.

    Per layer l, A_l is the attention averaged over heads and Â_l = add_residual(A_l); the rollout is
    R = Â_L ··· Â_2 Â_1. The map is the class token's row of R over the patch tokens, not renormalised
    (its sum is what flows from patches rather than from the class token itself). A model without a
    class token (``num_prefix_tokens=0``) has no single summary query; its map is the mean of R's rows,
    which matches the average pooling that such models classify from.

    Args:
        weights: per block, the attention weights (B, H, N, N), first block first.
        grid: the patch grid (rows, cols) of the input.
        num_prefix_tokens: 1 with a class token (token 0), 0 without.

    Shape:
        list of (B, H, N, N) -> (B, rows, cols)
    """
    _check_weights(weights)
    rollout = None
    for w in weights:
        a = add_residual(w.float().mean(dim=1))  # (B, N, N): heads averaged, residual added
        rollout = a if rollout is None else a @ rollout  # R = Â_l R
    return _summary_row(rollout, num_prefix_tokens, grid)


def last_layer_attention(weights: list[torch.Tensor], grid: tuple[int, int],
                         num_prefix_tokens: int = 1) -> torch.Tensor:
    """The last block's attention from the class token to each patch, per head.

    Without a class token, the mean over all query rows (as in ``attention_rollout``).

    Shape:
        list of (B, H, N, N) -> (B, H, rows, cols)
    """
    _check_weights(weights)
    return _summary_row(weights[-1].float(), num_prefix_tokens, grid)


def patch_distances(grid: tuple[int, int], patch_size: int = 1) -> torch.Tensor:
    """Euclidean distance between patch centres in pixels, patches in row-major order.

    Shape:
        -> (rows·cols, rows·cols)
    """
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], dim=-1).double()  # (N_p, 2)
    return torch.cdist(pos, pos) * patch_size


def mean_attention_distance(weights: list[torch.Tensor], grid: tuple[int, int], patch_size: int,
                            num_prefix_tokens: int = 1) -> torch.Tensor:
    """Attention-weighted mean distance in pixels between a query patch and the patches it attends to.

    ViT paper Figure 7 (right), the analogue of a CNN's receptive field size. Prefix tokens (the
    class token) are left out of both queries and keys; each query's weights over the patch keys are
    renormalised to sum to one, so the distance is over the attention that goes to patches at all.
    The result is averaged over query patches and over the batch.

    Args:
        weights: per block, (B, H, N, N).
        grid: the patch grid (rows, cols).
        patch_size: pixels per patch side; distances are patch distances times this.
        num_prefix_tokens: tokens before the patches (1 with a class token).

    Shape:
        list of (B, H, N, N) -> (L, H)
    """
    _check_weights(weights)
    n_patches = grid[0] * grid[1]
    dist = patch_distances(grid, patch_size)  # (N_p, N_p)
    out = []
    for w in weights:
        if w.shape[-1] != num_prefix_tokens + n_patches:
            raise ValueError(f"{w.shape[-1]} tokens do not match {num_prefix_tokens} prefix token(s) plus "
                             f"a {grid[0]}x{grid[1]} patch grid")
        p = w[:, :, num_prefix_tokens:, num_prefix_tokens:].double()  # (B, H, N_p, N_p)
        p = p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)  # renormalised over patch keys
        per_query = (p * dist).sum(dim=-1)  # (B, H, N_p)
        out.append(per_query.mean(dim=(0, 2)))  # (H,)
    return torch.stack(out).float()  # (L, H)


def pos_embed_similarity(pos_embed: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Cosine similarity between every pair of patch position embeddings (prefix tokens dropped).

    Shape:
        (1, N, D) or (N, D) -> (N_p, N_p)
    """
    pe = pos_embed.detach().float()
    if pe.ndim == 3:
        pe = pe[0]
    if pe.ndim != 2:
        raise ValueError(f"pos_embed must be (1, N, D) or (N, D), got shape {tuple(pos_embed.shape)}")
    pe = F.normalize(pe[num_prefix_tokens:], dim=-1)  # (N_p, D), unit rows
    return pe @ pe.T


def patch_embed_components(weight: torch.Tensor, k: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of the patch-embedding filters.

    The D filters (D, C, P, P) are D points in C·P·P dimensions: centre them (subtract the mean
    filter), take the SVD, and return the top ``k`` right singular vectors as filters, with the
    fraction of variance each explains. Fewer than ``k`` when C·P·P or D is smaller. A singular
    vector's sign is arbitrary.

    Shape:
        (D, C, P, P) -> components (k, C, P, P), explained variance ratio (k,)
    """
    if weight.ndim != 4:
        raise ValueError(f"patch-embedding weight must be (D, C, P, P), got shape {tuple(weight.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    d, c, ph, pw = weight.shape
    w = weight.detach().double().reshape(d, c * ph * pw)  # (D, C·P·P)
    w = w - w.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(w, full_matrices=False)  # vh: (min(D, CPP), CPP)
    k = min(k, vh.shape[0])
    var = s**2
    ratio = var / var.sum().clamp_min(1e-30)
    return vh[:k].reshape(k, c, ph, pw).float(), ratio[:k].float()


@torch.no_grad()
def collect_attention(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
    """Run ``model.forward_features`` on a normalised batch; return the per-block weights and the grid.

    Shape:
        (B, C, H, W) -> list of L tensors (B, heads, N, N), (H/P, W/P)
    """
    p = model.cfg.patch_size
    grid = (x.shape[-2] // p, x.shape[-1] // p)
    _, weights = model.forward_features(x, return_weights=True)
    return [w.detach().cpu() for w in weights], grid


def upsample_map(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (rows, cols) map resized bilinearly to ``size`` (H, W), for overlaying on the image."""
    return F.interpolate(m[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]

