"""Claims 3, 4 and 5: which up-sampling is best, what a transposed convolution is, what max-unpooling does.

* Claim 3 — the four ``segment.upsample`` methods of the segmentation decoder (vitlab.layers.upsample) trained by
  the engine on a reduced digit-canvas task, once with the digits enlarged by nearest-neighbour
  (``segment.resize='nearest'``, the recipe's labels: blocky, which favours nearest) and once by bilinear
  interpolation (``segment.resize='bilinear'``), compared on validation mIoU; beside it the checkerboard artefacts
  of each up-sampler (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts", Distill), measured as the
  period-2 share of :func:`period2_share`.
* Claim 4 — ``F.conv_transpose2d`` against zero insertion + padding + ``F.conv2d`` (Dumoulin & Visin 2016, "A guide
  to convolution arithmetic for deep learning", §4), with and without the two steps the notes leave out: the
  spatial flip of the kernel and the swap of its in/out channels.
* Claim 5 — ``F.max_unpool2d`` and ``Upsample2x('unpool')`` against a scatter of the values into zeros at the
  indices ``F.max_pool2d(return_indices=True)`` recorded (SegNet, Badrinarayanan et al. 2017), plus ties and
  overlapping windows.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ...config import RunConfig
from ...layers.upsample import METHODS, Upsample2x
from . import lab as L
from .claim import CAVEATS, FAILS, HOLDS, UNDECIDED, Finding, Lab
from .stats import Spread, compare, welch

# -- claim 3 ---------------------------------------------------------------------------------------------------
RESIZES = ("nearest", "bilinear")  # how the digits (and so their label strokes) are enlarged onto the canvas
MIN_MIOU = 0.6  # below this best validation mIoU the task was not learned, and the comparison says nothing


def small_segment_config(upsample: str, resize: str) -> RunConfig:
    """The segmentation recipe (vitlab.recipes.segment) cut to ~5 s a run on one CPU thread.

    One 8×8 digit enlarged 2× fills a 16×16 canvas (``max_digits=1``: the digit always sits at (0, 0), so the
    task is stroke mask + digit class), a 2-block, 32-wide encoder with the recipe's ``conv+avgpool`` stem and patch
    4 (so the decoder still doubles twice, 4×4 -> 8×8 -> 16×16), a 16-wide decoder, 1,000 training canvases for
    10 epochs at lr 6e-3, batch 16. Nearest reached 0.86 val mIoU at seed 0 this way (the recipe: 0.85 in 30
    epochs on 32×32 canvases). One thread: these small ops gain little from a second one (4.0 s vs 4.3 s a run)
    and lose ~10× when another process holds the other core.
    """
    from ...recipes.segment import segment

    base = segment()
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, img_size=16, dim=32, depth=2, heads=2),
        optim=dataclasses.replace(base.optim, epochs=10, batch_size=16, lr=6e-3),
        segment=dataclasses.replace(base.segment, upsample=upsample, resize=resize, canvas=16, max_digits=1,
                                    scale=2, width=16, train_images=1000, val_images=200, test_images=200),
        threads=1, tensorboard=False, progress=False)


def period2_share(y: torch.Tensor) -> float:
    """The share of a map's variation that is a period-2 (checkerboard) pattern.

    For each (H, W) map y (H, W even) with its mean ȳ removed, the energy in the three patterns that alternate
    every pixel — a_i = (-1)^i (rows), b_j = (-1)^j (columns), c_ij = (-1)^(i+j) (checkerboard) — divided by all
    its energy:

        share = [⟨y, a⟩² + ⟨y, b⟩² + ⟨y, c⟩²] / (H·W · Σ (y - ȳ)²)

    The three patterns are orthogonal, orthogonal to the constant, and of squared norm H·W, so the share lies in
    [0, 1]: it is the fraction of the 2-D DFT's non-constant energy at the Nyquist frequencies (H/2, 0), (0, W/2)
    and (H/2, W/2), where a checkerboard artefact (Odena et al. 2016) shows up. Sums run over every map of the
    batch and channels; a constant output has no variation and a share of 0. White noise has 3 / (H·W - 1) on
    average; a checkerboard, or a lattice with one value in every 2×2 block, has 1.

    Shape:
        y (..., H, W) -> a float.
    """
    h, w = y.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"period2_share needs an even height and width, got {h}x{w}")
    y = y.detach().double().reshape(-1, h, w)  # (M, H, W)
    y = y - y.mean((-2, -1), keepdim=True)
    rows = (-1.0) ** torch.arange(h, dtype=torch.float64).view(h, 1)  # (H, 1)
    cols = (-1.0) ** torch.arange(w, dtype=torch.float64).view(1, w)  # (1, W)
    period2 = sum(float(((y * p).sum((-2, -1)) ** 2).sum()) for p in (rows, cols, rows * cols))
    energy = h * w * float((y ** 2).sum())
    return period2 / energy if energy > 0 else 0.0


def smooth_map(n: int = 16) -> torch.Tensor:
    """cos(2πi/n) + cos(2πj/n): the smoothest non-constant n×n map, with no period-2 energy. Shape: (n, n)."""
    t = torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)
    return t.view(n, 1) + t.view(1, n)


def initialised_shares(seeds: list[int], channels: int = 16, n: int = 16) -> dict[str, dict[str, Spread]]:
    """Period-2 share of each freshly built Upsample2x fed a constant and a smooth (C, n/2, n/2) map.

    The input is the 2×2 max pool of a constant or a :func:`smooth_map` n×n image, and 'unpool' takes the pool's
    indices, as the Segmenter's unpool path does (for the constant image every block is a tie, which PyTorch
    resolves to the block's first position). Only 'transposed' depends on the seed (its random kernel).
    """
    out: dict[str, dict[str, Spread]] = {}
    for method in METHODS:
        shares = {"constant": [], "smooth": []}
        for seed in seeds:
            torch.manual_seed(seed)
            up = Upsample2x(method, channels).double()
            for kind, image in (("constant", torch.ones(n, n, dtype=torch.float64)), ("smooth", smooth_map(n))):
                big = image.expand(1, channels, n, n)  # (1, C, n, n)
                x, idx = F.max_pool2d(big, 2, return_indices=True)  # (1, C, n/2, n/2)
                with torch.no_grad():
                    shares[kind].append(period2_share(up(x, idx)))  # output (1, C, n, n)
        out[method] = {kind: Spread(tuple(v)) for kind, v in shares.items()}
    return out


@torch.no_grad()
def blank_canvas_share(run_dir: Path) -> float:
    """Period-2 share of a trained Segmenter's class logits on a blank (all-background, constant) canvas."""
    from ...train.artifacts import load_segmenter

    model, meta = load_segmenter(run_dir)
    side = model.cfg.img_size
    blank = (torch.zeros(1, 1, side, side) - torch.tensor(meta["mean"]).view(1, -1, 1, 1)) \
        / torch.tensor(meta["std"]).view(1, -1, 1, 1)  # (1, 1, H, W), standardised as in training
    return period2_share(model(blank))  # logits (1, K, H, W)


