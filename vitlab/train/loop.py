"""The training loop: a flat, commented sequence, in the order nanoGPT made familiar.

Per step: learning rate -> augment -> forward/loss -> backward -> clip -> step -> log.
Per epoch: evaluate -> append metrics -> checkpoint. The loop knows the model only
through ``forward`` and the data only as in-memory uint8 tensors.

Checkpoints (``checkpoint.safetensors``) are written at each epoch end, every ``ckpt_every``
steps and on Ctrl-C. Each holds the model, the AdamW state, the step (the learning rate is a
pure function of it), every random state, and inside an epoch the batches done and the running
sums of the epoch's metrics; the data order is a pure function of (seed, epoch). A resumed run
therefore retraces an uninterrupted one bit for bit on CPU.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import re
import shutil
import signal
import sys
import threading
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
from ..data.augment import mix_batch
from ..models import ViT, count_params
from .artifacts import save_model
from .distributed import (data_parallel, is_distributed, leaves_process_group, on_main_process, rank,
                          setup_distributed, shard, sum_over_processes, torchrun_processes, world_size)
from .checkpoint import (CheckpointError, atomic_write_bytes, link_or_copy, load_meta, load_model_state,
                         load_tensors, optimizer_from_tensors, optimizer_to_tensors, save_tensors)
from .optim import build_optimizer
from .plots import plot_curves
from .schedule import warmup_cosine
from .step import optimizer_step

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
# What `--resume` may change: everything else is the saved run's configuration.
RESUMABLE_KEYS = ("optim.epochs", "progress", "device", "threads", "ckpt_every", "keep_last")
BEST = "best.safetensors"  # the epoch checkpoint with the highest test_acc (in its header)
STEP_CHECKPOINT = "checkpoint-step{step:06d}.safetensors"  # the last keep_last of them, when keep_last > 1


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during training: a checkpoint of the current step was saved; the message says
    how to resume."""


class TrainingOutOfMemory(RuntimeError):
    """The device ran out of memory in a training step; the message suggests a smaller batch."""


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


def resumed_config(saved, asked, run_dir: Path, *also: str):
    """The configuration a resumed run trains with: the ``saved`` one, in its own folder, taking from ``asked``
    only what a resume may change: more epochs, the device, the thread count, progress bars (and ``also``)."""
    return replace(saved, optim=replace(saved.optim, epochs=max(asked.optim.epochs, saved.optim.epochs)),
                   out_dir=str(run_dir.parent), name=run_dir.name, progress=asked.progress, device=asked.device,
                   threads=asked.threads, **{key: getattr(asked, key) for key in also})


def load_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a vitlab run folder")
    return from_dict(RunConfig, json.loads(path.read_text()))


def fit(cfg: RunConfig, *, resume: str | Path | None = None, overwrite: bool = False,
        argv: list[str] | None = None) -> Path:
    """Train ``cfg`` and return its run folder. ``resume`` continues a run folder's last checkpoint.

    Under ``torchrun --nproc_per_node W`` (DDP: gloo on CPUs, NCCL on GPUs) each process takes an equal,
    contiguous part of every global batch of ``optim.batch_size`` images and DDP averages the gradients,
    so a step is the step of the global batch; each process draws its own augmentations (seeded by seed,
    epoch and rank). Rank 0 evaluates and writes the run folder; checkpoints are written at epoch ends only
    (no ``ckpt_every``, and Ctrl-C stops at once: a mid-epoch stop would have to agree across processes).
    """
    with leaves_process_group():
        return _fit(cfg, resume=resume, overwrite=overwrite, argv=argv)


