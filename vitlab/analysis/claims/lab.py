"""The small laboratory the experiments share: data as float tensors, a small CNN, and a plain training loop.

The experiments train models of a few thousand to a few hundred thousand weights for a few seconds each, many
times over (settings × seeds), so they use this short loop rather than the engine (vitlab.train.fit), whose run
folders, checkpoints and curves would cost more than the training itself. Where an experiment trains one of the
engine's own tasks (segmentation, pretraining) it calls the engine. Everything is seeded: the same seed gives the
same numbers on the same machine.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Data:
    """Standardised float images (N, C, H, W) and int64 labels of train, validation and test."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.train_y.max()) + 1


def digits_data() -> Data:
    """scikit-learn's 8×8 digits with vitlab's fixed splits (1,292 train, 145 val, 360 test), standardised with the
    training split's mean and std."""
    from ...config import DataConfig
    from ...data import load_data

    s = load_data(DataConfig(name="digits"))
    mean = s.train.images.float().mean()
    std = s.train.images.float().std()
    f = lambda split: (split.images.float() - mean) / std  # noqa: E731
    return Data(f(s.train), s.train.labels, f(s.val), s.val.labels, f(s.test), s.test.labels)


def textures(n: int, *, size: int = 16, noise: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four texture classes whose images all have mean intensity 0.5 and the same pixel variance.

    Class 0: sparse bright dots (about 1 pixel in 16) on a dimmer background; class 1: Gaussian white noise;
    class 2: stripes of period 4 at a random orientation (0°, 45°, 90°, 135°) and phase; class 3: blobs (white
    noise blurred by a 3×3 box). ``noise`` in [0, 1) mixes each standardised pattern p with white noise e as
    sqrt(1 − noise²)·p + noise·e, which makes the classes harder to tell apart. Each image is then shifted and
    scaled to mean 0.5 and std 0.2 exactly, so the mean intensity (what an average over the whole image keeps)
    says nothing about the class: only the local structure does.

    Returns:
        images (n, 1, size, size) float in roughly [0, 1], labels (n,) int64 (balanced, shuffled).
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    y = y[torch.randperm(n, generator=g)]
    x = torch.empty(n, 1, size, size)
    rows = torch.arange(size).view(size, 1).float()
    cols = torch.arange(size).view(1, size).float()
    for i in range(n):
        c = int(y[i])
        if c == 0:
            img = (torch.rand(size, size, generator=g) < 1 / 16).float()
        elif c == 1:
            img = torch.randn(size, size, generator=g)
        elif c == 2:
            angle = math.pi / 4 * int(torch.randint(4, (1,), generator=g))
            phase = 2 * math.pi * float(torch.rand(1, generator=g))
            u = rows * math.cos(angle) + cols * math.sin(angle)
            img = torch.sin(2 * math.pi * u / 4 + phase) + 0.3 * torch.randn(size, size, generator=g)
        else:
            white = torch.randn(1, 1, size + 2, size + 2, generator=g)
            img = F.avg_pool2d(white, 3, stride=1)[0, 0]
        img = (img - img.mean()) / img.std().clamp_min(1e-6)
        if noise:
            img = math.sqrt(1 - noise ** 2) * img + noise * torch.randn(size, size, generator=g)
            img = (img - img.mean()) / img.std().clamp_min(1e-6)
        x[i, 0] = 0.5 + 0.2 * img
    return x, y


def texture_data(seed: int = 0, *, size: int = 16, noise: float = 0.0, train: int = 2000, val: int = 500,
                 test: int = 500) -> Data:
    """Train/val/test texture sets drawn with separate generators (standardised as a whole: mean 0.5, std 0.2)."""
    splits = [textures(n, size=size, noise=noise, seed=seed * 3 + k) for k, n in enumerate((train, val, test))]
    f = lambda x: (x - 0.5) / 0.2  # noqa: E731
    (a, ya), (b, yb), (c, yc) = splits
    return Data(f(a), ya, f(b), yb, f(c), yc)


class SmallCNN(nn.Module):
    """conv3×3 → norm → ReLU → down-sampling, once per entry of ``widths``, then a linear head.

    Args:
        down: how each step halves the resolution: 'max' or 'avg' (a 2×2 pool after the conv), 'stride' (the conv
            itself at stride 2), 'conv' (a second, learned 3×3 stride-2 conv in place of the pool: more compute),
            or 'none' (no down-sampling).
        widths: channels of each step's conv.
        norm: 'batch' (BatchNorm2d), 'layer' (LayerNorm over each sample's C×H×W, i.e. GroupNorm with one group)
            or 'none'.
        head: 'gap' (global average pooling, then Linear: the head's size does not depend on the down-sampling)
            or 'flatten' (every position of the last map into the Linear, as in LeNet/VGG: the head grows 4× for
            each halving left out). ``img_size`` gives the last map's size for 'flatten'.

    Shape:
        (B, C, H, W) -> (B, num_classes).
    """

    def __init__(self, *, in_chans: int = 1, num_classes: int = 10, widths=(16, 32), down: str = "max",
                 norm: str = "batch", head: str = "gap", img_size: int = 8):
        super().__init__()
        if head not in ("gap", "flatten"):
            raise ValueError(f"head={head!r} is not one of ('gap', 'flatten')")
        if down not in ("max", "avg", "stride", "conv", "none"):
            raise ValueError(f"down={down!r} is not one of ('max', 'avg', 'stride', 'conv', 'none')")
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm={norm!r} is not one of ('batch', 'layer', 'none')")
        layers: list[nn.Module] = []
        c_in = in_chans
        for c in widths:
            layers.append(nn.Conv2d(c_in, c, 3, stride=2 if down == "stride" else 1, padding=1, bias=norm == "none"))
            layers.append({"batch": lambda: nn.BatchNorm2d(c), "layer": lambda: nn.GroupNorm(1, c),
                           "none": nn.Identity}[norm]())
            layers.append(nn.ReLU())
            if down == "max":
                layers.append(nn.MaxPool2d(2))
            elif down == "avg":
                layers.append(nn.AvgPool2d(2))
            elif down == "conv":
                layers += [nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c
            if down != "none":
                img_size = (img_size + 1) // 2  # each down-sampling halves the side (even sides here)
        self.features = nn.Sequential(*layers)
        self.pool = head == "gap"
        self.head = nn.Linear(c_in if self.pool else c_in * img_size * img_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C', H', W')
        x = x.mean((2, 3)) if self.pool else x.flatten(1)  # (B, C') or (B, C'·H'·W')
        return self.head(x)  # (B, num_classes)


@dataclass
class History:
    """Per-epoch accuracies and losses (train measured in eval mode on the whole split, after the epoch)."""

    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    test_acc: float = float("nan")  # of the final model, measured once

    @property
    def best_val(self) -> float:
        return max(self.val_acc)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` in eval mode."""
    model.eval()
    logits = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def train_classifier(model: nn.Module, data: Data, *, epochs: int, batch_size: int = 64, lr: float = 2e-3,
                     weight_decay: float = 0.0, seed: int = 0) -> History:
    """AdamW with a cosine schedule on cross-entropy; the order of the batches is drawn from ``seed``.

    The caller seeds the model's initialisation (``torch.manual_seed`` before building it).
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(data.train_x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    hist = History()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data.train_x), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2 and has_batch_norm:
                continue  # BatchNorm cannot normalise a batch of one
            loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        tr = evaluate(model, data.train_x, data.train_y)
        va = evaluate(model, data.val_x, data.val_y)
        hist.train_acc.append(tr[0])
        hist.train_loss.append(tr[1])
        hist.val_acc.append(va[0])
        hist.val_loss.append(va[1])
    hist.test_acc = evaluate(model, data.test_x, data.test_y)[0]
    return hist


def savefig(fig, lab, name: str) -> str:
    """Save a matplotlib figure as ``lab.out/name`` and return ``name`` for Finding.plots."""
    import matplotlib.pyplot as plt

    lab.out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(lab.out / name, dpi=90)
    plt.close(fig)
    return name


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display), as vitlab.train.plots sets it up."""
    from ...train.plots import plt

    return plt


def median_seconds(fn, repeats: int = 30) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


@contextmanager
def one_thread():
    """Models of a few thousand weights spend their time in per-op overhead, which a second intra-op thread only
    adds to (4 against 20+ ms a ViT step at batch 2 on 2 busy cores); the caller's setting comes back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
