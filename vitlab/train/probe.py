"""Evaluate a pretrained encoder: a linear probe on frozen features, or fine-tuning the whole network.

Linear probe (the standard protocol of SimCLR, Chen et al. 2020, §B.5 / Zhang et al. 2016): the encoder
features of the un-augmented train, validation and test splits are computed once, standardised with the
train statistics, and a Linear layer is trained on them with AdamW and cross-entropy, full batch; the
encoder's weights are never touched. Settings are chosen on ``val_acc``; ``test_acc`` is reported beside it.
``finetune`` instead trains the encoder and a new Linear head together, in mini-batches without augmentation. ``random=True`` does the same with a freshly initialised encoder of the
run's architecture (seeded with the run's seed): the baseline that pretraining must beat.

Results go to RUN/probe.json, one entry per mode: ``linear``, ``finetune``, ``random_linear``,
``random_finetune``, each {"val_acc", "test_acc", "train_acc", "epochs", ...}.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..data import ImageSet, Normalize, batch_indices, epoch_order, load_data, read_batches
from ..fileio import save_json
from ..models import ViT
from .artifacts import load_model
from .run_dir import load_run_config
from .tasks.pretrain import encode, encoder_features

log = logging.getLogger(__name__)

PROBE_FILE = "probe.json"


def train_linear(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, *, epochs: int = 300,
                 lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0) -> nn.Linear:
    """A Linear classifier on fixed features, full-batch AdamW on cross-entropy. Shape: (N, D), (N,)."""
    g = torch.Generator().manual_seed(seed)
    clf = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    with torch.no_grad():
        clf.weight.copy_(torch.randn(clf.weight.shape, generator=g) * 0.01)
        clf.bias.zero_()
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = F.cross_entropy(clf(train_x), train_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return clf


def linear_probe(encoder: ViT, train: ImageSet, evals: dict[str, ImageSet], normalize: Normalize, *,
                 epochs: int = 300, lr: float = 1e-2, seed: int = 0) -> dict:
    """Train a Linear layer on the frozen encoder's features of ``train``; returns the train accuracy and
    ``<name>_acc`` for each set of ``evals`` (e.g. val and test)."""
    tr = encode(encoder, train.images, normalize)  # (N, D)
    mu, sd = tr.mean(0), tr.std(0).clamp_min(1e-6)
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    ytr = train.labels.to(tr.device)
    with torch.enable_grad():
        clf = train_linear((tr - mu) / sd, ytr, n_classes, epochs=epochs, lr=lr, seed=seed)
    out = {"train_acc": accuracy(clf, (tr - mu) / sd, ytr)}
    for name, data in evals.items():
        out[f"{name}_acc"] = accuracy(clf, (encode(encoder, data.images, normalize) - mu) / sd,
                                      data.labels.to(tr.device))
    return {**out, "epochs": epochs, "lr": lr}


@torch.no_grad()
def accuracy(clf: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((clf(x).argmax(1) == y).float().mean())


def finetune(encoder: ViT, train: ImageSet, evals: dict[str, ImageSet], normalize: Normalize, *, epochs: int = 20,
             lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> dict:
    """Train the encoder (in place) and a new Linear head end to end; returns the train accuracy and
    ``<name>_acc`` for each set of ``evals``."""
    device = normalize.mean.device
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    torch.manual_seed(seed)
    head = nn.Linear(encoder.cfg.dim, n_classes).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    encoder.train()
    for epoch in range(epochs):
        for images, labels in read_batches(train, batch_indices(epoch_order(len(train), seed, epoch), batch_size),
                                           device):
            loss = F.cross_entropy(head(encoder_features(encoder, normalize(images.to(device)))), labels.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    encoder.eval()

    @torch.no_grad()
    def acc(data: ImageSet) -> float:
        pred = head(encode(encoder, data.images, normalize)).argmax(1)
        return float((pred.cpu() == data.labels.cpu()).float().mean())

    return {"train_acc": acc(train), **{f"{name}_acc": acc(data) for name, data in evals.items()}, "epochs": epochs,
            "lr": lr}


def probe(run_dir: str | Path, *, finetune_all: bool = False, random: bool = False, epochs: int | None = None,
          lr: float | None = None, device: str = "cpu", threads: int = 0) -> dict:
    """Probe a pretraining run's encoder (or a random one of its architecture); updates RUN/probe.json."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.task != "pretrain":
        raise ConfigError(f"{run_dir} is a task={cfg.task!r} run; vitlab probe takes a pretraining run "
                          f"(task='pretrain')")
    if threads > 0:
        torch.set_num_threads(threads)
    encoder, meta = load_model(run_dir, device=device)
    if random:
        torch.manual_seed(cfg.seed)
        encoder = ViT(encoder.cfg).to(device)
    splits = load_data(cfg.data)
    normalize = Normalize(meta["mean"], meta["std"]).to(device)
    kwargs = {k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None}
    evals = {"val": splits.val, "test": splits.test}
    if finetune_all:
        result = finetune(encoder, splits.train, evals, normalize, seed=cfg.seed, **kwargs)
    else:
        result = linear_probe(encoder, splits.train, evals, normalize, seed=cfg.seed, **kwargs)
    mode = ("random_" if random else "") + ("finetune" if finetune_all else "linear")
    path = run_dir / PROBE_FILE
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[mode] = result
    save_json(path, results)
    log.info("%s probe of %s: val accuracy %.4f, test accuracy %.4f", mode, run_dir, result["val_acc"],
             result["test_acc"])
    return {"mode": mode, **result}
