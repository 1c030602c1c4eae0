"""The training loop: a flat, commented sequence, in the order nanoGPT made familiar.

Per step: learning rate -> augment -> forward/loss -> backward -> clip -> step -> log.
Per epoch: evaluate -> append metrics -> checkpoint. The loop knows the model only
through ``forward`` and the data only as in-memory uint8 tensors.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import RunConfig
from ..configio import from_dict, save_json, to_dict
from ..data import ImageSet, Normalize, batch_indices, build_augment, epoch_order, load_data, num_batches
from ..models import ViT, count_params
from .artifacts import save_model
from .checkpoint import (CheckpointError, load_model_state, load_tensors, optimizer_from_tensors,
                         optimizer_to_tensors, save_tensors)
from .optim import build_optimizer
from .plots import plot_curves
from .schedule import warmup_cosine

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
# What `--resume` may change: everything else is the saved run's configuration.
RESUMABLE_KEYS = ("optim.epochs", "progress", "device", "threads")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} asked for, but CUDA is not available; use device='cpu' or 'auto'")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_data_fits_model(cfg: RunConfig, train: ImageSet) -> None:
    c, h, w = train.shape
    m = cfg.model
    if c != m.in_chans:
        raise ValueError(f"data {cfg.data.name!r} has {c} channels but model.in_chans={m.in_chans}")
    if (h, w) != (m.img_size, m.img_size) and not m.dynamic_img_size:
        raise ValueError(f"data {cfg.data.name!r} has {h}x{w} images but model.img_size={m.img_size}")
    n_classes = int(train.labels.max()) + 1
    if n_classes > m.num_classes:
        raise ValueError(f"data {cfg.data.name!r} has {n_classes} classes but model.num_classes={m.num_classes}")


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageSet, normalize: Normalize, batch_size: int = 512) -> dict:
    """Loss, accuracy and predictions over a whole split, in eval mode."""
    was_training = model.training
    model.eval()
    device = normalize.mean.device
    total_loss, preds = 0.0, []
    for idx in batch_indices(torch.arange(len(data)), batch_size):
        x = normalize(data.images[idx].to(device))
        y = data.labels[idx].to(device)
        logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        preds.append(logits.argmax(-1).cpu())
    model.train(was_training)
    pred = torch.cat(preds)
    acc = int((pred == data.labels.cpu()).sum()) / len(data)
    return {"loss": total_loss / len(data), "acc": acc, "pred": pred}


def prepare_run_dir(cfg: RunConfig, *, resume: bool, overwrite: bool) -> Path:
    name = cfg.name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.out_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it "
                                  f"or --overwrite to replace it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def load_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a vitlab run folder")
    return from_dict(RunConfig, json.loads(path.read_text()))


def fit(cfg: RunConfig, *, resume: str | Path | None = None, overwrite: bool = False,
        argv: list[str] | None = None) -> Path:
    """Train ``cfg`` and return its run folder. ``resume`` continues a run folder's last checkpoint."""
    if resume is not None:
        resume = Path(resume)
        saved = load_run_config(resume)
        # A resumed run continues its saved configuration: it may train for more epochs, on
        # another device or thread count, with or without progress bars; nothing else changes.
        cfg = replace(saved, optim=replace(saved.optim, epochs=max(cfg.optim.epochs, saved.optim.epochs)),
                      out_dir=str(resume.parent), name=resume.name, progress=cfg.progress, device=cfg.device,
                      threads=cfg.threads)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)

    # -- data, held on the device as uint8 once (checked before any folder is made) -------------
    train, test = load_data(cfg.data)
    check_data_fits_model(cfg, train)
    run_dir = prepare_run_dir(cfg, resume=resume is not None, overwrite=overwrite)
    seed_everything(cfg.seed)
    mean, std = train.channel_stats()
    normalize = Normalize(mean, std).to(device)
    augment = build_augment(cfg.data).to(device)
    train_dev = train.to(device)

    # -- model and optimiser --------------------------------------------------------------------
    model = ViT(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim)
    steps_per_epoch = num_batches(len(train), cfg.optim.batch_size, drop_last=True)
    total_steps = cfg.optim.epochs * steps_per_epoch
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    start_epoch, step, train_time = 0, 0, 0.0
    metrics_path = run_dir / "metrics.jsonl"
    if resume is not None:
        start_epoch, step, train_time = _restore(run_dir / CHECKPOINT, model, optimizer, device)
        _truncate_metrics(metrics_path, start_epoch)
        save_json(run_dir / "config.json", to_dict(cfg))  # may now ask for more epochs than before
        log.info("resumed %s at epoch %d (step %d)", run_dir, start_epoch, step)
    else:
        save_json(run_dir / "config.json", to_dict(cfg))
        (run_dir / "argv.json").write_text(json.dumps(argv if argv is not None else sys.argv) + "\n")
        metrics_path.write_text("")
    params = count_params(model)
    log.info("model: %s parameters; data: %d train / %d test images of %s", f"{params:,}", len(train), len(test),
             train.shape)

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                      enabled=False)
    ckpt_meta = {"mean": mean, "std": std, "classes": train.classes}
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.optim.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        order = epoch_order(len(train), cfg.seed, epoch).to(device)
        bar = tqdm(batch_indices(order, cfg.optim.batch_size, drop_last=True), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", disable=not cfg.progress, leave=False,
                   dynamic_ncols=True)
        for idx in bar:
            # learning rate for this step
            lr = warmup_cosine(step, total_steps=total_steps, warmup_steps=warmup_steps,
                               base_lr=cfg.optim.lr, min_lr=cfg.optim.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # batch: slice, scale to [0, 1], augment, standardise
            x = train_dev.images[idx].float().div_(255)
            y = train_dev.labels[idx]
            x = normalize(augment(x))
            # forward, loss, backward, clip, step
            with amp:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                bar.close()
                kept = (f"the last good checkpoint (epoch {epoch}) is kept in {run_dir / CHECKPOINT}"
                        if (run_dir / CHECKPOINT).exists() else "no epoch had finished, so there is no checkpoint")
                raise TrainingDiverged(
                    f"loss became {loss_value} at step {step} (epoch {epoch + 1}); stopped before the update; "
                    f"{kept}. Try a lower optim.lr (now {cfg.optim.lr})")
            optimizer.step()
            step += 1
            # log
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(-1) == y).sum()
            seen += len(idx)
            if cfg.progress:
                bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{correct.item() / seen:.3f}", lr=f"{lr:.2e}",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time

        # evaluate, record, checkpoint
        ev = evaluate(model, test, normalize)
        row = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": loss_sum.item() / seen,
               "train_acc": correct.item() / seen, "test_loss": ev["loss"], "test_acc": ev["acc"],
               "epoch_time_s": round(epoch_time, 4), "images_per_s": round(seen / epoch_time, 1)}
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        _save_checkpoint(run_dir / CHECKPOINT, model, optimizer, cfg, epoch + 1, step, train_time, ckpt_meta)
        log.info("epoch %d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  lr %.2e  %.0f img/s",
                 epoch + 1, cfg.optim.epochs, row["train_loss"], row["train_acc"], ev["loss"], ev["acc"], lr,
                 row["images_per_s"])

    # -- final artefacts ----------------------------------------------------------------------------
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    save_model(run_dir / "model.safetensors", model, ckpt_meta)
    final = {"test_acc": rows[-1]["test_acc"] if rows else None, "test_loss": rows[-1]["test_loss"] if rows else None,
             "best_test_acc": max((r["test_acc"] for r in rows), default=None), "epochs": len(rows),
             "train_time_s": round(train_time, 3), "params": params}
    save_json(run_dir / "metrics.json", final)
    plot_curves(rows, run_dir / "curves.png")
    return run_dir


def _save_checkpoint(path: Path, model, optimizer, cfg: RunConfig, epoch: int, step: int, train_time: float,
                     extra: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {"epoch": epoch, "step": step, "train_time_s": train_time, "config": to_dict(cfg), "optimizer": opt_meta,
            "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "rng_python": _py_state_to_json(random.getstate()), **extra}
    save_tensors(path, tensors, meta)


def _restore(path: Path, model, optimizer, device) -> tuple[int, int, float]:
    tensors, meta = load_tensors(path, device="cpu")
    try:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        load_model_state(model, {k: v.to(device) for k, v in model_state.items()}, str(path))
        optimizer_from_tensors(optimizer, {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")},
                               meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        kind, keys, pos, has_gauss, cached = meta["rng_numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        random.setstate(_py_state_from_json(meta["rng_python"]))
        return int(meta["epoch"]), int(meta["step"]), float(meta["train_time_s"])
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} lacks {e}: not a vitlab training checkpoint") from e


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep exactly the epochs the checkpoint has seen, so a resumed run logs each epoch once."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [line for line in rows if json.loads(line)["epoch"] <= epochs_done]
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode())


def _py_state_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_state_from_json(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)

