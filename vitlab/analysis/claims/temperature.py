"""Claims 9 and 12: temperature, in the softmax and in InfoNCE.

* Claim 12 — softmax(s / T) for a fixed score vector over T from 0.01 to 100, against the exact limits and the
  bounds that prove them: 1 − p_max ≤ (n − 1)·exp(−gap / T) (gap: the top score minus the next), so p → the
  arg-max's one-hot as T → 0; and e^(−R/T)/n ≤ p_i ≤ e^(R/T)/n (R: the score range), so p → uniform as T → ∞.
* Claim 9 — InfoNCE's weight over an anchor's negatives, w_j ∝ exp(s_j / τ) (:func:`vitlab.losses.negative_weights`;
  Wang & Liu 2021, "Understanding the Behaviour of Contrastive Loss"), measured two ways: on **one fixed encoder**
  across every τ (the loss's own weighting, nothing learned differs) and on **each τ's own encoder** (what
  training did); and how the learned representation depends on τ: the linear probe and kNN accuracy on the
  validation split over seeds, a one-way ANOVA across τ and Welch's test of the best τ against its neighbours.
  Compare SimCLR's Table 5 (Chen et al. 2020, ImageNet: τ = 0.1 best).
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import torch

from ...errors import ConfigError
from ..tau import view_embeddings, weight_profile
from . import lab as L
from .claim import CAVEATS, FAILS, HOLDS, UNDECIDED, Finding, Lab
from .stats import Spread, welch

TAUS = (0.05, 0.1, 0.2, 0.5, 1.0)  # the τ study's grid (issue 15)
FIXED_TAUS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the loss's weighting on one encoder: wider
PRETRAIN_EPOCHS = 4  # the digits pretraining of each (τ, seed), when no τ sweep is given
VIEW_IMAGES = 128  # validation images whose two views give the embeddings (254 negatives an anchor)


# -- claim 12 --------------------------------------------------------------------------------------------------
def softmax_by_hand(s: torch.Tensor, temperature: float) -> torch.Tensor:
    """exp(s/T) / Σ exp(s/T) in float64, shifted by the max so that exp cannot overflow."""
    z = s.double() / temperature
    e = torch.exp(z - z.max())
    return e / e.sum()


SCORES = (2.0, 1.0, 0.5, -1.0)


def softmax_limits(softmax=torch.softmax) -> dict:
    """``softmax(s / T, dim)`` for :data:`SCORES` over T from 0.01 to 100 (41 values, log-spaced, float64), against
    the hand formula and the two bounds of the module docstring; ``ok`` says whether every check passed."""
    s = torch.tensor(SCORES, dtype=torch.float64)
    n, gap, spread = len(s), float(s[0] - s[1]), float(s.max() - s.min())
    temps = torch.logspace(-2, 2, 41, dtype=torch.float64)
    probs = torch.stack([softmax(s / t, 0) for t in temps])  # (T, n)
    by_hand = torch.stack([softmax_by_hand(s, float(t)) for t in temps])
    diff = float((probs - by_hand).abs().max())
    sums = float((probs.sum(1) - 1).abs().max())
    order_kept = bool((probs.argsort(1, descending=True) == torch.arange(n)).all())
    to_max = probs[:, 1:].sum(1)  # total variation to the arg-max's one-hot, 1 − p_max without the rounding
    bound_max = (n - 1) * torch.exp(-gap / temps)
    to_uniform = 0.5 * (probs - 1 / n).abs().sum(1)
    low, high = torch.exp(-spread / temps) / n, torch.exp(spread / temps) / n
    within = bool((to_max <= bound_max * (1 + 1e-9)).all()) and bool(
        ((probs >= low[:, None] * (1 - 1e-9)) & (probs <= high[:, None] * (1 + 1e-9))).all())
    ok = diff < 1e-12 and sums < 1e-12 and order_kept and within and float(to_max[0]) < 1e-20 \
        and float(to_uniform[-1]) < 0.02
    return dict(s=s, n=n, gap=gap, spread=spread, temps=temps, probs=probs, diff=diff, sums=sums,
                order_kept=order_kept, to_max=to_max, to_uniform=to_uniform, within=within, ok=ok)


def claim12(lab: Lab) -> Finding:
    r = softmax_limits()
    s, n, temps, probs, to_max, to_uniform = r["s"], r["n"], r["temps"], r["probs"], r["to_max"], r["to_uniform"]
    tied = torch.softmax(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64) / 0.01, 0)
    evidence = [
        f"Scores s = {s.tolist()}, T from 0.01 to 100 (41 values, log-spaced), float64:",
        "",
        f"- torch.softmax against exp(s/T)/Σexp(s/T) by hand: max |difference| {r['diff']:.1e}; every row sums to 1 "
        f"within {r['sums']:.1e}; every probability > 0; the order of the scores is kept at every T: "
        f"{r['order_kept']}.",
        f"- T → 0: 1 − p_max = {float(to_max[0]):.2e} at T = 0.01 and {float(to_max[20]):.3f} at T = 1, never above "
        f"the bound (n − 1)·exp(−gap/T) (gap = {r['gap']:g}).",
        f"- T → ∞: total variation to uniform {float(to_uniform[-1]):.4f} at T = 100 ({float(to_uniform[20]):.3f} at "
        f"T = 1); every p_i within [e^(−R/T)/n, e^(R/T)/n] (R = {r['spread']:g}): {r['within']}.",
        f"- A caveat the notes leave out: with tied maxima the limit is uniform over the tied ones, not the max: "
        f"s = [1, 1, 0] at T = 0.01 gives {[round(v, 4) for v in tied.tolist()]}.",
    ]
    plt = L.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for i in range(n):
        ax.plot(temps, probs[:, i], label=f"s = {float(s[i]):g}")
    ax.axhline(1 / n, color="grey", ls=":", lw=1)
    ax.set(xscale="log", xlabel="temperature T", ylabel="softmax(s / T)", title="T → 0: one-hot; T → ∞: uniform")
    ax.legend(fontsize=8)
    plot = L.savefig(fig, lab, "claim12_softmax.png")
    if r["ok"]:
        return Finding(HOLDS, f"exactly: p sums to 1, 1 − p_max ≤ (n − 1)e^(−gap/T) → 0 as T → 0 "
                              f"({float(to_max[0]):.0e} at T = 0.01) and p → uniform as T → ∞ (total variation "
                              f"{float(to_uniform[-1]):.4f} at T = 100); with tied maxima the limit is uniform over "
                              "the ties", evidence, [plot])
    return Finding(FAILS, "the softmax did not meet its limits or bounds (see the evidence)", evidence, [plot])


# -- claim 9 ---------------------------------------------------------------------------------------------------
def _pretrain_runs(lab: Lab) -> dict[float, list[Path]]:
    """A short digits pretraining for every (τ, seed) through the engine; the linear probe of each."""
    from ...recipes.pretrain_digits import pretrain_digits
    from ...train.loop import fit
    from ...train.probe import probe

    base = pretrain_digits()
    runs: dict[float, list[Path]] = {}
    for tau in TAUS:
        for seed in lab.seed_list():
            cfg = replace(base, seed=seed, name=f"claim9-tau{tau:g}-seed{seed}", out_dir=str(lab.runs),
                          progress=False, optim=replace(base.optim, epochs=PRETRAIN_EPOCHS),
                          pretrain=replace(base.pretrain, tau=tau))
            run_dir = fit(cfg)
            probe(run_dir)
            runs.setdefault(tau, []).append(run_dir)
    return runs


def sweep_runs(sweep: Path) -> dict[float, list[Path]]:
    """The run folders of a `vitlab sweep pretrain.tau=...` folder, by τ (from its sweep.csv)."""
    import csv

    table = Path(sweep) / "sweep.csv"
    if not table.is_file():
        raise ConfigError(f"--tau-sweep {sweep}: no sweep.csv there; expected the folder `vitlab sweep "
                          f"pretrain.tau=... --out DIR` wrote")
    runs: dict[float, list[Path]] = {}
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            if "pretrain.tau" not in row:
                raise ConfigError(f"--tau-sweep {sweep}: sweep.csv has no pretrain.tau column; expected a τ sweep")
            runs[float(row["pretrain.tau"])] = [Path(d) for d in row["run_dirs"].split(";") if d]
    return runs


def _metric(run_dir: Path, name: str) -> float | None:
    if name == "probe":
        path = run_dir / "probe.json"
        return json.loads(path.read_text()).get("linear", {}).get("val_acc") if path.is_file() else None
    return json.loads((run_dir / "metrics.json").read_text()).get(name)


def claim9(lab: Lab) -> Finding:
    from scipy.stats import f_oneway

    given = lab.tau_sweep is not None
    runs = sweep_runs(lab.tau_sweep) if given else _pretrain_runs(lab)
    taus = sorted(runs)
    views = {d: view_embeddings(d, VIEW_IMAGES)[1:] for t in taus for d in runs[t]}  # run -> (z1, z2)
    # (a) the loss's own weighting: one fixed encoder (the middle τ's first run), every τ
    fixed_tau = taus[len(taus) // 2]
    z1, z2 = views[runs[fixed_tau][0]]
    fixed = {t: weight_profile(z1, z2, t) for t in FIXED_TAUS}
    negatives = fixed[FIXED_TAUS[0]]["negatives"]
    k1 = max(1, math.ceil(0.01 * negatives))
    uniform_top1 = k1 / negatives
    top1 = [fixed[t]["top1pct"] for t in FIXED_TAUS]
    monotone = all(a > b for a, b in zip(top1, top1[1:]))
    concentrates = top1[0] > 10 * uniform_top1
    evens_out = top1[-1] < 1.5 * uniform_top1
    # (b) each τ's own encoder, and what it learned
    own = {t: [weight_profile(*views[d], t)["top1pct"] for d in runs[t]] for t in taus}
    probe_acc = {t: [v for v in (_metric(d, "probe") for d in runs[t]) if v is not None] for t in taus}
    knn_acc = {t: [_metric(d, "val_knn_acc") for d in runs[t]] for t in taus}
    acc = probe_acc if all(len(v) >= 2 for v in probe_acc.values()) else knn_acc
    acc_name = "linear probe" if acc is probe_acc else "kNN"
    anova = f_oneway(*[acc[t] for t in taus]) if all(len(acc[t]) >= 2 for t in taus) else None
    best = max(taus, key=lambda t: Spread(tuple(acc[t])).mean)
    i = taus.index(best)
    neighbours = [taus[j] for j in (i - 1, i + 1) if 0 <= j < len(taus)]
    rows = ["| τ | top 1% share, fixed encoder | top 1% share, own encoder | val linear probe | val kNN | seeds |",
            "|---|---|---|---|---|---|"]
    for t in taus:
        fixed_cell = f"{fixed[t]['top1pct']:.3f}" if t in fixed else ""
        rows.append(f"| {t:g} | {fixed_cell} | {Spread(tuple(own[t])).fmt(1, 3)} | "
                    f"{Spread(tuple(probe_acc[t])).fmt() + '%' if probe_acc[t] else ''} | "
                    f"{Spread(tuple(knn_acc[t])).fmt()}% | {len(runs[t])} |")
    source = (f"the τ sweep in `{lab.tau_sweep}`" if given else
              f"digits pretraining through the engine (the digits pretraining recipe, {PRETRAIN_EPOCHS} epochs, "
              f"τ ∈ {list(TAUS)}, seeds {lab.seed_list()}), each followed by `vitlab probe`")
    tests = [f"best τ = {best:g} ({acc_name} {Spread(tuple(acc[best])).fmt()}%) against τ = {n:g}: p = "
             f"{welch(acc[best], acc[n]).p:.3f}" for n in neighbours if len(acc[n]) >= 2 and len(acc[best]) >= 2]
    evidence = [
        f"Runs: {source}. Hardness: the share of each anchor's softmax weight over its {negatives} negatives that "
        f"its hardest 1% ({k1}) carry, averaged over the 2×{VIEW_IMAGES} anchors of two seeded views of "
        f"{VIEW_IMAGES} validation images; uniform weighting gives {uniform_top1:.3f}.",
        "",
        f"- **One fixed encoder** (the τ = {fixed_tau:g} run's), every τ: "
        + ", ".join(f"τ = {t:g}: {fixed[t]['top1pct']:.3f}" for t in FIXED_TAUS)
        + f". Decreasing in τ: {monotone}.",
        "", *rows, "",
        f"- Sensitivity of the {acc_name} to τ: one-way ANOVA across the {len(taus)} τ: "
        + (f"F = {anova.statistic:.2f}, p = {anova.pvalue:.4f}" if anova is not None else "not enough seeds")
        + ("; " + "; ".join(tests) if tests else "") + ".",
        "- SimCLR's Table 5 (ImageNet, linear eval): τ = 0.05 → 59.7, 0.1 → 64.4 (best), 0.5 → 60.7, 1.0 → 58.0.",
    ]
    plt = L.pyplot()
    fig, (ax, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax.plot(FIXED_TAUS, top1, "o-", label="one fixed encoder")
    ax.errorbar(taus, [Spread(tuple(own[t])).mean for t in taus], yerr=[Spread(tuple(own[t])).std for t in taus],
                fmt="s", capsize=3, label="each τ's own encoder")
    ax.axhline(uniform_top1, color="grey", ls=":", label="uniform")
    ax.set(xscale="log", yscale="log", xlabel="τ", ylabel="weight share of the hardest 1%",
           title="InfoNCE's weight on the hardest negatives")
    ax.legend(fontsize=8)
    for name, values, marker in (("linear probe", probe_acc, "o-"), ("kNN", knn_acc, "s--")):
        pts = [t for t in taus if values[t]]
        if pts:
            ax_acc.errorbar(pts, [Spread(tuple(values[t])).mean for t in pts],
                            yerr=[Spread(tuple(values[t])).std for t in pts], fmt=marker, capsize=3, label=name)
    ax_acc.set(xscale="log", xlabel="τ", ylabel="validation accuracy", title="what is learned, mean ± std")
    ax_acc.legend(fontsize=8)
    plot = L.savefig(fig, lab, "claim9_tau.png")
    weighting = monotone and concentrates and evens_out
    sensitive = anova is not None and anova.pvalue < 0.05
    part_a = (f"on one fixed encoder the hardest 1% of negatives carry {top1[0]:.0%} of the weight at τ = "
              f"{FIXED_TAUS[0]:g} and {top1[-1]:.1%} at τ = {FIXED_TAUS[-1]:g} (uniform: {uniform_top1:.1%})")
    part_b = (f"the {acc_name} varies with τ beyond the seed spread (ANOVA p = {anova.pvalue:.3f}, best τ = {best:g})"
              if sensitive else
              f"the {acc_name} does not vary with τ beyond the seed spread (ANOVA p = "
              f"{anova.pvalue if anova is not None else float('nan'):.2f})")
    if weighting and sensitive:
        return Finding(HOLDS, f"{part_a}; {part_b}", evidence, [plot])
    if weighting:
        return Finding(CAVEATS, f"{part_a}; but {part_b} at this size", evidence, [plot])
    if anova is None:
        return Finding(UNDECIDED, f"{part_a}; too few seeds to test the sensitivity", evidence, [plot])
    return Finding(FAILS, f"the weighting did not behave as claimed: {part_a}; {part_b}", evidence, [plot])