def upsample_outcome(miou: dict[str, list[float]]) -> tuple[int, str, str]:
    """How bilinear fares among the methods of one setting, by validation mIoU over seeds.

    Returns (score, best method, the one compared with it): +1 bilinear has the best mean and Welch's test
    separates it from the runner-up; -1 another method has the best mean and is separable from bilinear; 0 the
    best and its comparison are within the seed spread.
    """
    ranked = sorted(miou, key=lambda m: Spread(tuple(miou[m])).mean, reverse=True)
    best = ranked[0]
    other = ranked[1] if best == "bilinear" else "bilinear"
    if not welch(miou[best], miou[other]).separable:
        return 0, best, other
    return (1 if best == "bilinear" else -1), best, other


def claim3_verdict(scores: list[int], best_mious: list[float]) -> str:
    """Verdict over the resize settings: HOLDS if bilinear is separably best in all of them, FAILS if another
    method separably beats it in some and it is separably best in none, CAVEATS if it depends on the setting or
    bilinear is separably best only in some, UNDECIDED if nothing separates or a setting was not learned."""
    if min(best_mious) < MIN_MIOU or all(s == 0 for s in scores):
        return UNDECIDED
    if all(s == 1 for s in scores):
        return HOLDS
    if 1 not in scores:
        return FAILS
    return CAVEATS


