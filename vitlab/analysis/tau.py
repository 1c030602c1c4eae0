"""What the InfoNCE temperature τ does to a representation: hardness of negatives, alignment, uniformity.

Alignment and uniformity (Wang & Isola 2020) are losses-level metrics (:mod:`vitlab.losses`); this module
reads a τ sweep's run folders and draws them. Wang & Liu 2021 show that lower τ puts more of each anchor's
gradient on its hardest negatives;
:func:`weight_profile` summarises :func:`vitlab.losses.negative_weights` to show it.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..losses import alignment, negative_weights, uniformity


def weight_profile(z1: torch.Tensor, z2: torch.Tensor, temperature: float, top: int = 10) -> dict:
    """How each anchor's softmax weight over its negatives is spread, averaged over the 2N anchors.

    Returns ``sorted``: the weights sorted in decreasing order, averaged over anchors (a list of 2N − 2
    floats, summing to 1); ``top1pct``: mean share of the top ⌈1%⌉ of negatives; ``top{top}``: mean share of
    the ``top`` hardest negatives.

    Shape:
        z1, z2: (N, D), N >= 2.
    """
    w = negative_weights(z1, z2, temperature)  # (2N, 2N), zero at self and positive
    n_neg = w.shape[1] - 2
    ranked = w.sort(dim=1, descending=True).values[:, :n_neg]  # (2N, 2N − 2), the negatives only
    avg = ranked.mean(0)
    k1 = max(1, math.ceil(0.01 * n_neg))
    return {"sorted": avg.tolist(), "top1pct": float(avg[:k1].sum()), f"top{top}": float(avg[:min(top, n_neg)].sum()),
            "negatives": n_neg}


# -- vitlab tau-report: the three figures over a τ sweep's run folders ---------------------------------
def view_embeddings(run_dir, images: int):
    """The embeddings the loss saw for ``images`` validation images of a pretraining run: two seeded views ->
    encoder -> projection head (the same views for a seed, whatever the run's τ). Returns (cfg, z1, z2), each
    z (images, proj_dim)."""
    from pathlib import Path

    from ..data import Normalize, load_data
    from ..data.views import make_views
    from ..train.artifacts import PROJECTION_FILE, load_model, load_projection
    from ..train.run_dir import load_run_config
    from ..train.tasks.pretrain import encoder_features

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.task != "pretrain":
        raise ConfigError(f"{run_dir} is a task={cfg.task!r} run; tau-report takes pretraining runs")
    model, meta = load_model(run_dir)
    head = load_projection(run_dir / PROJECTION_FILE) if (run_dir / PROJECTION_FILE).is_file() else None
    x = load_data(cfg.data).val.images[:images].float().div(255)
    normalize = Normalize(meta["mean"], meta["std"])
    views = make_views(cfg.pretrain, x.shape[1], x.shape[2])
    state = torch.get_rng_state()
    torch.manual_seed(cfg.seed + 12345)
    with torch.no_grad():
        z = [encoder_features(model, normalize(v)) for v in views(x)]
        if head is not None:
            z = [head(h) for h in z]
    torch.set_rng_state(state)
    return cfg, z[0], z[1]


def _run_summary(run_dir, images: int) -> dict:
    """τ, the negative-weight profile on ``images`` validation images (:func:`view_embeddings`), final validation
    alignment/uniformity/kNN from metrics.json, linear-probe accuracy."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    cfg, *z = view_embeddings(run_dir, images)
    profile = weight_profile(z[0], z[1], cfg.pretrain.tau)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    probe = json.loads((run_dir / "probe.json").read_text()) if (run_dir / "probe.json").is_file() else {}
    return {"run": str(run_dir), "tau": cfg.pretrain.tau, "sorted": profile["sorted"], "top1pct": profile["top1pct"],
            "top10": profile["top10"], "alignment": metrics.get("val_alignment"),
            "uniformity": metrics.get("val_uniformity"), "knn_acc": metrics.get("val_knn_acc"),
            "probe_acc": probe.get("linear", {}).get("val_acc"),
            "probe_test_acc": probe.get("linear", {}).get("test_acc"),
            "random_probe_acc": probe.get("random_linear", {}).get("val_acc"),
            "pixels_probe_acc": probe.get("pixels", {}).get("val_acc")}


def tau_report(runs, out, images: int = 256) -> list[dict]:
    """Write hardness.png, align_uniform.png, probe_vs_tau.png and tau_report.json for a τ sweep; returns the
    per-run rows sorted by τ."""
    from pathlib import Path

    from ..configio import save_json
    from ..train.plots import plt

    if images < 2:
        raise ConfigError(f"--images must be >= 2 (a negative needs two samples), got {images}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted((_run_summary(r, images) for r in runs), key=lambda r: r["tau"])

    # (a) sorted negative weights, averaged over anchors, one curve per τ (log-log)
    fig, (ax, ax_share) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        ax.plot(range(1, len(r["sorted"]) + 1), r["sorted"], label=f"τ={r['tau']:g}")
    ax.set(xscale="log", yscale="log", xlabel="rank of negative (1 = hardest)", ylabel="mean softmax weight",
           title="weight over negatives (InfoNCE hardness)")
    ax.legend()
    taus = [r["tau"] for r in rows]
    ax_share.plot(taus, [r["top1pct"] for r in rows], "o-", label="top 1% of negatives")
    ax_share.plot(taus, [r["top10"] for r in rows], "s-", label="top 10 negatives")
    ax_share.set(xscale="log", xlabel="τ", ylabel="share of weight", title="how much the hardest dominate")
    ax_share.legend()
    for a in (ax, ax_share):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "hardness.png", dpi=100)
    plt.close(fig)

    # (b) alignment and uniformity per τ (Wang & Isola 2020), and the (uniformity, alignment) plane
    have = [r for r in rows if r["alignment"] is not None]
    fig, (ax_a, ax_plane) = plt.subplots(1, 2, figsize=(11, 4))
    ax_a.plot([r["tau"] for r in have], [r["alignment"] for r in have], "o-", label="alignment (α=2)")
    ax_a.plot([r["tau"] for r in have], [r["uniformity"] for r in have], "s-", label="uniformity (t=2)")
    ax_a.set(xscale="log", xlabel="τ", title="alignment and uniformity (lower is better)")
    ax_a.legend()
    ax_plane.scatter([r["uniformity"] for r in have], [r["alignment"] for r in have])
    for r in have:
        ax_plane.annotate(f"τ={r['tau']:g}", (r["uniformity"], r["alignment"]))
    ax_plane.set(xlabel="uniformity", ylabel="alignment", title="Wang & Isola 2020, Fig. 2 style")
    for a in (ax_a, ax_plane):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "align_uniform.png", dpi=100)
    plt.close(fig)

    # (c) linear-probe (and kNN) accuracy against τ
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, marker in (("probe_acc", "linear probe", "o-"), ("knn_acc", "kNN (k from config)", "s--"),
                               ("random_probe_acc", "random encoder, linear probe", "x:"),
                               ("pixels_probe_acc", "raw pixels, linear probe", "d-.")):
        pts = [(r["tau"], r[key]) for r in rows if r[key] is not None]
        if pts:
            ax.plot(*zip(*pts), marker, label=label)
    ax.set(xscale="log", xlabel="τ", ylabel="validation accuracy", title="accuracy against τ")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "probe_vs_tau.png", dpi=100)
    plt.close(fig)
    save_json(out / "tau_report.json", [{k: v for k, v in r.items() if k != "sorted"} for r in rows])
    return rows
