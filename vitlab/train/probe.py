"""Evaluate a pretrained encoder: a linear probe on frozen features, or fine-tuning the whole network.

Linear probe (the standard protocol of SimCLR, Chen et al. 2020, §B.5 / Zhang et al. 2016): the encoder
features of the un-augmented train, validation and test splits are computed once, standardised with the
train statistics, and a Linear layer is trained on them with AdamW and cross-entropy, full batch; the
encoder's weights are never touched. Settings are chosen on ``val_acc``; ``test_acc`` is reported beside it.
What the probe reads of the encoder is ``features``: the pooled features the loss saw (SimCLR's, the default),
the last four blocks' (DINO's), or the patch-token map (vitlab.train.tasks.pretrain.encoder_features). A small
encoder's pooled vector is narrow (64-96 numbers against an image's 784 pixels), so the wider readings ask less of
a linear layer; the random encoder of the same architecture, read the same way, is the baseline for each.
A different shape of loop from training, so it stays here, on its own.

Fine-tuning (``finetune_all``) is an ordinary classification run of the one engine (vitlab.train.fit), initialised
from the run's model.safetensors (``init.source``, vitlab.train.finetune): the encoder and a new head train
together, without augmentation, with checkpoints, resume, torchrun and the validation split of every run. It
goes into its own run folder beside RUN, ``<RUN>-finetune``. ``random=True`` does the same with a freshly
initialised encoder of the run's architecture (seeded with the run's seed; ``<RUN>-random-finetune``): the
baseline that pretraining must beat.

Results go to RUN/probe.json, one entry per mode: ``linear``, ``random_linear`` and ``pixels`` (the probe on the
raw pixels, no encoder: the baseline) ({"val_acc", "test_acc",
"train_acc", "epochs", "lr"}), ``finetune`` and ``random_finetune`` ({"val_acc", "test_acc", "epochs", "lr",
"run"}: the final model's accuracies and its run folder).
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import InitConfig, OptimConfig, RunConfig
from ..data import ImageSet, Normalize, load_data
from ..errors import CheckpointError, ConfigError, RunFolderError
from ..fileio import save_json
from ..models import ViT
from .artifacts import MODEL_FILE, load_model
from .checkpoint import load_meta
from .loop import fit
from .run_dir import load_run_config
from .tasks.pretrain import PROBE_FEATURES, encode

log = logging.getLogger(__name__)

PROBE_FILE = "probe.json"
FINETUNE_BATCH = 64  # images a step when fine-tuning (the batch of the hand-written loop this replaced)


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
                 epochs: int = 300, lr: float = 1e-2, seed: int = 0, features: str = "pooled") -> dict:
    """Train a Linear layer on the frozen encoder's ``features`` (``'pooled'``, ``'blocks'`` or ``'tokens'``,
    vitlab.train.tasks.pretrain.encoder_features) of ``train``; returns the train accuracy and ``<name>_acc``
    for each set of ``evals`` (e.g. val and test)."""
    of = lambda s: encode(encoder, s.images, normalize, features=features)  # noqa: E731  (N, F)
    return {**probe_features(train, evals, of, epochs=epochs, lr=lr, seed=seed), "features": features}


def pixel_probe(train: ImageSet, evals: dict[str, ImageSet], *, epochs: int = 300, lr: float = 1e-2,
                seed: int = 0) -> dict:
    """The same probe on the raw pixels in [0, 1], no encoder: the baseline a pretrained encoder must beat (on
    Fashion-MNIST the data set paper's logistic regression scores 84.2%)."""
    return probe_features(train, evals, lambda s: s.images.flatten(1).float() / 255, epochs=epochs, lr=lr, seed=seed)


def probe_features(train: ImageSet, evals: dict[str, ImageSet], features, *, epochs: int, lr: float,
                   seed: int) -> dict:
    """The probe protocol on ``features(image_set) -> (N, D)``: standardised with the train statistics, a Linear
    layer trained full batch (:func:`train_linear`)."""
    tr = features(train)  # (N, D)
    mu, sd = tr.mean(0), tr.std(0).clamp_min(1e-6)
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    ytr = train.labels.to(tr.device)
    with torch.enable_grad():
        clf = train_linear((tr - mu) / sd, ytr, n_classes, epochs=epochs, lr=lr, seed=seed)
    out = {"train_acc": accuracy(clf, (tr - mu) / sd, ytr)}
    for name, data in evals.items():
        out[f"{name}_acc"] = accuracy(clf, (features(data) - mu) / sd, data.labels.to(tr.device))
    return {**out, "epochs": epochs, "lr": lr}


@torch.no_grad()
def accuracy(clf: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((clf(x).argmax(1) == y).float().mean())


def finetune_config(run_dir: Path, cfg: RunConfig, classes: list[str], *, random: bool = False, epochs: int = 20,
                    lr: float = 1e-3, device: str = "cpu", threads: int = 0, progress: bool = False) -> RunConfig:
    """The classification run that fine-tunes the encoder of the pretraining run ``run_dir`` (configuration
    ``cfg``) on that run's data: ``init.source`` its model.safetensors (or, ``random``, no init: the same
    architecture from the run's seed), a new head of ``len(classes)`` outputs, no augmentation, AdamW at ``lr``
    with a warm-up of a tenth of the ``epochs`` and a cosine decay to lr / 100, into ``<RUN>-finetune`` (or
    ``<RUN>-random-finetune``) beside ``run_dir``."""
    return RunConfig(
        task="classify", model=replace(cfg.model, num_classes=len(classes)),
        data=replace(cfg.data, augment="none", mixup=0.0, cutmix=0.0, random_erasing=0.0),
        optim=OptimConfig(epochs=epochs, batch_size=FINETUNE_BATCH, lr=lr, min_lr=lr / 100, warmup_epochs=epochs / 10,
                          weight_decay=0.05, label_smoothing=0.0),
        init=InitConfig() if random else InitConfig(source=str(run_dir / MODEL_FILE)),
        name=f"{run_dir.name}-{'random-' if random else ''}finetune", out_dir=str(run_dir.parent), seed=cfg.seed,
        device=device, threads=threads, progress=progress, tensorboard=cfg.tensorboard)


def probe(run_dir: str | Path, *, finetune_all: bool = False, random: bool = False, pixels: bool = False,
          features: str = "pooled", epochs: int | None = None, lr: float | None = None, device: str = "cpu",
          threads: int = 0, overwrite: bool = False, progress: bool = False) -> dict:
    """Probe a pretraining run's encoder (or a random one of its architecture); updates RUN/probe.json.

    ``finetune_all`` trains a classification run through the engine (:func:`finetune_config`, vitlab.train.fit)
    and records its final validation and test accuracy; a run folder of that name is replaced only with
    ``overwrite``. ``pixels`` records the baseline instead: the linear probe on the run's raw pixels
    (:func:`pixel_probe`), entry ``pixels``. ``features`` other than ``'pooled'`` (the linear probe only) reads
    the encoder as DINO does (``'blocks'``) or its patch-token map (``'tokens'``); entries ``linear_<features>``
    and ``random_linear_<features>``."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.task != "pretrain":
        raise ConfigError(f"{run_dir} is a task={cfg.task!r} run; vitlab probe takes a pretraining run "
                          f"(task='pretrain')")
    if pixels and (finetune_all or random):
        raise ConfigError("the pixel probe has no encoder: pixels cannot be combined with finetune_all or random")
    mode = probe_entry(features, random=random, finetune=finetune_all, pixels=pixels)  # checks the name
    if features != "pooled" and (pixels or finetune_all):
        raise ConfigError(f"features={features!r} chooses what the linear probe reads of the encoder: it cannot be "
                          f"combined with pixels or finetune_all")
    if pixels:
        if threads > 0:
            torch.set_num_threads(threads)
        splits = load_data(cfg.data)
        result = pixel_probe(splits.train, {"val": splits.val, "test": splits.test}, seed=cfg.seed,
                             **{k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None})
    elif finetune_all:
        result = _finetune(run_dir, cfg, random=random, epochs=epochs or 20, lr=lr or 1e-3, device=device,
                           threads=threads, overwrite=overwrite, progress=progress)
    else:
        result = _linear(run_dir, cfg, random=random, device=device, threads=threads, features=features,
                         **{k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None})
    path = run_dir / PROBE_FILE
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[mode] = result
    save_json(path, results)
    log.info("%s probe of %s: val accuracy %.4f, test accuracy %.4f", mode, run_dir, result["val_acc"],
             result["test_acc"])
    return {"mode": mode, **result}


def probe_entry(features: str = "pooled", *, random: bool = False, finetune: bool = False,
                pixels: bool = False) -> str:
    """The name of a probe's entry in probe.json: ``linear``, ``random_linear``, ``linear_tokens``,
    ``random_finetune``, ``pixels``, ...; a ConfigError for ``features`` not in PROBE_FEATURES."""
    if features not in PROBE_FEATURES:
        raise ConfigError(f"probe features={features!r} is not one of {PROBE_FEATURES}")
    mode = "pixels" if pixels else ("random_" if random else "") + ("finetune" if finetune else "linear")
    return mode + ("" if features == "pooled" else f"_{features}")


def _linear(run_dir: Path, cfg: RunConfig, *, random: bool, device: str, threads: int, features: str,
            **kwargs) -> dict:
    if threads > 0:
        torch.set_num_threads(threads)
    encoder, meta = load_model(run_dir, device=device)
    if random:
        torch.manual_seed(cfg.seed)
        encoder = ViT(encoder.cfg).to(device)
    splits = load_data(cfg.data)
    normalize = Normalize(meta["mean"], meta["std"]).to(device)
    return linear_probe(encoder, splits.train, {"val": splits.val, "test": splits.test}, normalize, seed=cfg.seed,
                        features=features, **kwargs)


def _finetune(run_dir: Path, cfg: RunConfig, *, random: bool, epochs: int, lr: float, device: str, threads: int,
              overwrite: bool, progress: bool) -> dict:
    classes = load_meta(run_dir / MODEL_FILE).get("classes")
    if not classes:
        raise CheckpointError(f"{run_dir / MODEL_FILE} does not say its classes: cannot size the fine-tuning head")
    ft = finetune_config(run_dir, cfg, classes, random=random, epochs=epochs, lr=lr, device=device, threads=threads,
                         progress=progress)
    target = Path(ft.out_dir) / ft.name
    if target.exists() and not overwrite:
        raise RunFolderError(f"{target} exists (an earlier vitlab probe --finetune): pass --overwrite to replace "
                             f"it, or continue it with vitlab train --resume {target}")
    out = fit(ft, overwrite=overwrite, argv=["vitlab", "probe", str(run_dir), "--finetune"] + ["--random"] * random)
    final = json.loads((out / "metrics.json").read_text())
    return {"val_acc": final["val_acc"], "test_acc": final["test_acc"], "epochs": final["epochs"], "lr": lr,
            "run": str(out)}