def train_upsamplers(lab: Lab) -> tuple[dict[str, dict[str, list[dict]]], float]:
    """Every (resize, upsample) setting trained by the engine for each of ``lab.seed_list()``.

    Returns ({resize: {upsample: [metrics.json of each seed + 'blank_share']}}, seconds taken).
    """
    from ...train.loop import fit

    results: dict[str, dict[str, list[dict]]] = {r: {m: [] for m in METHODS} for r in RESIZES}
    start = time.perf_counter()
    with L.one_thread():  # each run is set to one thread (small_segment_config), which fit applies process-wide
        for resize in RESIZES:
            for method in METHODS:
                cfg = small_segment_config(method, resize)
                for s in lab.seed_list():
                    run_dir = fit(dataclasses.replace(cfg, name=f"claim3_{resize}_{method}_s{s}",
                                                      out_dir=str(lab.runs), progress=False, seed=s))
                    row = json.loads((run_dir / "metrics.json").read_text())
                    row["blank_share"] = blank_canvas_share(run_dir)
                    results[resize][method].append(row)
    return results, time.perf_counter() - start


def claim3(lab: Lab) -> Finding:
    """Bilinear vs nearest, transposed and unpool in the segmentation decoder, with nearest- and bilinear-enlarged
    labels, on validation mIoU over ``lab.seeds`` seeds; and each up-sampler's checkerboard share."""
    results, seconds = train_upsamplers(lab)
    return claim3_finding(lab, results, initialised_shares(lab.seed_list()), seconds)


def claim3_finding(lab: Lab, results: dict[str, dict[str, list[dict]]], init: dict[str, dict[str, Spread]],
                   seconds: float) -> Finding:
    """The verdict, table and plot of claim 3 from the runs' metrics (see :func:`train_upsamplers`)."""
    val = {r: {m: [row["val_miou"] for row in results[r][m]] for m in METHODS} for r in RESIZES}
    outcomes = {r: upsample_outcome(val[r]) for r in RESIZES}
    best_mious = [Spread(tuple(val[r][outcomes[r][1]])).mean for r in RESIZES]
    verdict = claim3_verdict([outcomes[r][0] for r in RESIZES], best_mious)
    n_seeds = len(val[RESIZES[0]][METHODS[0]])

    evidence = [f"Engine runs (`fit`, `small_segment_config`) on 16×16 one-digit canvases, 10 epochs, {n_seeds} "
                f"seeds a setting, {seconds:.0f} s in all; val/test mIoU (11 classes, background included) in %, "
                f"mean ± std over seeds.", "",
                "| segment.resize | segment.upsample | val mIoU | test mIoU | period-2 share, trained, blank canvas |",
                "|---|---|---|---|---|"]
    for r in RESIZES:
        for m in METHODS:
            test = Spread(tuple(row["test_miou"] for row in results[r][m]))
            mark = " **best**" if m == outcomes[r][1] else ""
            evidence.append(f"| {r} | {m}{mark} | {Spread(tuple(val[r][m])).fmt()} | {test.fmt()} | "
                            f"{Spread(tuple(row['blank_share'] for row in results[r][m])).fmt(1.0, 3)} |")
    evidence.append("")
    for r in RESIZES:
        _, best, other = outcomes[r]
        evidence.append(f"- resize={r}, best vs {'runner-up' if best == 'bilinear' else 'bilinear'}: "
                        + compare(best, val[r][best], other, val[r][other]))
        evidence += [f"  - bilinear vs {m}: " + compare("bilinear", val[r]["bilinear"], m, val[r][m])
                     for m in METHODS if m not in ("bilinear", best, other)]
    evidence += ["", "Checkerboard artefacts (Odena et al. 2016): the share of the output's variation at the period-2 "
                 "(Nyquist) frequencies (`period2_share`: 0 = none, 1 = all of it, white noise ≈ 0.012 at 16×16) "
                 "of each Upsample2x as initialised, fed the 2×2 max pool of a constant or a smooth 16×16 map "
                 "(unpool with that pool's indices); transposed over the seeds' random kernels.", "",
                 "| upsample | constant input | smooth input |", "|---|---|---|"]
    evidence += [f"| {m} | {init[m]['constant'].fmt(1.0, 3)} | {init[m]['smooth'].fmt(1.0, 3)} |" for m in METHODS]

    def said(r: str) -> str:
        score, best, other = outcomes[r]
        a, b = Spread(tuple(val[r][best])), Spread(tuple(val[r][other]))
        sep = "separable" if score else "within the seed spread"
        return f"with {r}-enlarged labels {best} was best ({a.mean * 100:.1f}% vs {other} {b.mean * 100:.1f}%, {sep})"

    low = [r for r, b in zip(RESIZES, best_mious) if b < MIN_MIOU]
    blank = {m: max(Spread(tuple(row["blank_share"] for row in results[r][m])).mean for r in RESIZES)
             for m in METHODS}
    below = [m for m in METHODS if m != "bilinear" and all(
        Spread(tuple(val[r][m])).mean < Spread(tuple(val[r]["bilinear"])).mean
        and welch(val[r]["bilinear"], val[r][m]).separable for r in RESIZES)]
    why = ("; ".join(said(r) for r in RESIZES)
           + (f"; but the best val mIoU stayed below {MIN_MIOU:.0%} with {', '.join(low)} labels" if low else "")
           + (f"; {' and '.join(below)} fell separably below bilinear in both" if below else "")
           + "; period-2 (checkerboard) share, as initialised on a constant input / trained on a blank canvas "
             "(the larger over the resizes): "
           + ", ".join(f"{m} {init[m]['constant'].mean:.2f}/{blank[m]:.2f}" for m in METHODS) + ".")
    return Finding(verdict, why[0].upper() + why[1:], evidence, [_plot3(lab, val, init, results)])