def _fit(cfg: RunConfig, *, resume: str | Path | None, overwrite: bool, argv: list[str] | None) -> Path:
    if resume is not None:
        resume = Path(resume)
        saved = load_run_config(resume)
        # A resumed run continues its saved configuration: it may train for more epochs, on
        # another device or thread count, with or without progress bars; nothing else changes.
        cfg = resumed_config(saved, cfg, resume, "ckpt_every", "keep_last")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    _check_processes(cfg, resume)  # before joining the group: a refusal must not leave the others waiting
    device = setup_distributed(resolve_device(cfg.device))
    distributed, main_process = is_distributed(), rank() == 0

    # -- data, held on the device as uint8 once (checked before any folder is made) -------------
    train, test = load_data(cfg.data)
    check_data_fits_model(cfg, train)
    # rank 0 owns the folder; the others write nothing and know it only by name
    run_dir = on_main_process(lambda: prepare_run_dir(cfg, resume=resume is not None, overwrite=overwrite))
    run_dir = run_dir or Path(cfg.out_dir) / cfg.name
    seed_everything(cfg.seed)
    mean, std = train.channel_stats()
    normalize = Normalize(mean, std).to(device)
    augment = build_augment(cfg.data).to(device)
    mixing = cfg.data.mixup > 0 or cfg.data.cutmix > 0
    train_dev = train.to(device)

    # -- model and optimiser --------------------------------------------------------------------
    model, trained = data_parallel(ViT(cfg.model).to(device), device)  # trained: what the step calls (DDP or model)
    optimizer = build_optimizer(model, cfg.optim)
    steps_per_epoch = num_batches(len(train), cfg.optim.batch_size, drop_last=True)
    total_steps = cfg.optim.epochs * steps_per_epoch
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    start_epoch, step, train_time, resumed_epoch = 0, 0, 0.0, None
    metrics_path = run_dir / "metrics.jsonl"
    if resume is not None:  # every process loads the same checkpoint
        start_epoch, step, train_time, resumed_epoch = restore_checkpoint(run_dir / CHECKPOINT, model, optimizer,
                                                                          device)
        if main_process:
            truncate_metrics(metrics_path, start_epoch)
            save_json(run_dir / "config.json", to_dict(cfg))  # may now ask for more epochs than before
        log.info("resumed %s at epoch %d (step %d%s)", run_dir, start_epoch, step,
                 f", batch {resumed_epoch[0]} of epoch {start_epoch + 1}" if resumed_epoch else "")
    elif main_process:
        save_json(run_dir / "config.json", to_dict(cfg))
        (run_dir / "argv.json").write_text(json.dumps(argv if argv is not None else sys.argv) + "\n")
        metrics_path.write_text("")
    params = count_params(model)
    log.info("model: %s parameters; data: %d train / %d test images of %s%s", f"{params:,}", len(train), len(test),
             train.shape, f"; {world_size()} processes, {cfg.optim.batch_size // world_size()} images each a step"
             if distributed else "")

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                      enabled=False)
    ckpt_meta = {"mean": mean, "std": std, "classes": train.classes}
    ckpts = _Checkpointer(run_dir, cfg, model, optimizer, ckpt_meta)
    if resume is not None:
        ckpts.last = (start_epoch, step)
    best_acc = max((r["test_acc"] for r in read_rows(metrics_path)), default=None) if main_process else None
    with _DeferredInterrupt(enabled=not distributed) as interrupt:
        epoch = start_epoch
        for epoch in range(start_epoch, cfg.optim.epochs):
            model.train()
            # running accumulators of the epoch; a mid-epoch checkpoint carries them over
            if resumed_epoch is not None:
                done, loss_sum, correct, seen, elapsed = resumed_epoch
                loss_sum, correct = loss_sum.to(device), correct.to(device)
                resumed_epoch = None
            else:
                done, elapsed, seen = 0, 0.0, 0
                loss_sum = torch.zeros((), device=device)
                correct = torch.zeros((), device=device, dtype=torch.long)
            t0 = time.perf_counter() - elapsed
            order = epoch_order(len(train), cfg.seed, epoch).to(device)
            if distributed:  # each process its own augmentations, a pure function of (seed, epoch, rank)
                torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + rank())
            # the order is a pure function of (seed, epoch): a resumed epoch skips the batches done
            batches = itertools.islice(batch_indices(order, cfg.optim.batch_size, drop_last=True), done, None)
            bar = tqdm(batches, total=steps_per_epoch, initial=done, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                       disable=not (cfg.progress and main_process), leave=False, dynamic_ncols=True)
            for batch_no, idx in enumerate(bar, start=done + 1):
                # learning rate for this step
                lr = warmup_cosine(step, total_steps=total_steps, warmup_steps=warmup_steps,
                                   base_lr=cfg.optim.lr, min_lr=cfg.optim.min_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with _out_of_memory_hint(cfg.optim.batch_size, device):
                    # batch: slice (this process's part of it), scale to [0, 1], augment, standardise
                    local = shard(idx)
                    x = train_dev.images[local].float().div_(255)  # (B / W, C, H, W)
                    y = train_dev.labels[local]
                    x = augment(x)
                    if mixing:  # MixUp/CutMix: soft targets; y becomes the dominant label, for train accuracy
                        x, target, y = mix_batch(x, y, cfg.model.num_classes, mixup_alpha=cfg.data.mixup,
                                                 cutmix_alpha=cfg.data.cutmix,
                                                 smoothing=cfg.optim.label_smoothing)[:3]
                    x = normalize(x)
                    # forward, loss, backward, clip, step
                    with amp:
                        logits = trained(x)
                        loss = (F.cross_entropy(logits.float(), target) if mixing else
                                F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing))
                    loss_value = optimizer_step(loss, optimizer, model.parameters(), cfg.optim.grad_clip)
                    if not math.isfinite(loss_value):
                        bar.close()
                        kept = (f"the last good checkpoint (epoch {ckpts.last[0]}, step {ckpts.last[1]}) is kept "
                                f"in {run_dir / CHECKPOINT}" if ckpts.last is not None
                                else "no checkpoint had been written yet")
                        raise TrainingDiverged(
                            f"loss became {loss_value} at step {step} (epoch {epoch + 1}); stopped before the "
                            f"update; {kept}. Try a lower optim.lr (now {cfg.optim.lr})")
                step += 1
                # log
                loss_sum += loss.detach() * len(local)
                correct += (logits.argmax(-1) == y).sum()
                seen += len(local)
                if cfg.progress and main_process:
                    bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{correct.item() / seen:.3f}", lr=f"{lr:.2e}",
                                    img_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
                # mid-epoch checkpoint (every ckpt_every steps, or on Ctrl-C); the epoch's last step is
                # checkpointed below, after evaluation
                if batch_no < steps_per_epoch and (interrupt.requested or (
                        cfg.ckpt_every and step % cfg.ckpt_every == 0)):
                    ckpts.save(epoch, step, train_time, batch=batch_no, epoch_state={
                        "loss_sum": loss_sum, "correct": correct, "seen": seen,
                        "elapsed": time.perf_counter() - t0})
                    if interrupt.requested:
                        bar.close()
                        raise TrainingInterrupted(_interrupted_message(run_dir, epoch, step))
            epoch_time = time.perf_counter() - t0
            train_time += epoch_time
            if distributed:  # the epoch's train metrics over every process's part
                loss_sum, correct, seen = sum_over_processes(loss_sum, correct, seen)
                if not main_process:
                    continue

            # evaluate, record, checkpoint
            ev = evaluate(model, test, normalize)
            row = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": loss_sum.item() / seen,
                   "train_acc": correct.item() / seen, "test_loss": ev["loss"], "test_acc": ev["acc"],
                   "epoch_time_s": round(epoch_time, 4), "images_per_s": round(seen / epoch_time, 1)}
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            ckpts.save(epoch + 1, step, train_time, test_acc=ev["acc"])
            if best_acc is None or ev["acc"] > best_acc:  # ties keep the earlier epoch
                best_acc = ev["acc"]
                link_or_copy(run_dir / CHECKPOINT, run_dir / BEST)
            log.info("epoch %d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  lr %.2e  %.0f img/s",
                     epoch + 1, cfg.optim.epochs, row["train_loss"], row["train_acc"], ev["loss"], ev["acc"], lr,
                     row["images_per_s"])
            if interrupt.requested and epoch + 1 < cfg.optim.epochs:
                raise TrainingInterrupted(_interrupted_message(run_dir, epoch + 1, step))

    # -- final artefacts ----------------------------------------------------------------------------
    if not main_process:
        return run_dir
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    save_model(run_dir / "model.safetensors", model, ckpt_meta)
    final = {"test_acc": rows[-1]["test_acc"] if rows else None, "test_loss": rows[-1]["test_loss"] if rows else None,
             "best_test_acc": max((r["test_acc"] for r in rows), default=None), "epochs": len(rows),
             "train_time_s": round(train_time, 3), "params": params, "processes": world_size()}
    save_json(run_dir / "metrics.json", final)
    plot_curves(rows, run_dir / "curves.png")
    return run_dir


