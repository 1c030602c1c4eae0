"""Claim 10: does ``kaiming_normal_(mode='fan_out')`` keep the signal's variance from vanishing or exploding?

He et al. 2015 ("Delving Deep into Rectifiers", section 2.2) follow the variance through a plain ReLU network. A
conv layer l with a k×k kernel, c_in inputs and c_out outputs, weights of variance v_l and zero biases gives, for
its output y_l (pre-activation) and the gradient Δx_l w.r.t. its input,

    forward:   Var[y_l]  = k²·c_in_l · v_l · ½ Var[y_(l-1)]            (½: ReLU keeps half the 2nd moment)
    backward:  Var[Δx_l] = k²·c_out_l · v_l · ½ Var[Δx_(l+1)]

so v = 2 / (k² c_in) ("fan_in") keeps the forward pass and v = 2 / (k² c_out) ("fan_out") the backward pass, each
exactly layer by layer. Each also keeps the other pass from vanishing *exponentially*: with fan_out the forward
variance changes by c_in_l / c_out_l a layer, a product that telescopes to c_out_1 / c_out_L over the stack (and
the mirror for fan_in). The two modes coincide where every layer keeps its width, so the stack here widens (32
→ 256 channels, as a CNN does). Against them: a normal of std 0.02 (the ViT/DeiT init, vitlab's ``trunc_normal``) and
Glorot & Bengio's (2010) xavier normal, v = 2 / (k² (c_in + c_out)), meant for linear/tanh units, which under ReLU
halves the variance a layer.

The variance is measured at initialisation on random images: each layer's output y_l (forward) and the gradient
w.r.t. it (backward, from ``(y_L · g).sum()`` with g ~ N(0, 1), so the top gradient has variance 1), and compared
with He et al.'s prediction. Their formulas are expectations over the weights; one draw of a finite-width net strays
from them multiplicatively, layer after layer (a log-normal spread, Hanin 2018), most in the forward pass (after a
ReLU every channel has a positive mean, a single direction that carries a third of the energy and that each output
channel's weights sum over). So the ratios are averaged (arithmetic mean) over 20 draws, with their range beside
them: one draw's forward ratio lies anywhere in about ×¼ … ×3 of the expectation here. The padding is circular so
that every output sums exactly k²·c_in terms, as the derivation assumes (zero padding would lose some at the border,
28 of the 64 pixels of an 8×8 map, about 16% of the variance a layer: 24 edge pixels miss 3 of 9 taps, 4 corners 5).
The same is done for a 12-block ViT (vitlab's, ``model.init``) block by block, where pre-norm LayerNorms and
residual sums, not the fan mode, are what set the scale.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
from torch import nn

from .claim import CAVEATS, FAILS, HOLDS, Finding, Lab
from .lab import one_thread, pyplot, savefig
from ...config import ModelConfig
from ...layers.init import trunc_normal_std_
from ...models.vit import ViT

KERNEL = 3
IN_CHANS = 32
# 18 convs, widening 32 -> 256 channels in three doublings: fan_in and fan_out differ at the widening layers
WIDTHS = (32,) * 5 + (64,) * 4 + (128,) * 4 + (256,) * 5
SIZE, BATCH = 8, 4  # 256 positions a channel: the weights' draw, not the input's, is what varies
CONV_SEEDS = 20  # draws of the stack: cheap, and one draw strays far from the expectation (module docstring)
VIT_BATCH = 8
KEPT = 2.0  # a pass "keeps" its variance when last/first is within this factor of 1 over the whole depth
VANISHED = 1e-3  # ... and has vanished (or exploded) beyond this factor

SCHEMES = {
    "kaiming fan_in": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    "kaiming fan_out": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
    "trunc-normal 0.02": lambda w: trunc_normal_std_(w, std=0.02),
    "xavier normal": lambda w: nn.init.xavier_normal_(w),  # gain 1, Glorot & Bengio's own
}


def weight_variance(scheme: str, c_in: int, c_out: int, k: int = KERNEL) -> float:
    """The variance each scheme draws a k×k conv's weights with (PyTorch's fans: k²·c_in and k²·c_out)."""
    fan_in, fan_out = k * k * c_in, k * k * c_out
    return {"kaiming fan_in": 2 / fan_in, "kaiming fan_out": 2 / fan_out, "trunc-normal 0.02": 0.02 ** 2,
            "xavier normal": 2 / (fan_in + fan_out)}[scheme]


def predicted_ratios(scheme: str, widths=WIDTHS, in_chans: int = IN_CHANS, k: int = KERNEL) -> tuple[float, float]:
    """He et al.'s eqs. 8 and 13 multiplied over the stack: (Var[y_L] / Var[y_1], Var[Δy_1] / Var[Δy_L]).

    Forward: layers 2..L each multiply by ½ k² c_in v. Backward: the gradient w.r.t. y_(l-1) is ReLU' times the one
    w.r.t. x_l, so layers L..2 each multiply by ½ k² c_out v.
    """
    c_ins = (in_chans, *widths[:-1])
    fwd = bwd = 1.0
    for c_in, c_out in list(zip(c_ins, widths))[1:]:
        v = weight_variance(scheme, c_in, c_out, k)
        fwd *= 0.5 * k * k * c_in * v
        bwd *= 0.5 * k * k * c_out * v
    return fwd, bwd


def conv_stack(scheme: str, widths=WIDTHS, in_chans: int = IN_CHANS, init=None) -> nn.ModuleList:
    """Plain 3×3 convs (no norm, no bias, circular padding), each followed by a ReLU in :func:`stack_stds`.

    ``init`` (a function of the weight) replaces the scheme's own draw: the tests use it to plant a wrong one.
    """
    c_ins = (in_chans, *widths[:-1])
    convs = nn.ModuleList(nn.Conv2d(c_in, c_out, KERNEL, padding=KERNEL // 2, padding_mode="circular", bias=False)
                          for c_in, c_out in zip(c_ins, widths))
    draw = init or SCHEMES[scheme]
    with torch.no_grad():
        for conv in convs:
            draw(conv.weight)
    return convs


@dataclass(frozen=True)
class Profile:
    """Std of the signal at each layer: forward (layer outputs) and backward (the gradient w.r.t. them)."""

    forward: tuple[float, ...]
    backward: tuple[float, ...]

    @property
    def forward_ratio(self) -> float:
        """Var at the last layer over Var at the first: where the forward signal ends over where it starts."""
        return (self.forward[-1] / self.forward[0]) ** 2

    @property
    def backward_ratio(self) -> float:
        """Var at the first layer over Var at the last: where the gradient ends over where it starts."""
        return (self.backward[0] / self.backward[-1]) ** 2


def _profile(outputs: list[torch.Tensor], top: torch.Tensor, seed: int) -> Profile:
    """Back-propagate ``(top · g).sum()``, g ~ N(0, 1) drawn from ``seed``, and read each output's std and grad std."""
    g = torch.randn(top.shape, generator=torch.Generator().manual_seed(seed + 10_000))
    (top * g).sum().backward()
    return Profile(tuple(float(y.detach().std()) for y in outputs), tuple(float(y.grad.std()) for y in outputs))