def _plot3(lab: Lab, val: dict[str, dict[str, list[float]]], init: dict[str, dict[str, Spread]],
           results: dict[str, dict[str, list[dict]]]) -> str:
    plt = L.pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    x = range(len(METHODS))
    for k, r in enumerate(RESIZES):
        spreads = [Spread(tuple(val[r][m])) for m in METHODS]
        ax.bar([i + (k - 0.5) * 0.38 for i in x], [s.mean for s in spreads], 0.38, yerr=[s.std for s in spreads],
               capsize=3, label=f"labels enlarged by {r}")
    ax.set_xticks(list(x), METHODS)
    ax.set_ylabel("val mIoU (mean ± std over seeds)")
    ax.set_ylim(max(0.0, min(min(v) for r in RESIZES for v in val[r].values()) - 0.1), 1.0)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("segment.upsample, 16×16 digit canvases")
    bars = [("constant input, initialised", [init[m]["constant"].mean for m in METHODS]),
            ("smooth input, initialised", [init[m]["smooth"].mean for m in METHODS])]
    bars += [(f"blank canvas, trained ({r} labels)",
              [Spread(tuple(row["blank_share"] for row in results[r][m])).mean for m in METHODS]) for r in RESIZES]
    for k, (label, values) in enumerate(bars):
        bx.bar([i + (k - 1.5) * 0.2 for i in x], values, 0.2, label=label)
    bx.set_xticks(list(x), METHODS)
    bx.set_ylabel("period-2 share of the output")
    bx.set_ylim(0, 1.05)
    bx.legend(loc="upper left", fontsize=8)
    bx.set_title("checkerboard energy (period2_share)")
    return L.savefig(fig, lab, "claim3_upsampling.png")


# -- claim 4 ---------------------------------------------------------------------------------------------------
CLAIM4_CASES = ((2, 2, 0), (3, 2, 1), (4, 2, 1), (3, 3, 0), (3, 1, 1), (5, 2, 4))  # (kernel, stride, padding)