def _check_processes(cfg: RunConfig, resume: Path | None) -> None:
    """What torchrun's W processes (WORLD_SIZE) cannot do: split a batch unevenly, stop inside an epoch."""
    processes = torchrun_processes()
    if cfg.optim.batch_size % processes:
        raise ValueError(f"optim.batch_size={cfg.optim.batch_size} must be divisible by the {processes} "
                         f"processes: each takes an equal part of the global batch")
    if processes > 1 and cfg.ckpt_every:
        raise ValueError(f"ckpt_every={cfg.ckpt_every}: under torchrun checkpoints are written at epoch ends "
                         f"only (the processes would have to agree on one step); use ckpt_every=0")
    if processes > 1 and resume is not None and int(load_meta(resume / CHECKPOINT).get("batch", 0)) > 0:
        raise ValueError(f"{resume / CHECKPOINT} was written inside an epoch: resume it in one process "
                         f"(vitlab train --resume {resume}), or under torchrun from an epoch-end checkpoint")


class _Checkpointer:
    """Writes checkpoint.safetensors (always the newest), keeps the last ``keep_last`` as
    checkpoint-stepNNNNNN.safetensors when keep_last > 1, and remembers the last one written."""

    def __init__(self, run_dir: Path, cfg: RunConfig, model, optimizer, extra: dict):
        self.run_dir, self.cfg, self.model, self.optimizer, self.extra = run_dir, cfg, model, optimizer, extra
        self.last: tuple[int, int] | None = None  # (finished epochs, step) of the newest checkpoint

    def save(self, epoch: int, step: int, train_time: float, *, batch: int = 0, epoch_state: dict | None = None,
             test_acc: float | None = None) -> None:
        path = self.run_dir / CHECKPOINT
        save_checkpoint(path, self.model, self.optimizer, self.cfg, epoch, step, train_time, self.extra,
                         batch=batch, epoch_state=epoch_state, test_acc=test_acc)
        self.last = (epoch, step)
        if self.cfg.keep_last > 1:
            link_or_copy(path, self.run_dir / STEP_CHECKPOINT.format(step=step))
            for old in step_checkpoints(self.run_dir)[:-self.cfg.keep_last]:
                old.unlink(missing_ok=True)


