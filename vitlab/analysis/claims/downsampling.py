"""Claims 1, 2, 11 and 14: what down-sampling keeps, what it costs, and what it sees.

* Claim 1 — max vs average pooling on texture: on generated textures that share their mean intensity
  (:func:`.lab.textures`), first the pooling alone (a logistic regression on the pooled pixels), then as the
  down-sampling of a ViT's convolutional stem (``conv+maxpool`` vs ``conv+avgpool``, vitlab.layers.stems), and
  the time of each pool beside the convolution it follows.
* Claim 2 — a learned stride-2 convolution vs pooling (Springenberg et al. 2015, "Striving for Simplicity: The All
  Convolutional Net", replace each pool by a stride-2 conv): at equal layers (the conv itself at stride 2: less
  compute), with a learned 3×3 stride-2 layer in place of the pool (more compute), and against a pooling network
  widened to the same FLOPs (matched compute).
* Claim 11 — receptive fields by the recurrence r_l = r_{l−1} + (k_l − 1)·j_{l−1}, j_l = j_{l−1}·s_l (Araujo et
  al. 2019, "Computing Receptive Fields of Convolutional Neural Networks"), checked against the support of the
  input gradient of one output unit.
* Claim 14 — a CNN with and without down-sampling: FLOPs (PyTorch's FlopCounterMode), receptive field, and the
  train − validation gap after the same training.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ...analysis.receptive_field import from_module, parse_spec, receptive_field
from ...config import ModelConfig
from ...flops import module_flops
from ...models import ViT
from . import lab as L
from .claim import CAVEATS, FAILS, HOLDS, UNDECIDED, Finding, Lab
from .stats import Spread, compare, welch

TEXTURE_NOISE = 0.8  # how much white noise is mixed into each texture: at 0.8 neither stem reaches 100%


# -- claim 1 ---------------------------------------------------------------------------------------------------
def pooled_pixels_accuracy(data: L.Data, pool: str, factor: int = 4) -> float:
    """Validation accuracy of a logistic regression on the images pooled ``factor``× by 'max' or 'avg'.

    What the pooling alone keeps of the classes: nothing is learned before it.
    """
    from sklearn.linear_model import LogisticRegression

    f = F.max_pool2d if pool == "max" else F.avg_pool2d
    feats = lambda x: f(x, factor).flatten(1).numpy()  # noqa: E731  (N, (H/factor)·(W/factor))
    clf = LogisticRegression(max_iter=2000).fit(feats(data.train_x), data.train_y.numpy())
    return float(clf.score(feats(data.val_x), data.val_y.numpy()))


def texture_vit(stem: str) -> ViT:
    """A one-block ViT on 16×16 textures whose stem down-samples 4× by two conv3×3 → BN → ReLU → pool steps."""
    return ViT(ModelConfig(img_size=16, patch_size=4, in_chans=1, num_classes=4, dim=32, depth=1, heads=2,
                           mlp_ratio=2.0, pool="avg", class_token=False, stem=stem))


def pool_costs(shape=(64, 16, 16, 16)) -> dict[str, float]:
    """Median forward + backward seconds of a 2×2 max pool, a 2×2 average pool and the 3×3 conv before them,
    timed in alternation on one (B, C, H, W) input."""
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    conv = nn.Conv2d(shape[1], shape[1], 3, padding=1, bias=False)
    ops = {"max pool 2×2": lambda: F.max_pool2d(x, 2).sum().backward(),
           "avg pool 2×2": lambda: F.avg_pool2d(x, 2).sum().backward(),
           "conv 3×3": lambda: conv(x).sum().backward()}
    times = {name: [] for name in ops}
    for _ in range(5):  # alternate, so a change in the machine's load hits every op alike
        for name, op in ops.items():
            times[name].append(L.median_seconds(op, repeats=10))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def claim1(lab: Lab) -> Finding:
    data = L.texture_data(lab.seed, noise=TEXTURE_NOISE, train=1000)
    raw = {pool: pooled_pixels_accuracy(data, pool) for pool in ("max", "avg")}
    acc: dict[str, list[float]] = {"conv+maxpool": [], "conv+avgpool": []}
    test: dict[str, list[float]] = {"conv+maxpool": [], "conv+avgpool": []}
    curves: dict[str, list[list[float]]] = {"conv+maxpool": [], "conv+avgpool": []}
    for seed in lab.seed_list(5):  # 5 seeds: a run's accuracy depends much on when it takes off
        for stem in acc:
            torch.manual_seed(seed)
            hist = L.train_classifier(texture_vit(stem), data, epochs=8, batch_size=32, lr=2e-3, seed=seed)
            acc[stem].append(hist.val_acc[-1])
            test[stem].append(hist.test_acc)
            curves[stem].append(hist.val_acc)
    cost = pool_costs()
    w = welch(acc["conv+maxpool"], acc["conv+avgpool"])
    max_better = Spread(tuple(acc["conv+maxpool"])).mean > Spread(tuple(acc["conv+avgpool"])).mean
    cheap = cost["max pool 2×2"] <= 2 * cost["avg pool 2×2"] and cost["max pool 2×2"] < cost["conv 3×3"]
    raw_better = raw["max"] > raw["avg"] + 0.05
    evidence = [
        f"Four texture classes (sparse dots, white noise, stripes, blobs; 16×16), each image shifted and scaled to "
        f"mean 0.5 and std 0.2 and mixed with {TEXTURE_NOISE:.0%} white noise (`vitlab.analysis.claims.lab."
        f"textures`): the mean intensity says nothing about the class. 1,000 training, 500 validation images; "
        f"chance is 25%.",
        "",
        f"- **The pooling alone** (4× down-sampling, then a logistic regression on the 4×4 pooled pixels): max "
        f"{raw['max']:.1%}, average {raw['avg']:.1%} on validation. Averaging a zero-mean texture over a block "
        "leaves little of it; the maximum of a block still says how peaked its pixels are.",
        f"- **As the stem's down-sampling** (a one-block ViT whose stem is two conv3×3 → BN → ReLU → pool steps, 8 "
        f"epochs): {compare('conv+maxpool', acc['conv+maxpool'], 'conv+avgpool', acc['conv+avgpool'])} on "
        f"validation; test {Spread(tuple(test['conv+maxpool'])).fmt()}% vs "
        f"{Spread(tuple(test['conv+avgpool'])).fmt()}%.",
        "- **Cost** (median forward + backward on a 64×16×16×16 batch, timed in alternation): "
        + ", ".join(f"{name} {t * 1e3:.3f} ms" for name, t in cost.items())
        + f". Neither pool has weights; max pooling takes {cost['max pool 2×2'] / cost['avg pool 2×2']:.1f}× the "
        f"time of average pooling and {cost['max pool 2×2'] / cost['conv 3×3']:.2f}× that of the 16-channel "
        "convolution before it.",
    ]
    plt = L.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for stem, runs in curves.items():
        mean = torch.tensor(runs).mean(0)
        std = torch.tensor(runs).std(0) if len(runs) > 1 else torch.zeros_like(mean)
        epochs = range(1, len(mean) + 1)
        ax.plot(epochs, mean, label=stem)
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Textures of equal mean: the stem's pooling")
    ax.legend()
    plot = L.savefig(fig, lab, "claim1_texture.png")
    if raw_better and max_better and w.separable and cheap:
        verdict, why = HOLDS, (f"max pooling keeps the textures ({raw['max']:.0%} vs {raw['avg']:.0%} from the "
                               f"pooled pixels alone; {Spread(tuple(acc['conv+maxpool'])).fmt()}% vs "
                               f"{Spread(tuple(acc['conv+avgpool'])).fmt()}% as the stem's down-sampling, p = "
                               f"{w.p:.3f}) and costs about what average pooling costs")
    elif raw_better and cheap:
        verdict, why = CAVEATS, (f"the pooling alone keeps texture ({raw['max']:.0%} vs {raw['avg']:.0%}) and is "
                                 f"cheap, but after a learned convolution the two stems are within the seed spread "
                                 f"({Spread(tuple(acc['conv+maxpool'])).fmt()}% vs "
                                 f"{Spread(tuple(acc['conv+avgpool'])).fmt()}%, p = {w.p:.2f})")
    else:
        verdict, why = FAILS, (f"max pooling did not keep more texture here ({raw['max']:.0%} vs {raw['avg']:.0%} "
                               f"from pooled pixels, p = {w.p:.2f} in the stem) or was not cheap")
    return Finding(verdict, why, evidence, [plot])


# -- claim 2 ---------------------------------------------------------------------------------------------------
def cnn_flops(model: nn.Module, img_size: int = 8) -> int:
    return module_flops(model, (1, 1, img_size, img_size))


def matched_widths(target_flops: int, base=(16, 32), down: str = "max") -> tuple[int, int]:
    """The widths (16k, 32k) of a ``down`` SmallCNN whose FLOPs come closest to ``target_flops``."""
    best = None
    for k in range(16, 64):
        widths = (k, 2 * k) if base == (16, 32) else tuple(round(b * k / 16) for b in base)
        with torch.device("meta"):
            flops = cnn_flops(L.SmallCNN(widths=widths, down=down))
        if best is None or abs(flops - target_flops) < abs(best[1] - target_flops):
            best = (widths, flops)
    return best[0]


def claim2(lab: Lab) -> Finding:
    data = L.digits_data()
    with torch.device("meta"):
        conv_flops = cnn_flops(L.SmallCNN(down="conv"))
    wide = matched_widths(conv_flops)
    variants = {"max pool": dict(down="max"), "stride-2 conv (equal layers)": dict(down="stride"),
                "learned stride-2 layer": dict(down="conv"), f"max pool, widths {wide}": dict(down="max", widths=wide)}
    flops, val, test = {}, {}, {}
    for name, kw in variants.items():
        with torch.device("meta"):
            flops[name] = cnn_flops(L.SmallCNN(**kw))
        val[name], test[name] = [], []
        for seed in lab.seed_list(5):
            torch.manual_seed(seed)
            hist = L.train_classifier(L.SmallCNN(**kw), data, epochs=15, seed=seed)
            val[name].append(hist.val_acc[-1])
            test[name].append(hist.test_acc)
    names = list(variants)
    rows = ["| down-sampling | forward kFLOPs / image | val acc (5 seeds) | test acc |", "|---|---|---|---|"]
    rows += [f"| {n} | {flops[n] / 1e3:.1f} | {Spread(tuple(val[n])).fmt()}% | {Spread(tuple(test[n])).fmt()}% |"
             for n in names]
    extra = welch(val["learned stride-2 layer"], val["max pool"])
    matched = welch(val["learned stride-2 layer"], val[names[3]])
    equal = welch(val["stride-2 conv (equal layers)"], val["max pool"])
    evidence = [
        "A small CNN on the digits (two steps of conv3×3 → BN → ReLU → down-sampling, 16 and 32 channels, global "
        "average pooling, 15 epochs), each down-sampling in turn (`vitlab.analysis.claims.lab.SmallCNN`):", "",
        *rows, "",
        f"- at extra compute (a learned 3×3 stride-2 layer in place of each pool, "
        f"{flops['learned stride-2 layer'] / flops['max pool']:.2f}× the FLOPs): "
        f"{compare('learned', val['learned stride-2 layer'], 'max pool', val['max pool'])};",
        f"- at matched compute (the pooling network widened to {wide}, "
        f"{flops[names[3]] / flops['learned stride-2 layer']:.2f}× the learned one's FLOPs): "
        f"{compare('learned', val['learned stride-2 layer'], 'wide max pool', val[names[3]])};",
        f"- at equal layers (the conv itself at stride 2, {flops['stride-2 conv (equal layers)'] / flops['max pool']:.2f}× "
        f"the FLOPs: the conv computes at the lower resolution, so it is *cheaper*, as in vitlab's conv+stride stem): "
        f"{compare('stride-2 conv', val['stride-2 conv (equal layers)'], 'max pool', val['max pool'])}.",
    ]
    mean = lambda n: Spread(tuple(val[n])).mean  # noqa: E731
    if extra.separable and matched.separable and mean("learned stride-2 layer") > max(mean("max pool"), mean(names[3])):
        verdict = HOLDS
        why = "the learned stride-2 layer beats pooling at equal layers and at matched compute (separable)"
    elif extra.separable and mean("learned stride-2 layer") > mean("max pool") and not matched.separable:
        verdict = CAVEATS
        why = (f"the learned layer beats pooling only by its extra compute: at matched FLOPs the two are within the "
               f"seed spread (p = {matched.p:.2f}); and a conv at stride 2 is cheaper than conv + pool, not dearer")
    elif not extra.separable:
        verdict = UNDECIDED
        why = (f"on the digits the learned stride-2 layer and max pooling are within the seed spread (p = "
               f"{extra.p:.2f} at extra compute, {matched.p:.2f} matched, {equal.p:.2f} at equal layers), and a "
               f"conv at stride 2 is cheaper than conv + pool, not dearer")
    else:
        verdict = FAILS
        why = f"pooling beat the learned stride-2 layer (p = {extra.p:.3f})"
    return Finding(verdict, why, evidence)


# -- claim 11 --------------------------------------------------------------------------------------------------
def gradient_extent(spec: str, size: int = 64) -> int:
    """Side of the input patch that reaches the centre unit of the last layer: the support of its input gradient.

    Every layer is built with all-ones weights and no non-linearity (max pools become average pools of the same
    geometry, so no tap is switched off), so no tap cancels another: a pixel is inside the receptive field exactly
    when its gradient is non-zero.
    """
    layers: list[nn.Module] = []
    for s in parse_spec(spec):
        if s.kind == "conv":
            conv = nn.Conv2d(1, 1, s.kernel, stride=s.stride, padding=s.padding, dilation=s.dilation, bias=False)
            nn.init.ones_(conv.weight)
            layers.append(conv)
        else:
            layers.append(nn.AvgPool2d(s.kernel, stride=s.stride, padding=s.padding))
    net = nn.Sequential(*layers)
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = net.double()(x)  # (1, 1, h, w)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


RF_STACKS = {  # the notes' cases: each row changes one thing against the three 3×3 convs of the first
    "three 3×3 convs": "conv3,conv3,conv3",
    "two 3×3 convs (less depth)": "conv3,conv3",
    "four 3×3 convs (more depth)": "conv3,conv3,conv3,conv3",
    "three 5×5 convs (larger kernel)": "conv5,conv5,conv5",
    "a 2×2 max pool after the first": "conv3,maxpool2s2,conv3,conv3",
    "the first conv at stride 2 (larger stride)": "conv3s2,conv3,conv3",
}


def claim11(lab: Lab) -> Finding:
    rows = ["| stack | spec | r (recurrence) | r (input gradient) |", "|---|---|---|---|"]
    r = {}
    for name, spec in RF_STACKS.items():
        r[name] = (receptive_field(parse_spec(spec))[-1]["r"], gradient_extent(spec))
        rows.append(f"| {name} | `{spec}` | {r[name][0]} | {r[name][1]} |")
    agree = all(a == b for a, b in r.values())
    base = r["three 3×3 convs"][0]
    grows = {"depth": r["four 3×3 convs (more depth)"][0] > base > r["two 3×3 convs (less depth)"][0],
             "kernel": r["three 5×5 convs (larger kernel)"][0] > base,
             "pooling": r["a 2×2 max pool after the first"][0] > base}
    stride_larger_grows = r["the first conv at stride 2 (larger stride)"][0] > base
    evidence = [*rows, "",
                f"The recurrence and the gradient agree on every stack: {agree}. Each later layer's kernel is "
                "multiplied by the jump j (the product of the strides before it), so a *larger* stride early makes "
                "every later layer see farther: three 3×3 convs see 7 pixels at stride 1 and 11 with the first at "
                "stride 2. A smaller stride never grows it."]
    if not agree:
        return Finding(FAILS, "the recurrence and the input gradients disagree, so the calculator is wrong", evidence)
    if all(grows.values()) and stride_larger_grows:
        return Finding(FAILS, f"depth, kernel size and pooling grow it ({base} → "
                              f"{r['four 3×3 convs (more depth)'][0]}, {r['three 5×5 convs (larger kernel)'][0]}, "
                              f"{r['a 2×2 max pool after the first'][0]} pixels), but it is a larger stride that "
                              f"grows it ({base} → {r['the first conv at stride 2 (larger stride)'][0]}), not a "
                              "smaller one; recurrence and gradients agree", evidence)
    return Finding(CAVEATS, f"only part of it holds here: grows with {[k for k, v in grows.items() if v]}", evidence)


# -- claim 14 --------------------------------------------------------------------------------------------------
TRAIN_SUBSET = 300  # claim 14 trains on this many digits: few enough that a network can over-fit them


def claim14(lab: Lab) -> Finding:
    full = L.digits_data()
    keep = torch.randperm(len(full.train_x), generator=torch.Generator().manual_seed(lab.seed))[:TRAIN_SUBSET]
    data = replace(full, train_x=full.train_x[keep], train_y=full.train_y[keep])
    kinds = {"with 2×2 max pools": "max", "without down-sampling": "none"}
    flops, rf, params, gap, loss_gap, val, test = {}, {}, {}, {}, {}, {}, {}
    for name, down in kinds.items():
        with torch.device("meta"):  # the geometry, weights and FLOPs, without allocating any
            model = L.SmallCNN(down=down, head="flatten")
        flops[name] = cnn_flops(model)
        rf[name] = receptive_field(from_module(model.features))[-1]["r"]
        params[name] = sum(p.numel() for p in model.parameters())
        gap[name], loss_gap[name], val[name], test[name] = [], [], [], []
        for seed in lab.seed_list(5):
            torch.manual_seed(seed)
            hist = L.train_classifier(L.SmallCNN(down=down, head="flatten"), data, epochs=40, seed=seed)
            gap[name].append(hist.train_acc[-1] - hist.val_acc[-1])
            loss_gap[name].append(hist.val_loss[-1] - hist.train_loss[-1])
            val[name].append(hist.val_acc[-1])
            test[name].append(hist.test_acc)
    a, b = kinds
    rows = ["| network | forward kFLOPs / image | parameters | receptive field (px) | train − val acc | "
            "val − train loss | val acc | test acc |", "|---|---|---|---|---|---|---|---|"]
    rows += [f"| {n} | {flops[n] / 1e3:.1f} | {params[n]:,} | {rf[n]} | {Spread(tuple(gap[n])).fmt()} pts | "
             f"{Spread(tuple(loss_gap[n])).fmt(1, 3)} | {Spread(tuple(val[n])).fmt()}% | {Spread(tuple(test[n])).fmt()}% |"
             for n in kinds]
    w_acc, w_loss = welch(gap[a], gap[b]), welch(loss_gap[a], loss_gap[b])
    less_compute = flops[a] < flops[b]
    larger_rf = rf[a] > rf[b]
    mean = lambda v: Spread(tuple(v)).mean  # noqa: E731
    smaller = {"accuracy": mean(gap[a]) < mean(gap[b]), "loss": mean(loss_gap[a]) < mean(loss_gap[b])}
    separable = {"accuracy": w_acc.separable, "loss": w_loss.separable}
    evidence = [
        "The small CNN on the digits (two conv3×3 → BN → ReLU steps of 16 and 32 channels) with a flattening linear "
        "head (LeNet/VGG style, so what the down-sampling removes is removed from the head too), with and without a "
        f"2×2 max pool after each conv; trained on {TRAIN_SUBSET} of the 1,292 training digits (drawn with the seed), "
        "40 epochs, 5 seeds:", "", *rows, "",
        f"- over-fitting as the train − validation accuracy gap: {compare(a, gap[a], b, gap[b], unit=' pts')};",
        f"- as the validation − train loss gap: {compare(a, loss_gap[a], b, loss_gap[b], scale=1, unit='', digits=3)}.",
    ]
    if all(smaller.values()) and all(separable.values()):
        fit_part, overfit = "smaller train − validation gaps in accuracy and in loss (both separable)", True
    elif not any(smaller.values()) and all(separable.values()):
        fit_part, overfit = "larger train − validation gaps in accuracy and in loss (both separable)", False
    else:
        said = [f"the {k} gap {'smaller' if smaller[k] else 'larger'} with down-sampling "
                f"({'separable' if separable[k] else 'within the spread'}, p = {(w_acc if k == 'accuracy' else w_loss).p:.3f})"
                for k in ("accuracy", "loss")]
        fit_part, overfit = "no clear change in over-fitting: " + " and ".join(said), None
    parts = [f"{flops[b] / flops[a]:.1f}× fewer FLOPs" if less_compute else "no fewer FLOPs",
             f"a receptive field of {rf[a]} px instead of {rf[b]}" if larger_rf else "no larger receptive field",
             fit_part]
    if less_compute and larger_rf and overfit:
        verdict = HOLDS
    elif less_compute and larger_rf:
        verdict = CAVEATS
    else:
        verdict = FAILS
    return Finding(verdict, "down-sampling gave " + ", ".join(parts), evidence)