def stack_stds(convs: nn.ModuleList, seed: int) -> Profile:
    """Feed N(0, 1) images through conv → ReLU → … and profile each conv's output y_l.

    Shape:
        the input is (BATCH, c_in, SIZE, SIZE); every y_l is (BATCH, c_out_l, SIZE, SIZE).
    """
    x = torch.randn(BATCH, convs[0].in_channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    outputs = []
    for i, conv in enumerate(convs):
        y = conv(x if i == 0 else torch.relu(x))  # (B, c_out, H, W)
        y.retain_grad()
        outputs.append(y)
        x = y
    return _profile(outputs, outputs[-1], seed)


def vit_stds(init: str, seed: int, *, dim: int = 192, depth: int = 12) -> Profile:
    """A ViT-Ti-wide, 12-block ViT on 32×32 N(0, 1) images (8×8 patches of 4×4): each block's output (the residual
    stream, before the final norm) and its gradient, from the logits."""
    torch.manual_seed(seed)
    model = ViT(ModelConfig(img_size=32, patch_size=4, in_chans=3, num_classes=10, dim=dim, depth=depth,
                            heads=dim // 64, init=init))
    outputs = []

    def keep(_module, _inputs, out):
        out.retain_grad()
        outputs.append(out)  # (B, N, D)

    for block in model.blocks:
        block.register_forward_hook(keep)
    x = torch.randn(VIT_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    logits = model(x)  # (B, 10)
    return _profile(outputs, logits, seed)


def _rms(stds) -> float:
    """The std of a pooled sample, from the stds of equal-sized parts: the root of their mean variance."""
    return math.sqrt(statistics.fmean(v * v for v in stds))


def _mean_ratios(runs: list[Profile]) -> tuple[float, float]:
    """(forward, backward) ratios averaged over draws: He et al.'s formulas are expectations."""
    return statistics.fmean(p.forward_ratio for p in runs), statistics.fmean(p.backward_ratio for p in runs)


def _kept(ratio: float) -> bool:
    return 1 / KEPT <= ratio <= KEPT


def _gone(ratio: float) -> bool:
    return not VANISHED <= ratio <= 1 / VANISHED


def verdict10(conv: dict[str, tuple[float, float]], vit_fan_out: tuple[float, float]) -> str:
    """From the (forward, backward) ratios of the conv stack per scheme, and of the ViT under kaiming_fan_out.

    FAILS if fan_out lets either pass vanish or explode (beyond ``VANISHED``), or does not keep the backward pass
    (He et al.'s own promise for it); HOLDS if it keeps both passes in the stack and the ViT's; CAVEATS otherwise
    (a pass drifts by more than ``KEPT`` but far less than the exponential loss of a scheme that ignores the fans).
    """
    fwd, bwd = conv["kaiming fan_out"]
    if _gone(fwd) or _gone(bwd) or not _kept(bwd):
        return FAILS
    if _kept(fwd) and all(_kept(r) for r in vit_fan_out):
        return HOLDS
    return CAVEATS


def _word(ratio: float) -> str:
    """How a pass fared, in words, by the thresholds above."""
    if _kept(ratio):
        return "keeps"
    if _gone(ratio):
        return "lets vanish" if ratio < 1 else "lets explode"
    return "shrinks" if ratio < 1 else "grows"


def _off(measured: float, predicted: float) -> float:
    """By what factor (>= 1) a measured ratio misses its prediction."""
    return max(measured / predicted, predicted / measured)


def _fmt(r: float) -> str:
    return f"{r:.3g}" if 1e-3 <= r < 1e4 else f"{r:.1e}"


def _plot10(conv_profiles, vit_profiles, lab: Lab) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = [(conv_profiles, "forward", "conv stack: std of y_l"),
              (conv_profiles, "backward", "conv stack: std of ∂loss/∂y_l"),
              (vit_profiles, "forward", "ViT: std of block output"),
              (vit_profiles, "backward", "ViT: std of its gradient")]
    for ax, (profiles, direction, title) in zip(axes.flat, panels):
        for name, runs in profiles.items():
            per_layer = list(zip(*(getattr(p, direction) for p in runs)))  # (layers, seeds)
            ax.plot(range(1, len(per_layer) + 1), [_rms(v) for v in per_layer], marker=".", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("layer" if profiles is conv_profiles else "block")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return savefig(fig, lab, "claim10_std_per_layer.png")


def claim10(lab: Lab) -> Finding:
    conv_seeds, vit_seeds = lab.seed_list(CONV_SEEDS), lab.seed_list()
    conv_profiles = {}
    with one_thread():
        for name in SCHEMES:
            runs = []
            for s in conv_seeds:
                torch.manual_seed(s)
                runs.append(stack_stds(conv_stack(name), s))
            conv_profiles[name] = runs
        vit_profiles = {init: [vit_stds(init, s) for s in vit_seeds] for init in ("trunc_normal", "kaiming_fan_out")}
    conv = {name: _mean_ratios(runs) for name, runs in conv_profiles.items()}
    vit = {init: _mean_ratios(runs) for init, runs in vit_profiles.items()}
    verdict = verdict10(conv, vit["kaiming_fan_out"])
    (f_out, b_out), (f_in, b_in) = conv["kaiming fan_out"], conv["kaiming fan_in"]
    f_tn, f_xv = conv["trunc-normal 0.02"][0], conv["xavier normal"][0]
    vf, vb = vit["kaiming_fan_out"]
    why = (f"In a {len(WIDTHS)}-layer ReLU conv stack widening {IN_CHANS} → {WIDTHS[-1]} channels, fan_out "
           f"{_word(b_out)} the gradient's variance (first/last {_fmt(b_out)}) and {_word(f_out)} the forward one "
           f"(last/first {_fmt(f_out)}; He et al. predict {_fmt(predicted_ratios('kaiming fan_out')[0])}, the width "
           f"ratio), where fan_in gives {_fmt(f_in)} forward and {_fmt(b_in)} backward and std 0.02 and xavier "
           f"{_fmt(f_tn)} and {_fmt(f_xv)} forward; in the 12-block pre-norm ViT kaiming_fan_out "
           f"{_word(vf)} the block outputs' variance ({_fmt(vf)}) and {_word(vb)} the gradient's ({_fmt(vb)}).")
    evidence = [
        f"Conv stack: {len(WIDTHS)} plain 3×3 convs (circular padding, no bias, no norm), ReLU between, channels "
        f"{IN_CHANS} → {' → '.join(str(w) for i, w in enumerate(WIDTHS) if i == 0 or w != WIDTHS[i - 1])}; "
        f"N(0, 1) inputs ({BATCH}, {IN_CHANS}, {SIZE}, {SIZE}); gradient from `(y_L·g).sum()`, g ~ N(0, 1). "
        f"Ratios of variances, mean over {len(conv_seeds)} draws (min … max), beside He et al.'s eqs. 8 and "
        "13 multiplied over the layers:",
        "",
        "| init | forward Var[y_L]/Var[y_1] | predicted | backward Var[Δy_1]/Var[Δy_L] | predicted |",
        "|---|---|---|---|---|",
    ]
    for name, runs in conv_profiles.items():
        pf, pb = predicted_ratios(name)
        fr, br = [p.forward_ratio for p in runs], [p.backward_ratio for p in runs]
        evidence.append(f"| {name} | {_fmt(conv[name][0])} ({_fmt(min(fr))} … {_fmt(max(fr))}) | {_fmt(pf)} | "
                        f"{_fmt(conv[name][1])} ({_fmt(min(br))} … {_fmt(max(br))}) | {_fmt(pb)} |")
    evidence += [
        "",
        f"ViT: vitlab's ViT, dim 192, 12 blocks, 3 heads, 32×32×3 N(0, 1) inputs in 4×4 patches (65 tokens), batch "
        f"{VIT_BATCH}, {len(vit_seeds)} seeds; block outputs (the residual stream) and their gradients from "
        "`(logits·g).sum()` (stds pooled over the seeds, ratios their mean):",
        "",
        "| model.init | block 1 std | block 12 std | forward Var ratio 12/1 | grad std block 1 | grad std block 12 | "
        "backward Var ratio 1/12 |",
        "|---|---|---|---|---|---|---|",
    ]
    for init, runs in vit_profiles.items():
        evidence.append(
            f"| {init} | {_rms(p.forward[0] for p in runs):.3g} | {_rms(p.forward[-1] for p in runs):.3g} | "
            f"{_fmt(vit[init][0])} | {_rms(p.backward[0] for p in runs):.3g} | "
            f"{_rms(p.backward[-1] for p in runs):.3g} | {_fmt(vit[init][1])} |")
    off = {name: max(_off(conv[name][0], predicted_ratios(name)[0]), _off(conv[name][1], predicted_ratios(name)[1]))
           for name in SCHEMES}
    follows = [name for name, o in off.items() if o <= KEPT]
    evidence += [
        "",
        f"Reading: \"kept\" = within {KEPT:g}× of 1 over the whole depth; \"vanished/exploded\" = beyond "
        f"{1 / VANISHED:g}×. He et al.'s eqs. 8 and 13 predict the mean ratios within {KEPT:g}× for "
        f"{', '.join(follows) or 'none of the schemes'} (largest miss {max(off.values()):.2f}×). fan_in "
        f"{_word(f_in)} the forward pass ({_fmt(f_in)}) and {_word(b_in)} the backward one ({_fmt(b_in)}); fan_out "
        f"{_word(f_out)} the forward pass ({_fmt(f_out)}) and {_word(b_out)} the backward one ({_fmt(b_out)}); the "
        f"overall width ratio is {WIDTHS[-1] // WIDTHS[0]}. A single draw strays from the mean by the range shown "
        "(finite width). In the pre-norm ViT each branch starts from a LayerNorm, so the fan mode sets how much each "
        "block adds to the residual stream rather than a product over the depth: kaiming_fan_out "
        f"{_word(vf)} the stream ({_fmt(vf)}), trunc_normal {_word(vit['trunc_normal'][0])} it "
        f"({_fmt(vit['trunc_normal'][0])}).",
    ]
    return Finding(verdict, why, evidence, [_plot10(conv_profiles, vit_profiles, lab)])