def zero_insertion_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                             padding: int, *, flip: bool = True, swap: bool = True) -> torch.Tensor:
    """A transposed convolution as zero insertion + padding + an ordinary convolution (Dumoulin & Visin 2016, §4).

    Insert ``stride - 1`` zeros between neighbouring inputs, pad every side by ``k - 1 - padding`` (negative:
    crop), and convolve at stride 1 with the kernel flipped in both spatial axes and its two channel axes swapped
    (``ConvTranspose2d`` stores it as (C_in, C_out, k, k), ``conv2d`` wants (C_out, C_in, k, k)). ``flip=False`` or
    ``swap=False`` leaves that step out, to show what it is worth.

    Shape:
        x (B, C_in, H, W), weight (C_in, C_out, k, k) -> (B, C_out, (H-1)·s - 2p + k, (W-1)·s - 2p + k).
    """
    b, c, h, w = x.shape
    k = weight.shape[-1]
    spread = x.new_zeros(b, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    spread[:, :, ::stride, ::stride] = x  # (B, C_in, (H-1)s+1, (W-1)s+1)
    edge = k - 1 - padding
    spread = F.pad(spread, (edge,) * 4)  # (B, C_in, (H-1)s+1+2(k-1-p), ...)
    kernel = weight.transpose(0, 1) if swap else weight  # (C_out, C_in, k, k) when swapped
    kernel = kernel.flip(-2, -1) if flip else kernel
    return F.conv2d(spread, kernel, bias)  # (B, C_out, (H-1)s-2p+k, (W-1)s-2p+k)


def transpose_errors(cases=CLAIM4_CASES, c_in: int = 3, c_out: int = 2, recipe=zero_insertion_transpose,
                     seed: int = 0) -> list[dict]:
    """Max |F.conv_transpose2d - recipe| for each (k, s, p): the recipe as given, without the flip and without
    the swap (``None`` where conv2d refuses the unswapped kernel's channels), in float64."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for k, s, p in cases:
        x = torch.randn(2, c_in, 5, 4, generator=g, dtype=torch.float64)
        weight = torch.randn(c_in, c_out, k, k, generator=g, dtype=torch.float64)
        bias = torch.randn(c_out, generator=g, dtype=torch.float64)
        ref = F.conv_transpose2d(x, weight, bias, stride=s, padding=p)  # (B, C_out, H', W')
        row = {"k": k, "s": s, "p": p, "shape": tuple(ref.shape)}
        for name, kw in (("recipe", {}), ("no flip", {"flip": False}), ("no swap", {"swap": False})):
            try:
                row[name] = float((recipe(x, weight, bias, s, p, **kw) - ref).abs().max())
            except RuntimeError:  # the unswapped (C_in, C_out) kernel expects C_out input channels
                row[name] = None
        rows.append(row)
    return rows


def claim4(lab: Lab) -> Finding:
    """F.conv_transpose2d against zero insertion + convolution, with and without the kernel's flip and swap."""
    rows = transpose_errors()
    square = transpose_errors(cases=((3, 2, 1),), c_in=3, c_out=3, seed=1)[0]  # C_in = C_out: the swap fits
    tol = 1e-10
    exact = all(r["recipe"] is not None and r["recipe"] < tol for r in rows)
    flip_matters = [r for r in rows if r["no flip"] is None or r["no flip"] > tol]
    swap_matters = all(r["no swap"] is None for r in rows) and (square["no swap"] or 0.0) > tol
    fmt = lambda v: "conv2d refuses (channels)" if v is None else f"{v:.1e}"  # noqa: E731
    evidence = ["Max |F.conv_transpose2d − zero insertion + pad k−1−p + conv2d|, float64, C_in = 3, C_out = 2, "
                "input 5×4, random kernel and bias:", "",
                "| k | s | p | output | flipped + swapped | not flipped | not swapped |",
                "|---|---|---|---|---|---|---|"]
    evidence += [f"| {r['k']} | {r['s']} | {r['p']} | {r['shape'][2]}×{r['shape'][3]} | {fmt(r['recipe'])} | "
                 f"{fmt(r['no flip'])} | {fmt(r['no swap'])} |" for r in rows]
    evidence += ["", f"- With C_in = C_out = 3 (k=3, s=2, p=1) the unswapped kernel fits and is silently wrong: max "
                 f"diff {fmt(square['no swap'])} (swapped: {fmt(square['recipe'])})."]
    if not exact:
        verdict = FAILS
        why = (f"Zero insertion + padding + the flipped, channel-swapped convolution missed F.conv_transpose2d by "
               f"up to {max(r['recipe'] or math.inf for r in rows):.1e}.")
    elif flip_matters or swap_matters:
        verdict = CAVEATS
        worst_flip = max((r["no flip"] or 0.0) for r in rows)
        why = (f"It matches F.conv_transpose2d to {max(r['recipe'] for r in rows):.0e} in all {len(rows)} "
               f"(k, s, p) cases only with the kernel flipped spatially and its in/out channels swapped: unflipped "
               f"it is off by up to {worst_flip:.2f} ({len(flip_matters)} of {len(rows)} cases), unswapped conv2d "
               f"refuses the kernel when C_in ≠ C_out and is off by {square['no swap'] or 0.0:.2f} when they are "
               f"equal.")
    else:
        verdict = HOLDS
        why = f"Zero insertion + convolution matches F.conv_transpose2d to {max(r['recipe'] for r in rows):.0e}."
    return Finding(verdict, why, evidence)


# -- claim 5 ---------------------------------------------------------------------------------------------------
def scatter_unpool(values: torch.Tensor, indices: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Each value written into a zero map at its flat index (row · W + col) in its own (batch, channel) plane.

    Shape:
        values, indices (B, C, h, w) -> (B, C, H, W) with (H, W) = out_hw.
    """
    b, c = values.shape[:2]
    out = values.new_zeros(b, c, out_hw[0] * out_hw[1])  # (B, C, H·W)
    out.scatter_(-1, indices.flatten(2), values.flatten(2))
    return out.view(b, c, *out_hw)  # (B, C, H, W)


def block_argmax_by_hand(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """The flat index (row · W + col) of the first maximum in scan order of each k×k window, by Python loops:
    the reference for what ``F.max_pool2d(return_indices=True)`` records. Shape: (B, C, H, W) -> (B, C, h, w)."""
    b, c, h, w = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = torch.empty(b, c, oh, ow, dtype=torch.long)
    for n in range(b):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    window = x[n, ch, i * stride:i * stride + k, j * stride:j * stride + k].flatten().tolist()
                    r, q = divmod(window.index(max(window)), k)
                    out[n, ch, i, j] = (i * stride + r) * w + j * stride + q
    return out


def unpool_errors(unpool=None, seed: int = 0) -> dict[str, float]:
    """Max |unpool - scatter| over random maps for 2×2 windows (F.max_unpool2d and Upsample2x('unpool'), or the
    ``unpool(values, indices)`` given), and for overlapping 3×3 windows at stride 2; and the indices against
    :func:`block_argmax_by_hand`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 8, 10, generator=g, dtype=torch.float64)  # continuous: no ties
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)  # (2, 3, 4, 5)
    ref = scatter_unpool(pooled, idx, (8, 10))
    feats = torch.randn(pooled.shape, generator=g, dtype=torch.float64)  # a decoder unpools other values
    errs = {"indices vs hand argmax (count wrong)": float((idx != block_argmax_by_hand(x, 2, 2)).sum())}
    unpools = {"given": unpool} if unpool is not None else {
        "F.max_unpool2d": lambda v, i: F.max_unpool2d(v, i, 2), "Upsample2x('unpool')": Upsample2x("unpool", 3)}
    for name, fn in unpools.items():
        errs[name] = max(float((fn(pooled, idx) - ref).abs().max()),
                         float((fn(feats, idx) - scatter_unpool(feats, idx, (8, 10))).abs().max()))
    y = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64)
    p3, i3 = F.max_pool2d(y, 3, stride=2, return_indices=True)  # (2, 3, 4, 4), windows overlap by one pixel
    wrong = float((i3 != block_argmax_by_hand(y, 3, 2)).sum())
    errs["overlapping 3×3/2: indices vs hand argmax (count wrong)"] = wrong
    errs["overlapping 3×3/2: F.max_unpool2d"] = float((F.max_unpool2d(p3, i3, 3, stride=2, output_size=(9, 9))
                                                       - scatter_unpool(p3, i3, (9, 9))).abs().max())
    return errs


