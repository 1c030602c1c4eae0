"""Figures for ``vitlab.analysis.attention`` as PNG files (matplotlib Agg, no display needed).

ViT paper (Dosovitskiy et al. 2021) Figure 6 (attention maps) and Figure 7 (filters, position
embeddings, attention distance).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .attention import upsample_map  # noqa: E402


def _image_for_display(image: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """uint8 (C, H, W) -> an array imshow takes, and the colour map (grey for one channel)."""
    arr = image.detach().cpu().numpy()
    if arr.shape[0] == 3:
        return arr.transpose(1, 2, 0), None
    return arr[0], "gray"


def _norm01(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def plot_attention(image: torch.Tensor, rollout: torch.Tensor, heads: torch.Tensor, path: str | Path,
                   title: str = "") -> None:
    """The image, its attention rollout upsampled and overlaid, and the last layer's attention per head.

    Args:
        image: uint8 (C, H, W), as the model saw it (before normalisation).
        rollout: (rows, cols) from ``attention_rollout``.
        heads: (heads, rows, cols) from ``last_layer_attention``.
        path: the PNG to write.
    """
    img, cmap = _image_for_display(image)
    h, w = image.shape[-2:]
    up = _norm01(upsample_map(rollout, (h, w)).numpy())
    n_heads = heads.shape[0]
    ncols = max(3, n_heads)
    fig, axes = plt.subplots(2, ncols, figsize=(1.6 * ncols, 4.0), squeeze=False)
    axes[0, 0].imshow(img, cmap=cmap)
    axes[0, 0].set_title("image", fontsize=8)
    axes[0, 1].imshow(img, cmap=cmap)
    axes[0, 1].imshow(up, cmap="jet", alpha=0.5)
    axes[0, 1].set_title("rollout overlay", fontsize=8)
    axes[0, 2].imshow(rollout.numpy(), cmap="viridis")
    axes[0, 2].set_title("rollout", fontsize=8)
    for i in range(n_heads):
        axes[1, i].imshow(heads[i].numpy(), cmap="viridis")
        axes[1, i].set_title(f"last layer, head {i}", fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_attention_distance(distance: torch.Tensor, path: str | Path, title: str = "") -> None:
    """Mean attention distance in pixels: x = layer (1-based), y = distance, one point per head."""
    d = distance.numpy()  # (L, H)
    layers, heads = d.shape
    fig, ax = plt.subplots(figsize=(5, 4))
    for h in range(heads):
        ax.scatter(np.arange(1, layers + 1), d[:, h], s=18, label=f"head {h}" if heads <= 12 else None)
    ax.set(xlabel="network depth (layer)", ylabel="mean attention distance (pixels)",
           title=title or "mean attention distance", xticks=range(1, layers + 1))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if heads <= 12:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pos_embed_similarity(similarity: torch.Tensor, grid: tuple[int, int], path: str | Path) -> None:
    """For each patch (laid out on the grid), its position embedding's cosine similarity to every other.

    The small maps are tiled into one mosaic (one ``imshow``), which stays fast at 14x14 patches.
    """
    rows, cols = grid
    sim = similarity.numpy().reshape(rows, cols, rows, cols)  # (query row, query col, key row, key col)
    mosaic = np.full((rows * (rows + 1) - 1, cols * (cols + 1) - 1), np.nan)
    for r in range(rows):
        for c in range(cols):
            mosaic[r * (rows + 1):r * (rows + 1) + rows, c * (cols + 1):c * (cols + 1) + cols] = sim[r, c]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1)
    ax.set(xticks=[(cols + 1) * c + (cols - 1) / 2 for c in range(cols)], xticklabels=range(1, cols + 1),
           yticks=[(rows + 1) * r + (rows - 1) / 2 for r in range(rows)], yticklabels=range(1, rows + 1),
           xlabel="input patch column", ylabel="input patch row", title="position embedding similarity")
    ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=ax, label="cosine similarity", shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_patch_embed_components(components: torch.Tensor, explained: torch.Tensor, path: str | Path) -> None:
    """Principal components of the patch-embedding filters as P×P images (RGB, or the first channel)."""
    k = components.shape[0]
    ncols = min(7, k)
    nrows = -(-k // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.3 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.axis("off")
            continue
        comp = components[i].numpy()  # (C, P, P)
        if comp.shape[0] == 3:
            ax.imshow(_norm01(comp.transpose(1, 2, 0)))  # RGB, rescaled to [0, 1] per component
        else:
            ax.imshow(comp[0], cmap="gray")
        ax.set_title(f"{i + 1}: {100 * float(explained[i]):.1f}%", fontsize=6)
    fig.suptitle("patch-embedding filters: principal components (variance explained)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_mask(image: torch.Tensor, mask: torch.Tensor, classes: list[str], path: str | Path) -> None:
    """The image, and its predicted mask over it, with a legend of the classes the mask holds.

    Args:
        image: uint8 (C, H, W), as the model saw it.
        mask: int (H, W) class indices.
        classes: the class names, index 0 first (background for the digit canvases).
    """
    img, cmap = _image_for_display(image)
    present = sorted(int(c) for c in torch.unique(mask))
    palette = plt.get_cmap("tab20", max(len(classes), 2))
    fig, (ax_img, ax_mask) = plt.subplots(1, 2, figsize=(6.4, 3.4))
    ax_img.imshow(img, cmap=cmap)
    ax_img.set_title("image", fontsize=8)
    ax_mask.imshow(img, cmap=cmap)
    colours = palette(mask.numpy())
    colours[..., 3] = np.where(mask.numpy() == 0, 0.0, 0.6)  # class 0 (background) left clear
    ax_mask.imshow(colours)
    ax_mask.set_title("predicted mask", fontsize=8)
    shown = [c for c in present if c != 0]
    if shown:
        handles = [plt.Rectangle((0, 0), 1, 1, color=palette(c)) for c in shown]
        ax_mask.legend(handles, [classes[c] for c in shown], fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in (ax_img, ax_mask):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
