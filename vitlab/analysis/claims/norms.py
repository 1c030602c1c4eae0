"""Claims 7 and 8: what BatchNorm and LayerNorm normalise over, and when each one suits.

Claim 7 is an identity. On a (B, F) matrix, BatchNorm (Ioffe & Szegedy 2015, Algorithm 1) normalises each
*column* (feature) with the mean and biased variance of that column over the batch; LayerNorm (Ba et al. 2016)
normalises each *row* (sample) with the mean and biased variance of that row over its features. vitlab's
``make_norm`` does the same on tokens (B, N, D): 'batch' pools batch × tokens per feature (Yao et al. 2021),
'layer' normalises each token over its D features. Both are compared with the formulas written out by hand. What
the notes leave out: in eval mode BatchNorm uses the running statistics (moved by ``momentum`` with the
*unbiased* variance), not the batch's, so a sample's output no longer depends on the rest of its batch.

Claim 8 is an experiment: a small ViT (vitlab's own, ``model.norm``) and a small CNN (:class:`.lab.SmallCNN`)
are trained on digits with each norm at batch sizes 2 … 256, and LayerNorm is compared with BatchNorm at each
batch size. LayerNorm does not depend on the batch, so its curve is the control for what else changes with the
batch size (the number of steps, the learning rate): "BatchNorm suffers with small batches" is read from the
BN − LN gap at the smallest batch against the gap at the largest, not from BN's curve alone.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import torch
from torch import nn

from . import stats
from .claim import CAVEATS, FAILS, HOLDS, UNDECIDED, Finding, Lab
from .lab import SmallCNN, digits_data, one_thread, pyplot, savefig, train_classifier
from ...config import ModelConfig
from ...layers.norm import make_norm
from ...models.vit import ViT

# --------------------------------------------------------------------------------------------------------------
# Claim 7: BatchNorm normalises columns, LayerNorm rows
# --------------------------------------------------------------------------------------------------------------

EPS = 1e-5
_EXACT_TOL = 1e-10  # float64: the hand formula and PyTorch's kernel sum in other orders, ~1e-15 apart


def column_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Each column of ``x`` minus its mean, over the square root of its biased variance + eps (no affine).

    Shape:
        (B, F) -> (B, F).
    """
    mean = x.mean(0, keepdim=True)  # (1, F)
    var = ((x - mean) ** 2).mean(0, keepdim=True)  # (1, F): divided by B, not B - 1
    return (x - mean) / torch.sqrt(var + eps)