def tie_and_overlap_facts(seed: int = 0) -> dict[str, float]:
    """What the claim leaves open: where a tie goes, how often overlapping windows share a position, and that
    pooling the unpooled map gives back max(value, 0), not the value (the zeros outrank negative maxima)."""
    g = torch.Generator().manual_seed(seed)
    const = torch.full((1, 1, 4, 4), 2.0)
    _, idx = F.max_pool2d(const, 2, return_indices=True)
    first = torch.tensor([[0, 2], [8, 10]])  # the top-left position of each 2×2 block
    y = torch.randn(64, 1, 9, 9, generator=g)
    _, i3 = F.max_pool2d(y, 3, stride=2, return_indices=True)  # (64, 1, 4, 4)
    distinct = sum(len(set(row.tolist())) for row in i3.flatten(1))
    x = torch.randn(64, 1, 8, 8, generator=g)
    p, i = F.max_pool2d(x, 2, return_indices=True)
    again = F.max_pool2d(F.max_unpool2d(p, i, 2), 2)
    return {"ties go to the first position": float(torch.equal(idx[0, 0], first)),
            "overlap: windows sharing a position": 1 - distinct / i3.numel(),
            "negative maxima": float((p < 0).float().mean()),
            "pool(unpool(p)) vs max(p, 0)": float((again - p.clamp_min(0)).abs().max()),
            "pool(unpool(p)) vs p": float((again - p).abs().max())}