def step_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoint-stepNNNNNN.safetensors files of a run, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("checkpoint-step*.safetensors")
             if (m := re.fullmatch(r"checkpoint-step(\d+)\.safetensors", p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(path: Path, model, optimizer, cfg: RunConfig, epoch: int, step: int, train_time: float,
                    extra: dict, *, batch: int = 0, epoch_state: dict | None = None,
                    test_acc: float | None = None, extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
    """``epoch`` counts finished epochs; ``batch`` the batches done of the next one (0 at an epoch end),
    whose running sums ``epoch_state`` carries (loss_sum, correct, seen, elapsed). ``extra_tensors``
    (e.g. a MoCo queue) are stored under ``extra.<name>``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": v for k, v in (extra_tensors or {}).items()})
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {"epoch": epoch, "step": step, "batch": batch, "train_time_s": train_time, "config": to_dict(cfg),
            "optimizer": opt_meta, "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "rng_python": _py_state_to_json(random.getstate()),
            # the data order is epoch_order(n, seed, epoch): (seed, epoch, batch) pin it down
            "data_order": {"seed": cfg.seed, "epoch": epoch, "batch": batch}, **extra}
    if test_acc is not None:
        meta["test_acc"] = test_acc
    if epoch_state is not None:
        # the running sums stay tensors so that they come back bit for bit
        tensors["loop.loss_sum"] = epoch_state["loss_sum"]
        tensors["loop.correct"] = epoch_state["correct"]
        meta["epoch_seen"] = epoch_state["seen"]
        meta["epoch_elapsed_s"] = epoch_state["elapsed"]
    save_tensors(path, tensors, meta)


def restore_checkpoint(path: Path, model, optimizer, device,
                       extra_tensors: dict[str, torch.Tensor] | None = None) -> tuple[int, int, float, tuple | None]:
    """Load a checkpoint into ``model``/``optimizer`` and the random states; returns (finished epochs, step,
    training time, and for a mid-epoch checkpoint (batches done, loss_sum, correct, seen, elapsed)).
    ``extra_tensors``, when given, receives what ``save_checkpoint`` stored under that name."""
    tensors, meta = load_tensors(path, device="cpu")
    if extra_tensors is not None:
        extra_tensors.update({k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")})
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
        epoch_state = None
        if int(meta.get("batch", 0)) > 0:
            epoch_state = (int(meta["batch"]), tensors["loop.loss_sum"], tensors["loop.correct"],
                           int(meta["epoch_seen"]), float(meta["epoch_elapsed_s"]))
        return int(meta["epoch"]), int(meta["step"]), float(meta["train_time_s"]), epoch_state
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} lacks {e}: not a vitlab training checkpoint") from e
    except (ValueError, TypeError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from e


class _DeferredInterrupt:
    """Turn Ctrl-C (SIGINT) into a request the loop honours between steps, so that the checkpoint it
    writes holds a whole step, never a half-applied optimiser update. A second Ctrl-C interrupts at once.
    ``enabled=False`` (under torchrun) leaves Ctrl-C as it is: the processes could not agree on one step."""

    def __init__(self, enabled: bool = True):
        self.requested = False
        self._previous = None
        self.enabled = enabled

    def _handle(self, signum, frame):
        self.requested = True
        log.warning("interrupt: stopping after this step and saving a checkpoint (Ctrl-C again to abort)")
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if threading.current_thread() is threading.main_thread() and self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _interrupted_message(run_dir: Path, epoch: int, step: int) -> str:
    return (f"interrupted at step {step} (epoch {epoch + 1}); saved {run_dir / CHECKPOINT}. "
            f"Continue with: vitlab train --resume {run_dir}")


def is_out_of_memory(e: BaseException) -> bool:
    """True for a device or host allocation failure (CUDA's OutOfMemoryError, or the RuntimeError the
    CPU and MPS allocators raise)."""
    if isinstance(e, getattr(torch, "OutOfMemoryError", ())) or isinstance(e, MemoryError):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


@contextlib.contextmanager
def _out_of_memory_hint(batch_size: int, device: torch.device):
    """Re-raise an out-of-memory error as TrainingOutOfMemory with what to try instead."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        raise TrainingOutOfMemory(
            f"out of memory on {device} in a training step with optim.batch_size={batch_size}; try a smaller "
            f"--batch-size (e.g. {max(1, batch_size // 2)}) or a smaller model. ({str(e).splitlines()[0]})") from e


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep exactly the epochs the checkpoint has seen, so a resumed run logs each epoch once."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [line for line in rows if json.loads(line)["epoch"] <= epochs_done]
    atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode())


def _py_state_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_state_from_json(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)