def row_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Each row of ``x`` minus its mean, over the square root of its biased variance + eps (no affine).

    Shape:
        (B, F) -> (B, F).
    """
    return column_norm(x.T, eps).T


def _affine(norm: nn.Module, gen: torch.Generator) -> nn.Module:
    """Random non-trivial scale and shift, so a check would see a norm that forgot its affine step."""
    with torch.no_grad():
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=gen, dtype=torch.float64) + 0.5)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=gen, dtype=torch.float64))
    return norm


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@dataclass(frozen=True)
class NormDiffs:
    """Max abs differences between each norm and the formulas written out by hand (float64).

    ``*_own`` compare a norm with the formula of its own direction, ``*_other`` with the other direction's (large:
    the two directions really differ on this data). ``bn_eval_*`` compare eval-mode BatchNorm with the batch
    formula and with the running-statistics formula; ``bn_dependence`` / ``ln_dependence`` are how much sample
    0's output moves when the other samples of its batch are redrawn (train-mode BN: a lot; LN: not at all).
    """

    bn_own: float
    bn_other: float
    ln_own: float
    ln_other: float
    tokens_bn_own: float  # make_norm('batch') on (B, N, D) vs per-feature over batch × tokens
    tokens_bn_other: float  # ... vs per token over features
    tokens_ln_own: float  # make_norm('layer') vs per token over features
    tokens_ln_other: float  # ... vs per feature over batch × tokens
    running_var: float  # running_var after one step vs (1 - m)·1 + m·unbiased variance
    bn_eval_vs_batch: float
    bn_eval_vs_running: float
    bn_dependence: float
    ln_dependence: float


def norm_diffs(batch_norm=nn.BatchNorm1d, layer_norm=nn.LayerNorm, token_norm=make_norm, *, seed: int = 0,
               eps: float = EPS) -> NormDiffs:
    """Measure :class:`NormDiffs` for the given constructors (``batch_norm(F, eps=)``, ``layer_norm(F, eps=)``,
    ``token_norm(kind, D, eps=)``): PyTorch's and vitlab's norms by default, a wrong one in the tests.

    The data has columns of very different means and scales (and rows too), so the column and row formulas give
    clearly different answers and a norm that used the wrong direction shows up as a large difference.
    """
    gen = torch.Generator().manual_seed(seed)
    b, f = 8, 5
    x = torch.randn(b, f, generator=gen, dtype=torch.float64)  # (B, F)
    x = x * torch.linspace(0.5, 4.0, f, dtype=torch.float64) + torch.linspace(-3.0, 5.0, f, dtype=torch.float64)
    x = x + torch.randn(b, 1, generator=gen, dtype=torch.float64) * 2  # row offsets, so rows differ too

    bn = _affine(batch_norm(f, eps=eps).double(), gen).train()
    ln = _affine(layer_norm(f, eps=eps).double(), gen)
    with torch.no_grad():
        w, c = bn.weight, bn.bias
        bn_out = bn(x)  # (B, F); also moves the running statistics once
        ln_out = ln(x)
        bn_own = _max_diff(bn_out, column_norm(x, eps) * w + c)
        bn_other = _max_diff(bn_out, row_norm(x, eps) * w + c)
        ln_own = _max_diff(ln_out, row_norm(x, eps) * ln.weight + ln.bias)
        ln_other = _max_diff(ln_out, column_norm(x, eps) * ln.weight + ln.bias)

        bn.eval()
        eval_out = bn(x)
        bn_eval_vs_batch = _max_diff(eval_out, bn_out)
        if bn.running_var is None:  # track_running_stats=False: eval mode keeps the batch statistics
            running_var = bn_eval_vs_running = math.inf
        else:
            running_var = _max_diff(bn.running_var, (1 - bn.momentum) * 1.0 + bn.momentum * x.var(0, unbiased=True))
            running = (x - bn.running_mean) / torch.sqrt(bn.running_var + eps) * w + c
            bn_eval_vs_running = _max_diff(eval_out, running)

        bn.train()
        other = torch.cat([x[:1], torch.randn(b - 1, f, generator=gen, dtype=torch.float64) * 3])  # same sample 0
        bn_dependence = _max_diff(bn(other)[0], bn(x)[0])
        ln_dependence = _max_diff(ln(other)[0], ln(x)[0])

        tokens = torch.randn(2, 3, f, generator=gen, dtype=torch.float64)  # (B, N, D)
        tokens = (tokens * torch.linspace(0.5, 4.0, f, dtype=torch.float64)
                  + torch.linspace(-3.0, 5.0, f, dtype=torch.float64))
        flat = tokens.reshape(-1, f)  # (B·N, D): one row per token
        tbn = _affine(token_norm("batch", f, eps=eps).double(), gen).train()
        tln = _affine(token_norm("layer", f, eps=eps).double(), gen)
        per_feature = lambda n: (column_norm(flat, eps) * n.weight + n.bias).reshape(tokens.shape)  # noqa: E731
        per_token = lambda n: (row_norm(flat, eps) * n.weight + n.bias).reshape(tokens.shape)  # noqa: E731
        tbn_out, tln_out = tbn(tokens), tln(tokens)  # (B, N, D)
        return NormDiffs(
            bn_own=bn_own, bn_other=bn_other, ln_own=ln_own, ln_other=ln_other,
            tokens_bn_own=_max_diff(tbn_out, per_feature(tbn)), tokens_bn_other=_max_diff(tbn_out, per_token(tbn)),
            tokens_ln_own=_max_diff(tln_out, per_token(tln)), tokens_ln_other=_max_diff(tln_out, per_feature(tln)),
            running_var=running_var, bn_eval_vs_batch=bn_eval_vs_batch, bn_eval_vs_running=bn_eval_vs_running,
            bn_dependence=bn_dependence, ln_dependence=ln_dependence,
        )


def verdict7(d: NormDiffs, tol: float = _EXACT_TOL) -> str:
    """FAILS unless every norm matches its own direction's formula (and not the other's); CAVEATS when, as in
    PyTorch, eval-mode BatchNorm leaves the batch statistics for the running ones; HOLDS if it did not."""
    own = max(d.bn_own, d.ln_own, d.tokens_bn_own, d.tokens_ln_own)
    other = min(d.bn_other, d.ln_other, d.tokens_bn_other, d.tokens_ln_other)
    if not (own < tol < other):
        return FAILS
    return CAVEATS if d.bn_eval_vs_batch > tol and d.bn_eval_vs_running < tol else HOLDS


def claim7(lab: Lab) -> Finding:
    d = norm_diffs(seed=lab.seed)
    verdict = verdict7(d)
    own = max(d.bn_own, d.ln_own, d.tokens_bn_own, d.tokens_ln_own)
    other = min(d.bn_other, d.ln_other, d.tokens_bn_other, d.tokens_ln_other)
    if verdict == FAILS:
        why = (f"A norm differs from its own direction's formula by up to {own:.1e} (or matches the other "
               f"direction's, min difference {other:.1e}).")
    else:
        eval_mode = (f"but in eval mode BatchNorm uses its running statistics ({d.bn_eval_vs_batch:.2f} off the batch "
                     f"formula, {d.bn_eval_vs_running:.0e} off the running one)" if verdict == CAVEATS else
                     f"and eval mode keeps the batch statistics ({d.bn_eval_vs_batch:.0e} off)")
        why = (f"In train mode BatchNorm matches the per-column formula and LayerNorm the per-row one to {own:.0e} "
               f"(vitlab's token norms too; the other direction is {other:.2f} off), {eval_mode}.")
    evidence = [
        f"Float64, eps = {EPS:g}, random affine weights; a (8, 5) matrix with columns of different means and "
        "scales, and (2, 3, 5) tokens for vitlab's `make_norm`. Max abs difference from the hand formula:",
        "",
        "| norm | vs its own direction | vs the other direction |",
        "|---|---|---|",
        f"| `nn.BatchNorm1d` (train) vs per column | {d.bn_own:.1e} | {d.bn_other:.2f} (per row) |",
        f"| `nn.LayerNorm` vs per row | {d.ln_own:.1e} | {d.ln_other:.2f} (per column) |",
        f"| `make_norm('batch')` on (B, N, D) vs per feature over B·N tokens | {d.tokens_bn_own:.1e} | "
        f"{d.tokens_bn_other:.2f} (per token) |",
        f"| `make_norm('layer')` on (B, N, D) vs per token over D | {d.tokens_ln_own:.1e} | "
        f"{d.tokens_ln_other:.2f} (per feature) |",
        "",
        "What the claim leaves out (BatchNorm's two modes):",
        f"- Eval mode normalises with the running statistics: {d.bn_eval_vs_running:.1e} from "
        f"`(x − running_mean) / √(running_var + eps)`, {d.bn_eval_vs_batch:.2f} from the batch formula.",
        f"- The running variance moves with the *unbiased* batch variance (÷ (B − 1)) while the normalisation uses "
        f"the biased one: {d.running_var:.1e} from `(1 − m)·1 + m·var_unbiased` after one step (m = 0.1).",
        f"- In train mode a sample's BatchNorm output depends on the rest of its batch: redrawing the 7 other rows "
        f"moves row 0's output by up to {d.bn_dependence:.2f}; its LayerNorm output moves by "
        f"{d.ln_dependence:.1e}.",
    ]
    return Finding(verdict, why, evidence)


# --------------------------------------------------------------------------------------------------------------
# Claim 8: LayerNorm vs BatchNorm over batch sizes, in a ViT and a CNN
# --------------------------------------------------------------------------------------------------------------

BATCHES = (2, 8, 32, 256)
EPOCHS = 5  # passes over the data at every batch size ...
MIN_STEPS = 200  # ... but at least this many optimiser steps: 5 epochs at batch 256 are 30 steps, too few to train
TRAIN_IMAGES = 1292  # the digits' training split


def epochs_for(batch: int) -> int:
    """EPOCHS, or more where EPOCHS would give a batch size fewer than MIN_STEPS steps."""
    return max(EPOCHS, math.ceil(MIN_STEPS / math.ceil(TRAIN_IMAGES / batch)))
BASE_LR, BASE_BATCH = 4e-3, 32  # BASE_BATCH is also the reference the smallest batch is held against


def lr_for(batch: int) -> float:
    """Square-root scaling, the rule for Adam-type optimisers (Hoffer et al. 2017; Malladi et al. 2022): the
    gradient noise's std goes as 1/√B, so the step grows as √B; the same for both norms."""
    return BASE_LR * math.sqrt(batch / BASE_BATCH)


