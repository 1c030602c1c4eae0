"""Training curves and confusion matrices as PNG files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fileio import atomic_write  # noqa: E402


def plot_curves(rows: list[dict], metric: str, path: str | Path) -> None:
    """Per epoch: the loss (train, and validation where the task has one) and the task's headline metric
    (validation, and train where it is measured on the training batches too), e.g. ``metric='miou'``."""
    if not rows:
        return
    fig = curves_figure(rows, metric)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def curves_figure(rows: list[dict], metric: str):
    """The figure of :func:`plot_curves`: axes 0 the losses, axes 1 ``train_<metric>`` / ``val_<metric>``."""
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        if f"{split}_loss" in rows[0]:
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], label=split)
        if f"{split}_{metric}" in rows[0]:
            ax_metric.plot(epochs, [r[f"{split}_{metric}"] for r in rows], label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"{metric} (final val {rows[-1][f'val_{metric}']:.4f})")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion(matrix: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> None:
    """Rows are true classes, columns predictions; counts written in each cell."""
    n = len(classes)
    longest = max((len(c) for c in classes), default=1)
    side = 1.5 + 0.55 * n + 0.07 * longest  # room for the rotated names
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(classes, rotation=45 if longest > 2 else 0, ha="right" if longest > 2 else "center",
                       fontsize=7)
    ax.set_yticklabels(classes, fontsize=7)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
