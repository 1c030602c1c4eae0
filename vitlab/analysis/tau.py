"""What the InfoNCE temperature τ does to a representation: hardness of negatives, alignment, uniformity.

Alignment and uniformity (Wang & Isola 2020) are losses-level metrics (:mod:`vitlab.losses`); this module
reads a τ sweep's run folders and draws them. Wang & Liu 2021 show that lower τ puts more of each anchor's
gradient on its hardest negatives;
:func:`weight_profile` summarises :func:`vitlab.losses.negative_weights` to show it.

Two hardness profiles answer two questions. On **one fixed encoder** (the same embeddings, each τ's softmax over
them) the profile is the loss's own weighting: what τ alone does to the weight on the hardest negatives. On **each
τ's own encoder** it is what training did: an encoder trained at a small τ may have pushed its hard negatives
away, so that its profile is flatter than the fixed encoder's at the same τ. A sweep over seeds (``vitlab sweep
pretrain.tau=... --seeds 3``) gives every number as mean ± std over the seeds, and the best τ (by the validation
linear probe, else the kNN accuracy) with Welch's test against its neighbours: separable only where p < 0.05.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..losses import alignment, negative_weights, uniformity


def weight_profile(z1: torch.Tensor, z2: torch.Tensor, temperature: float, top: int = 10) -> dict:
    """How each anchor's softmax weight over its negatives is spread, averaged over the 2N anchors.

    Returns ``sorted``: the weights sorted in decreasing order, averaged over anchors (a list of 2N − 2
    floats, summing to 1); ``top1pct`` / ``top10pct``: mean share of the hardest ⌈1%⌉ / ⌈10%⌉ of the negatives;
    ``top{top}``: mean share of the ``top`` hardest negatives.

    Shape:
        z1, z2: (N, D), N >= 2.
    """
    w = negative_weights(z1, z2, temperature)  # (2N, 2N), zero at self and positive
    n_neg = w.shape[1] - 2
    ranked = w.sort(dim=1, descending=True).values[:, :n_neg]  # (2N, 2N − 2), the negatives only
    avg = ranked.mean(0)
    k1, k10 = max(1, math.ceil(0.01 * n_neg)), max(1, math.ceil(0.1 * n_neg))
    return {"sorted": avg.tolist(), "top1pct": float(avg[:k1].sum()), "top10pct": float(avg[:k10].sum()),
            f"top{top}": float(avg[:min(top, n_neg)].sum()), "negatives": n_neg}


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


def _run_summary(run_dir, images: int, features: str = "pooled") -> tuple[dict, tuple[torch.Tensor, torch.Tensor]]:
    """τ, seed, the negative-weight profile of the run's own encoder on ``images`` validation images
    (:func:`view_embeddings`), final validation alignment/uniformity/kNN from metrics.json, the accuracies of the
    linear probes on ``features`` (and of the pixel probe) from probe.json; and the embeddings (z1, z2), for the
    fixed-encoder profile."""
    import json
    from pathlib import Path

    from ..train.probe import probe_entry

    run_dir, key, random_key = Path(run_dir), probe_entry(features), probe_entry(features, random=True)
    cfg, *z = view_embeddings(run_dir, images)
    profile = weight_profile(z[0], z[1], cfg.pretrain.tau)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    probe = json.loads((run_dir / "probe.json").read_text()) if (run_dir / "probe.json").is_file() else {}
    return {"run": str(run_dir), "tau": cfg.pretrain.tau, "seed": cfg.seed, "sorted": profile["sorted"],
            "top1pct": profile["top1pct"], "top10pct": profile["top10pct"], "top10": profile["top10"],
            "alignment": metrics.get("val_alignment"), "uniformity": metrics.get("val_uniformity"),
            "knn_acc": metrics.get("val_knn_acc"),
            "probe_acc": probe.get(key, {}).get("val_acc"),
            "probe_test_acc": probe.get(key, {}).get("test_acc"),
            "random_probe_acc": probe.get(random_key, {}).get("val_acc"),
            "pixels_probe_acc": probe.get("pixels", {}).get("val_acc")}, (z[0], z[1])


SUMMARISED = ("probe_acc", "probe_test_acc", "knn_acc", "alignment", "uniformity", "top1pct", "top10pct",
              "random_probe_acc", "pixels_probe_acc")


def summarise_by_tau(rows: list[dict]) -> list[dict]:
    """One row per τ: ``n`` runs (seeds) and, for each of SUMMARISED that every run has, its mean and sample std
    over the runs (``<key>``, ``<key>_std``; std 0 for one run)."""
    import statistics

    out = []
    for tau in sorted({r["tau"] for r in rows}):
        group = [r for r in rows if r["tau"] == tau]
        row = {"tau": tau, "n": len(group), "seeds": sorted(r["seed"] for r in group)}
        for key in SUMMARISED:
            values = [r[key] for r in group if r[key] is not None]
            if values and len(values) == len(group):
                row[key] = statistics.fmean(values)
                row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(row)
    return out


def best_tau(rows: list[dict]) -> dict | None:
    """The τ with the highest mean validation linear probe (the kNN accuracy where no run has been probed), and
    Welch's test of its runs against each neighbouring τ's (the next lower and higher τ of the sweep): whether its
    lead is separable (p < 0.05) or within the seed-to-seed spread. None for a sweep of one τ."""
    from .claims.stats import welch

    by_tau = summarise_by_tau(rows)
    key = "probe_acc" if all("probe_acc" in r for r in by_tau) else "knn_acc"
    if len(by_tau) < 2 or not all(key in r for r in by_tau):
        return None
    i = max(range(len(by_tau)), key=lambda j: by_tau[j][key])
    best = by_tau[i]
    values = lambda tau: [r[key] for r in rows if r["tau"] == tau]  # noqa: E731
    neighbours = []
    for j in (i - 1, i + 1):
        if 0 <= j < len(by_tau):
            other = by_tau[j]
            entry = {"tau": other["tau"], "mean": other[key], "difference": best[key] - other[key]}
            if best["n"] > 1 and other["n"] > 1:
                w = welch(values(best["tau"]), values(other["tau"]))
                entry.update(t=w.t, p=w.p, separable=w.separable)
            neighbours.append(entry)
    return {"metric": key, "tau": best["tau"], "mean": best[key], "std": best[f"{key}_std"], "n": best["n"],
            "neighbours": neighbours}


def fixed_encoder_profiles(z1: torch.Tensor, z2: torch.Tensor, taus: list[float]) -> list[dict]:
    """The loss's own weighting: the negative-weight profile of the same embeddings (one encoder's) under each τ."""
    out = []
    for tau in taus:
        p = weight_profile(z1, z2, tau)
        out.append({"tau": tau, "top1pct": p["top1pct"], "top10pct": p["top10pct"], "sorted": p["sorted"]})
    return out


def sweep_runs(paths) -> list:
    """Run folders from ``paths``: a run folder as it is; a sweep folder (``vitlab sweep --out DIR``: DIR/runs/*)
    as its runs."""
    from pathlib import Path

    found = []
    for p in map(Path, paths):
        if (p / "runs").is_dir() and not (p / "config.json").is_file():
            found += sorted(r for r in (p / "runs").iterdir() if (r / "config.json").is_file())
        else:
            found.append(p)
    if not found:
        raise ConfigError(f"no run folders in {', '.join(map(str, paths))}: expected pretraining run folders or a "
                          f"`vitlab sweep pretrain.tau=... --out DIR` folder")
    return found


def tau_report(runs, out, images: int = 256, reference=None, features: str = "pooled") -> list[dict]:
    """Write hardness.png, align_uniform.png, probe_vs_tau.png, tau_report.json (one row per run) and
    tau_summary.json (per τ: mean ± std over seeds, the fixed-encoder profile, the best τ against its neighbours)
    for a τ sweep (run folders, or a sweep folder); returns the per-run rows sorted by τ then seed.

    ``reference``: the run whose encoder gives the fixed-encoder profile (default: the run of the sweep's median τ
    with the lowest seed). ``features``: which linear probe of probe.json the accuracies are read from (what
    ``vitlab probe --features`` read: pooled, blocks or tokens)."""
    from pathlib import Path

    from ..configio import save_json
    from ..train.plots import plt
    from ..train.probe import probe_entry

    if images < 2:
        raise ConfigError(f"--images must be >= 2 (a negative needs two samples), got {images}")
    probe_entry(features)  # an unknown name fails here, before any run is read
    runs = sweep_runs(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [_run_summary(r, images, features) for r in runs]
    order = sorted(range(len(summaries)), key=lambda i: (summaries[i][0]["tau"], summaries[i][0]["seed"]))
    rows = [summaries[i][0] for i in order]
    taus = sorted({r["tau"] for r in rows})
    if reference is None:
        middle = taus[(len(taus) - 1) // 2]
        ref_i = next(i for i in order if summaries[i][0]["tau"] == middle)
    else:
        ref_i = next((i for i, (r, _) in enumerate(summaries) if Path(r["run"]).resolve() == Path(reference).resolve()),
                     None)
        if ref_i is None:
            raise ConfigError(f"--reference {reference} is not one of the runs of this report")
    fixed = fixed_encoder_profiles(*summaries[ref_i][1], taus)
    by_tau = summarise_by_tau(rows)
    best = best_tau(rows)
    reference_run = summaries[ref_i][0]

    # (a) hardness: sorted negative weights per τ on the fixed encoder (the loss's weighting), and the share of the
    # hardest 1% / 10% against τ on the fixed encoder and on each τ's own encoder (mean ± std over seeds)
    fig, (ax, ax_share) = plt.subplots(1, 2, figsize=(11, 4))
    for f in fixed:
        ax.plot(range(1, len(f["sorted"]) + 1), f["sorted"], label=f"τ={f['tau']:g}")
    ax.set(xscale="log", yscale="log", xlabel="rank of negative (1 = hardest)", ylabel="mean softmax weight",
           title=f"one fixed encoder (τ={reference_run['tau']:g} run)")
    ax.legend()
    for key, marker, label in (("top1pct", "o", "hardest 1%"), ("top10pct", "s", "hardest 10%")):
        ax_share.plot(taus, [f[key] for f in fixed], marker + "-", label=f"{label}, fixed encoder")
        ax_share.errorbar(taus, [r[key] for r in by_tau], yerr=[r[f"{key}_std"] for r in by_tau], fmt=marker + "--",
                          capsize=3, label=f"{label}, each τ's own encoder")
    ax_share.set(xscale="log", xlabel="τ", ylabel="share of an anchor's softmax weight",
                 title="how much the hardest negatives carry")
    ax_share.legend(fontsize=8)
    for a in (ax, ax_share):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "hardness.png", dpi=100)
    plt.close(fig)

    # (b) alignment and uniformity per τ (Wang & Isola 2020), and the (uniformity, alignment) plane
    have = [r for r in by_tau if "alignment" in r]
    fig, (ax_a, ax_plane) = plt.subplots(1, 2, figsize=(11, 4))
    for key, marker, label in (("alignment", "o-", "alignment (α=2)"), ("uniformity", "s-", "uniformity (t=2)")):
        ax_a.errorbar([r["tau"] for r in have], [r[key] for r in have], yerr=[r[f"{key}_std"] for r in have],
                      fmt=marker, capsize=3, label=label)
    ax_a.set(xscale="log", xlabel="τ", title="alignment and uniformity (lower is better)")
    ax_a.legend()
    ax_plane.scatter([r["uniformity"] for r in rows if r["alignment"] is not None],
                     [r["alignment"] for r in rows if r["alignment"] is not None], s=12, alpha=0.5)
    for r in have:
        ax_plane.annotate(f"τ={r['tau']:g}", (r["uniformity"], r["alignment"]))
    ax_plane.set(xlabel="uniformity", ylabel="alignment", title="Wang & Isola 2020, Fig. 2 style (every run)")
    for a in (ax_a, ax_plane):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "align_uniform.png", dpi=100)
    plt.close(fig)

    # (c) linear-probe (and kNN) accuracy against τ, mean ± std over seeds
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, marker in (("probe_acc", f"linear probe ({features})", "o-"),
                               ("knn_acc", "kNN (k from config)", "s--"),
                               ("random_probe_acc", f"random encoder, linear probe ({features})", "x:"),
                               ("pixels_probe_acc", "raw pixels, linear probe", "d-.")):
        pts = [r for r in by_tau if key in r]
        if pts:
            ax.errorbar([r["tau"] for r in pts], [r[key] for r in pts], yerr=[r[f"{key}_std"] for r in pts],
                        fmt=marker, capsize=3, label=label)
    ax.set(xscale="log", xlabel="τ", ylabel="validation accuracy",
           title="accuracy against τ" + (f" (mean ± std over {by_tau[0]['n']} seeds)" if by_tau[0]["n"] > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "probe_vs_tau.png", dpi=100)
    plt.close(fig)
    save_json(out / "tau_report.json", [{k: v for k, v in r.items() if k != "sorted"} for r in rows])
    save_json(out / "tau_summary.json", {"features": features, "by_tau": by_tau, "best": best, "fixed_encoder": {
        "run": reference_run["run"], "tau": reference_run["tau"],
        "profiles": [{k: v for k, v in f.items() if k != "sorted"} for f in fixed]}})
    return rows