def tiny_vit(norm: str) -> ViT:
    """vitlab's ViT at digits size: 8×8 images in 2×2 patches (16 tokens + class token), dim 32, 2 blocks.

    He init (``kaiming_fan_out``) rather than the default std 0.02: at dim 32 the 0.02 init leaves the tokens so
    small that the model is still near chance after the few epochs this check can afford (41% against 83% val
    after 4 epochs at batch 32, LayerNorm), for either norm.
    """
    return ViT(ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=32, depth=2, heads=2,
                           mlp_ratio=2.0, norm=norm, init="kaiming_fan_out"))


def tiny_cnn(norm: str) -> SmallCNN:
    """The lab's CNN, two conv steps (16, 32 channels) with max pooling; 'layer' is GroupNorm(1, C)."""
    return SmallCNN(norm=norm, widths=(16, 32))


MODELS = {"ViT": tiny_vit, "CNN": tiny_cnn}


@dataclass(frozen=True)
class Job:
    model: str
    norm: str
    batch: int
    seed: int


@dataclass(frozen=True)
class Run:
    job: Job
    val: float  # final-epoch accuracies: nothing is chosen
    test: float
    seconds: float


_DATA = None  # a worker's own copy of the digits, loaded once by _worker_init


def _worker_init() -> None:
    global _DATA
    torch.set_num_threads(1)
    _DATA = digits_data()