def claim5(lab: Lab) -> Finding:
    """F.max_unpool2d and Upsample2x('unpool') against a scatter at the recorded indices; ties and overlaps."""
    errs = unpool_errors()
    facts = tie_and_overlap_facts()
    exact = all(v == 0 for v in errs.values())
    evidence = ["Max |unpool − scatter of the pooled values into zeros at the recorded flat indices| (float64; "
                "the values unpooled are the pooled maxima and, as in a decoder, other values at the same indices); "
                "the indices themselves against a Python-loop arg-max of each window:", "",
                "| check | max abs diff / wrong count |", "|---|---|"]
    evidence += [f"| {name} | {int(v) if 'count' in name else f'{v:.1e}'} |" for name, v in errs.items()]
    evidence += ["", f"- Ties: in a constant map every 2×2 block is a tie and the recorded position is the block's "
                 f"first in scan order (top-left): {'yes' if facts['ties go to the first position'] else 'no'} "
                 f"(PyTorch's CPU kernel; the documentation promises no order).",
                 f"- Overlapping 3×3 windows at stride 2: {facts['overlap: windows sharing a position']:.1%} of the "
                 f"positions the windows of a random 9×9 map record are repeats of one another window recorded; "
                 f"both write the same input value there, so the scatter is still well defined, but fewer distinct "
                 f"values come back than windows went in.",
                 f"- Unpooling is not an inverse: {facts['negative maxima']:.0%} of the 2×2 maxima of a random map "
                 f"are negative, and the zeros around them win the next pool: max |pool(unpool(p)) − p| = "
                 f"{facts['pool(unpool(p)) vs p']:.2f}, while |pool(unpool(p)) − max(p, 0)| = "
                 f"{facts['pool(unpool(p)) vs max(p, 0)']:.0e}."]
    if exact:
        verdict = HOLDS
        tie = ("the window's first position" if facts["ties go to the first position"]
               else "a position other than the window's first")
        why = ("F.max_unpool2d and Upsample2x('unpool') equal a scatter of each value into zeros at the index "
               f"max_pool2d recorded, exactly (max diff 0, also for overlapping 3×3/2 windows); a tie records {tie}.")
    else:
        bad = [name for name, v in errs.items() if v != 0]
        verdict = FAILS
        why = f"Unpooling differs from the scatter at the recorded indices: {', '.join(bad)}."
    return Finding(verdict, why, evidence)
