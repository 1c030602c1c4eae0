"""Training a ``Segmenter`` on the digit canvases (``task='segment'``), and the segmentation metrics.

The loop follows ``vitlab.train.loop.fit`` step for step (lr -> forward/loss -> backward -> clip ->
step -> log; per epoch: evaluate -> append metrics) and reuses its helpers — the AdamW groups,
the warm-up + cosine schedule, run-folder handling, safetensors writing and the curve plot — and
writes the same run folder: config.json, argv.json, metrics.jsonl, metrics.json,
model.safetensors, curves.png, and checkpoint.safetensors at each epoch end (model, optimiser and
random states, in the classification loop's format), from which ``vitlab train --resume RUN``
continues bit for bit. No mid-epoch checkpoints: a segmentation epoch takes seconds.

Metrics, from the confusion matrix C (rows: true class, columns: predicted), over every pixel:

* pixel accuracy = trace(C) / sum(C);
* IoU of class k = TP / (TP + FP + FN) = C[k,k] / (row_k + col_k - C[k,k]); mIoU is the mean
  over all classes *including background*. A class absent from both the target and the
  prediction (TP + FP + FN = 0) has no defined IoU and is left out of the mean, rather than
  counted as 1 (which would reward never seeing it) or 0 (which would punish a correct "absent").
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import ModelConfig, RunConfig, SegmentConfig
from ..configio import from_dict, save_json, to_dict
from ..data import Normalize, batch_indices, epoch_order, num_batches
from ..data.segmentation import NUM_CLASSES, SegmentationSet, load_segmentation
from ..models import count_params
from ..models.segmenter import Segmenter
from .checkpoint import CheckpointError, load_model_state, load_tensors, save_tensors
from .loop import (CHECKPOINT, TrainingDiverged, load_run_config, prepare_run_dir, read_rows, resolve_device,
                   restore_checkpoint, resumed_config, save_checkpoint, seed_everything, truncate_metrics)
from .optim import build_optimizer
from .plots import plot_curves
from .schedule import warmup_cosine
from .step import optimizer_step

log = logging.getLogger(__name__)


# -- metrics -----------------------------------------------------------------------------------------
def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts, rows the true class, columns the predicted; pred and target any equal shape."""
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    k = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(k, minlength=num_classes**2).reshape(num_classes, num_classes)


def pixel_accuracy(cm: torch.Tensor) -> float:
    return float(cm.diagonal().sum() / cm.sum().clamp_min(1))


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """(K,) IoU = TP / (TP + FP + FN), NaN for a class absent from both target and prediction."""
    tp = cm.diagonal().double()
    union = cm.sum(0).double() + cm.sum(1).double() - tp  # TP + FP + FN
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean IoU over the classes present in the target or the prediction (background included)."""
    iou = iou_per_class(cm)
    present = ~torch.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


@torch.no_grad()
def evaluate_segmentation(model: torch.nn.Module, data: SegmentationSet, normalize: Normalize,
                          batch_size: int = 256) -> dict:
    """Per-pixel cross-entropy, pixel accuracy, mIoU and the confusion matrix over a split, in eval mode."""
    was_training = model.training
    model.eval()
    device = normalize.mean.device
    cm = torch.zeros(model.num_classes, model.num_classes, dtype=torch.long)
    total_loss = 0.0
    for idx in batch_indices(torch.arange(len(data)), batch_size):
        x = normalize(data.images[idx].to(device))
        y = data.masks[idx].to(device)
        logits = model(x)  # (B, K, H, W)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        cm += confusion_matrix(logits.argmax(1).cpu(), y.cpu(), model.num_classes)
    model.train(was_training)
    return {"loss": total_loss / data.masks.numel(), "pixel_acc": pixel_accuracy(cm), "miou": mean_iou(cm),
            "confusion": cm}


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> tuple[Segmenter, dict]:
    """Rebuild a Segmenter from a segmentation run folder or its ``model.safetensors``; returns (model in eval
    mode, metadata)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    tensors, meta = load_tensors(path, device=device)
    if "segment" not in meta or "model" not in meta:
        raise CheckpointError(f"{path} is not a segmentation model file (its header has no 'segment' section)")
    model = Segmenter(from_dict(ModelConfig, meta["model"]), from_dict(SegmentConfig, meta["segment"]),
                      num_classes=int(meta["num_classes"])).to(device)
    load_model_state(model, tensors, str(path))
    return model.eval(), meta


# -- training ----------------------------------------------------------------------------------------
def check_segment_config(cfg: RunConfig) -> None:
    m, s = cfg.model, cfg.segment
    if m.img_size != s.canvas and not m.dynamic_img_size:
        raise ValueError(f"task='segment': model.img_size={m.img_size} must equal segment.canvas={s.canvas}")
    if m.in_chans != 1:
        raise ValueError(f"task='segment': the digit canvases have 1 channel but model.in_chans={m.in_chans}")