def train_job(job: Job, data=None) -> Run:
    """Train one (model, norm, batch, seed) for ``epochs_for(batch)`` at ``lr_for(batch)``; the seed fixes init and
    order."""
    start = time.perf_counter()
    torch.manual_seed(job.seed)
    model = MODELS[job.model](job.norm)
    hist = train_classifier(model, data if data is not None else _DATA, epochs=epochs_for(job.batch),
                            batch_size=job.batch,
                            lr=lr_for(job.batch), seed=job.seed)
    return Run(job, hist.val_acc[-1], hist.test_acc, time.perf_counter() - start)


def train_all(jobs: list[Job], workers: int | None = None) -> list[Run]:
    """Every job, one thread each, on as many processes as there are cores (a run is too small for two threads
    to help, and the batch-2 runs are most of the time), the longest first; in-process where there is one core.

    Each job seeds itself, so its numbers do not depend on which process ran it or in what order.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = workers or min(cores, len(jobs))
    jobs = sorted(jobs, key=lambda j: (j.batch, j.model != "ViT"))  # batch 2, ViT first: the longest
    if workers <= 1:
        data = digits_data()
        with one_thread():
            return [train_job(j, data) for j in jobs]
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose torch threads are already running
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        return list(pool.map(train_job, jobs))


def _gap(results: dict, model: str, batch: int) -> tuple[list[float], bool]:
    """LN − BN per seed (the i-th seed of each; any pairing of independent runs gives unbiased gaps) and whether
    the two norms are separable at this batch."""
    ln, bn = results[(model, "layer", batch)], results[(model, "batch", batch)]
    return [a - b for a, b in zip(ln, bn)], stats.welch(ln, bn).separable


def _mean(values) -> float:
    return sum(values) / len(values)


def prefers(results: dict, model: str, winner: str) -> tuple[str, str]:
    """Does ``model`` do better with ``winner`` ('layer' or 'batch') at the batches above the smallest?

    HOLDS where it is separably better at one or more of them and separably worse at none, FAILS for the mirror,
    UNDECIDED where nothing separates or the answer changes with the batch.
    """
    sign = 1 if winner == "layer" else -1
    batches = sorted({b for m, _, b in results if m == model})[1:]
    gaps = {b: _gap(results, model, b) for b in batches}
    better = [b for b, (g, s) in gaps.items() if s and sign * _mean(g) > 0]
    worse = [b for b, (g, s) in gaps.items() if s and sign * _mean(g) < 0]
    text = ", ".join(f"B={b}: {100 * _mean(g):+.2f}{'*' if s else ''}" for b, (g, s) in gaps.items())
    if better and not worse:
        return HOLDS, text
    if worse and not better:
        return FAILS, text
    return UNDECIDED, text


def suffers(results: dict, model: str, reference: int = BASE_BATCH) -> tuple[str, str]:
    """Does BatchNorm lose ground to LayerNorm at the smallest batch, against the ``reference`` batch?

    LayerNorm does not depend on the batch, so it is the control for what else the batch size changes (steps,
    lr): the test is on the gap, Welch's test between the per-seed LN − BN at the smallest batch and at the
    reference; a separably larger gap at the smallest batch holds, a separably smaller one fails.
    """
    small = min(b for m, _, b in results if m == model)
    (g_small, s_small), (g_ref, _) = _gap(results, model, small), _gap(results, model, reference)
    w = stats.welch(g_small, g_ref)
    text = (f"LN − BN {100 * _mean(g_small):+.2f}{'*' if s_small else ''} at B={small} against "
            f"{100 * _mean(g_ref):+.2f} at B={reference}, p = {w.p:.3f}")
    if w.separable:
        return (HOLDS if w.t > 0 else FAILS), text
    return UNDECIDED, text


def subclaims(results: dict) -> list[tuple[str, str, str]]:
    """The claim's parts, each (name, HOLDS/FAILS/UNDECIDED, detail), from ``results[(model, norm, batch)]`` =
    the validation accuracies in seed order: "LayerNorm suits sequences" (:func:`prefers` LN in the ViT),
    "BatchNorm suffers with small batches" (:func:`suffers`, each model), "CV suits BN" (:func:`prefers` BN in the
    CNN). The smallest batch is left to the second part; "NLP suits LN" is not tested on images."""
    parts = [("LayerNorm suits sequences (ViT)", *prefers(results, "ViT", "layer"))]
    for model in ("ViT", "CNN"):
        parts.append((f"BatchNorm suffers with small batches ({model})", *suffers(results, model)))
    parts.append(("CV suits BN (CNN)", *prefers(results, "CNN", "batch")))
    return parts


_SHORT = {HOLDS: "holds", FAILS: "fails", UNDECIDED: "undecided"}


def verdict8(parts: list[tuple[str, str, str]]) -> str:
    """A conjunction: any part that fails fails it; otherwise it holds at most with caveats, since "NLP suits LN"
    is not tested on images; nothing decided is undecided."""
    statuses = [s for _, s, _ in parts]
    if FAILS in statuses:
        return FAILS
    return CAVEATS if HOLDS in statuses else UNDECIDED


def _plot8(results, lab: Lab) -> str:
    plt = pyplot()
    models = sorted({m for m, _, _ in results}, reverse=True)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for norm, marker in (("layer", "o"), ("batch", "s")):
            batches = sorted(b for m, n, b in results if m == model and n == norm)
            sp = [stats.Spread(tuple(results[(model, norm, b)])) for b in batches]
            ax.errorbar(batches, [100 * s.mean for s in sp], yerr=[100 * s.std for s in sp], marker=marker,
                        capsize=3, label={"layer": "LayerNorm", "batch": "BatchNorm"}[norm])
        ax.set_xscale("log", base=2)
        ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel("val accuracy (%)")
        ax.set_title(f"{model} on digits, >= {EPOCHS} epochs and >= {MIN_STEPS} steps")
        ax.legend()
    return savefig(fig, lab, "claim8_norm_vs_batch.png")


def claim8(lab: Lab) -> Finding:
    seeds = lab.seed_list()
    runs = train_all([Job(m, n, b, s) for m in MODELS for n in ("layer", "batch") for b in BATCHES for s in seeds])
    results, tests, seconds = {}, {}, {}
    for r in sorted(runs, key=lambda r: r.job.seed):
        key = (r.job.model, r.job.norm, r.job.batch)
        results.setdefault(key, []).append(r.val)
        tests.setdefault(key, []).append(r.test)
        seconds[key] = seconds.get(key, 0.0) + r.seconds
    parts = subclaims(results)
    verdict = verdict8(parts)
    gaps = {m: "/".join(f"{100 * _mean(g):+.1f}{'*' if sep else ''}"
                        for g, sep in (_gap(results, m, b) for b in BATCHES)) for m in MODELS}
    why = ("; ".join(f"{name} {_SHORT[status]}" for name, status, _ in parts)
           + f" (LN − BN val points at B = {'/'.join(map(str, BATCHES))}, * separable: ViT {gaps['ViT']}, "
           f"CNN {gaps['CNN']}); NLP is not tested here.")
    evidence = [
        f"Digits (1,292 train / 145 val), {EPOCHS} epochs at every batch size but at least {MIN_STEPS} steps, "
        f"AdamW with a cosine schedule, lr = "
        f"{BASE_LR:g}·√(B/{BASE_BATCH}) (square-root scaling, the same for both norms); {len(seeds)} seeds. "
        "ViT: vitlab's ViT, 8×8 in 2×2 patches, dim 32, 2 blocks, `kaiming_fan_out` init, `model.norm` for norm1, "
        "norm2 and the final norm "
        "(BatchNorm pools batch × 17 tokens per feature). CNN: `SmallCNN` (16, 32), BatchNorm2d vs GroupNorm(1, C). "
        "Final-epoch accuracy in %, val (test beside it); the last column is the seconds of the setting's runs "
        "(one thread each):",
        "",
        "| model | batch | lr | LayerNorm val | BatchNorm val | LN test | BN test | LN vs BN (val) | run s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        for batch in BATCHES:
            ln, bn = results[(model, "layer", batch)], results[(model, "batch", batch)]
            w = stats.welch(ln, bn)
            evidence.append(
                f"| {model} | {batch} | {lr_for(batch):.2g} | {stats.Spread(tuple(ln)).fmt()} | "
                f"{stats.Spread(tuple(bn)).fmt()} | {stats.Spread(tuple(tests[(model, 'layer', batch)])).fmt()} | "
                f"{stats.Spread(tuple(tests[(model, 'batch', batch)])).fmt()} | "
                f"t = {w.t:.2f}, p = {w.p:.3f}{' (separable)' if w.separable else ''} | "
                f"{seconds[(model, 'layer', batch)] + seconds[(model, 'batch', batch)]:.0f} |")
    steps = ", ".join(f"{epochs_for(b) * math.ceil(TRAIN_IMAGES / b)} steps in {epochs_for(b)} epochs at B={b}"
                      for b in BATCHES)
    evidence += ["", f"Steps: {steps}. Equal epochs would leave the largest batch 30 steps, a comparison of how "
                 "fast each norm starts rather than where it ends.",
                 "", "Welch's tests at the smallest and the largest batch:"]
    for model in MODELS:
        for batch in (BATCHES[0], BATCHES[-1]):
            evidence.append(f"- {model}, B={batch}: " + stats.compare(
                "LN", results[(model, "layer", batch)], "BN", results[(model, "batch", batch)]))
    evidence += ["", "The parts (LN − BN in points, * separable):"]
    evidence += [f"- {name}: **{status}** ({detail})" for name, status, detail in parts]
    evidence.append("- NLP suits LN: not tested (no text here); the ViT is the sequence model of this check.")
    return Finding(verdict, why, evidence, [_plot8(results, lab)])
