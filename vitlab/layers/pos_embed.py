"""Resampling a learned position embedding to another patch grid."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: tuple[int, int], *, num_prefix_tokens: int = 1,
                       old_grid: tuple[int, int] | None = None, antialias: bool = False) -> torch.Tensor:
    """Bicubically interpolate the patch part of a position embedding to ``new_grid``.

    Bicubic, as in the ViT paper (§3.2, "2D interpolation of the pre-trained position
    embeddings"): the learned embeddings vary smoothly over the grid, and a cubic fit keeps
    that smoothness where bilinear leaves kinks at the old grid points. ``align_corners=False``
    maps patch centres onto patch centres. The prefix (class) token's embedding has no position
    and is kept as it is. ``antialias=True`` is timm's default (``resample_abs_pos_embed``): PyTorch
    then uses PIL's bicubic kernel (a = -0.5, against -0.75 without it) and low-pass filters a
    shrinking grid, so the two differ whichever way the grid changes.

    Shape:
        (1, prefix + h*w, D) -> (1, prefix + H*W, D)
    """
    if pos_embed.ndim != 3:
        raise ValueError(f"pos_embed must be (1, N, D), got shape {tuple(pos_embed.shape)}")
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = grid.shape[1]
    if old_grid is None:
        side = int(round(n**0.5))
        if side * side != n:
            raise ValueError(f"cannot infer a square grid from {n} patch positions; pass old_grid")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != n:
        raise ValueError(f"old_grid={old_grid} does not hold the {n} patch positions")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    work_dtype = torch.promote_types(grid.dtype, torch.float32)  # half/bf16 up to float32; float64 stays
    grid = F.interpolate(grid.to(work_dtype), size=tuple(new_grid), mode="bicubic", align_corners=False,
                         antialias=antialias)
    grid = grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)
    return torch.cat([prefix, grid], dim=1)  # (1, prefix + H*W, D)