def fit_segment(cfg: RunConfig, *, resume: str | Path | None = None, overwrite: bool = False,
                argv: list[str] | None = None) -> Path:
    """Train a Segmenter for ``cfg`` (``cfg.task == 'segment'``) and return its run folder.
    ``resume`` continues a run folder from its last epoch checkpoint (it may ask for more epochs)."""
    if resume is not None:
        resume = Path(resume)
        cfg = resumed_config(load_run_config(resume), cfg, resume)
    check_segment_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    model = Segmenter(cfg.model, cfg.segment, num_classes=NUM_CLASSES)  # construction errors before any folder

    # -- data, fixed by segment.data_seed, held on the device as uint8 ------------------------------
    train, test = load_segmentation(cfg.segment, val_split=cfg.data.val_split, split_seed=cfg.data.split_seed)
    run_dir = prepare_run_dir(cfg, resume=resume is not None, overwrite=overwrite)
    seed_everything(cfg.seed)
    model = Segmenter(cfg.model, cfg.segment, num_classes=NUM_CLASSES).to(device)  # initialised from cfg.seed
    mean, std = train.channel_stats()
    normalize = Normalize(mean, std).to(device)
    train_dev = train.to(device)

    optimizer = build_optimizer(model, cfg.optim)
    steps_per_epoch = num_batches(len(train), cfg.optim.batch_size, drop_last=True)
    total_steps = cfg.optim.epochs * steps_per_epoch
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    metrics_path = run_dir / "metrics.jsonl"
    start_epoch, step, train_time = 0, 0, 0.0
    if resume is not None:
        start_epoch, step, train_time, _ = restore_checkpoint(run_dir / CHECKPOINT, model, optimizer, device)
        truncate_metrics(metrics_path, start_epoch)
        log.info("resumed %s at epoch %d (step %d)", run_dir, start_epoch, step)
    else:
        (run_dir / "argv.json").write_text(json.dumps(argv if argv is not None else sys.argv) + "\n")
        metrics_path.write_text("")
    save_json(run_dir / "config.json", to_dict(cfg))  # a resumed run may now ask for more epochs
    params = count_params(model)
    log.info("segmenter: %s parameters; %d train / %d test canvases of %s", f"{params:,}", len(train), len(test),
             train.shape)
    ckpt_meta = {"mean": mean, "std": std, "classes": train.classes}

    lr = cfg.optim.lr
    rows = read_rows(metrics_path)
    for epoch in range(start_epoch, cfg.optim.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0
        order = epoch_order(len(train), cfg.seed, epoch).to(device)
        bar = tqdm(batch_indices(order, cfg.optim.batch_size, drop_last=True), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", disable=not cfg.progress, leave=False)
        for idx in bar:
            # learning rate for this step
            lr = warmup_cosine(step, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=cfg.optim.lr,
                               min_lr=cfg.optim.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # batch, forward, per-pixel loss, backward, clip, step
            x = normalize(train_dev.images[idx].float().div_(255))  # (B, 1, H, W)
            y = train_dev.masks[idx]  # (B, H, W)
            logits = model(x)  # (B, K, H, W)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing)
            loss_value = optimizer_step(loss, optimizer, model.parameters(), cfg.optim.grad_clip)
            if not math.isfinite(loss_value):
                kept = (f"the checkpoint of epoch {epoch} is kept in {run_dir / CHECKPOINT}" if epoch
                        else "no checkpoint had been written yet")
                raise TrainingDiverged(f"loss became {loss_value} at step {step} (epoch {epoch + 1}); "
                                       f"try a lower optim.lr (now {cfg.optim.lr}); {kept}")
            step += 1
            # log
            loss_sum += loss.detach() * y.numel()
            correct += (logits.argmax(1) == y).sum()
            seen += y.numel()
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time

        # evaluate, record, checkpoint
        ev = evaluate_segmentation(model, test, normalize)
        row = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": loss_sum.item() / max(seen, 1),
               "train_pixel_acc": correct.item() / max(seen, 1), "test_loss": ev["loss"],
               "pixel_acc": ev["pixel_acc"], "miou": ev["miou"], "epoch_time_s": round(epoch_time, 4)}
        rows.append(row)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        save_checkpoint(run_dir / CHECKPOINT, model, optimizer, cfg, epoch + 1, step, train_time, ckpt_meta)
        log.info("epoch %d/%d  train loss %.4f  test loss %.4f pixel acc %.4f mIoU %.4f  lr %.2e", epoch + 1,
                 cfg.optim.epochs, row["train_loss"], ev["loss"], ev["pixel_acc"], ev["miou"], lr)

    # -- final artefacts ----------------------------------------------------------------------------
    save_tensors(run_dir / "model.safetensors", model.state_dict(),
                 {"model": asdict(model.cfg), "segment": asdict(cfg.segment), "num_classes": NUM_CLASSES,
                  "mean": mean, "std": std, "classes": train.classes})
    final = {"test_miou": rows[-1]["miou"], "test_pixel_acc": rows[-1]["pixel_acc"],
             "test_loss": rows[-1]["test_loss"], "best_test_miou": max(r["miou"] for r in rows),
             "epochs": len(rows), "train_time_s": round(train_time, 3), "params": params}
    save_json(run_dir / "metrics.json", final)
    # the project's curve plot: its accuracy panel shows pixel accuracy here
    plot_curves([{**r, "train_acc": r["train_pixel_acc"], "test_acc": r["pixel_acc"]} for r in rows],
                run_dir / "curves.png")
    return run_dir
