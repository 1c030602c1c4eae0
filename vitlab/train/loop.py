"""The training loop, one for every task: a flat, commented sequence in the order nanoGPT made familiar.

Per step: learning rate -> batch (read ahead) -> forward/loss (the task's ``step``) -> backward -> clip -> step ->
weight average (``optim.ema``, vitlab.train.ema) -> log. Per epoch: evaluate (the average, when there is one) on the
validation split -> append metrics -> best checkpoint -> checkpoint. At the end:
the test split, once, and the files the run leaves. What a task adds (its data, model, step, evaluation,
saved files and headline metric) is a small record in vitlab/train/tasks/; everything here is shared, so
every task has every feature: torchrun/DDP, bf16 autocast on CUDA, Ctrl-C and SIGTERM, mid-epoch and
keep-last-K checkpoints, the best checkpoint, resume and roll-back, the out-of-memory hint, the divergence
check, progress bars and curves. With ``init.source`` a run starting from step 0 takes its initial weights from
pretrained ones (vitlab.train.finetune); ``init.freeze`` and ``optim.layer_decay`` shape what the optimiser trains.

A run retraces an uninterrupted one bit for bit on CPU after any stop: the learning rate is a pure function
of the step, the data order of (seed, epoch), the random streams are re-seeded from (seed, epoch, rank) at
every epoch start, and a checkpoint inside an epoch carries every process's random state and the epoch's
running sums (vitlab.train.checkpoint).
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import RunConfig
from ..configio import to_dict
from ..data import Normalize, batch_indices, epoch_order, num_batches, read_batches
from ..errors import ConfigError, RunFolderError, TrainingDiverged, TrainingInterrupted, TrainingOutOfMemory
from ..fileio import atomic_copy, save_json
from ..models import ViT, count_params
from .artifacts import MODEL_FILE
from .checkpoint import (BEST, CHECKPOINT, STEP_CHECKPOINT, Progress, load_meta, restore_checkpoint,
                         save_checkpoint)
from .ema import WeightAverage
from .events import Events
from .distributed import (agree, broadcast_buffers, data_parallel, each_process, gather_objects, is_distributed,
                          launched_by_torchrun, leaves_process_group, on_main_process, rank, setup_distributed, shard,
                          sum_over_processes, timeout_is_one_line, torchrun_processes, world_size)
from .finetune import freeze, initialise
from .interrupt import StopRequest
from .optim import build_optimizer
from .plots import plot_curves
from .rng import RngState, seed_epoch, seed_everything
from .run_dir import (METRICS, RunFolder, append_row, keep_rows, load_run_config, read_rows, resumed_config, roll_back,
                      step_checkpoints)
from .schedule import epochs_still_within, epochs_within, warmup_cosine
from .step import optimizer_step
from .tasks import Context, Task, get_task

log = logging.getLogger(__name__)
COMPILE_MIN_STEPS = 2000  # compile='auto' compiles a CPU run of at least this many steps (compile_step)
WARM_STEPS = 10  # a time budget measures the pace of the first epoch after this many steps (compilation, caches)


def fit(cfg: RunConfig, *, resume: str | Path | None = None, rollback: str | Path | None = None,
        overwrite: bool = False, argv: list[str] | None = None) -> Path:
    """Train ``cfg`` (any task) and return its run folder.

    Args:
        cfg: the run configuration; for a resumed run only its RESUMABLE_KEYS are taken (more epochs, device,
            threads, progress bars, checkpoint cadence, timeout), the rest is the run's own config.json.
        resume: a run folder to continue from its last checkpoint (from step 0 if it has none yet).
        rollback: with ``resume``, continue from this checkpoint file instead (e.g. a checkpoint-stepN file
            of ``--keep-last``): it becomes checkpoint.safetensors, newer step files are renamed abandoned-*.
        overwrite: replace an existing run folder of the same name (only once every check has passed).
        argv: the command line recorded in argv.json.

    Under ``torchrun --nproc_per_node W`` (DDP: gloo on CPUs, NCCL on GPUs) each process takes an equal,
    contiguous part of every global batch of ``optim.batch_size`` images and DDP averages the gradients,
    so a step is the step of the global batch; each process draws its own augmentations. Every process
    evaluates its part of the validation split; rank 0 alone writes the run folder.
    """
    with leaves_process_group():
        return _fit(cfg, resume=Path(resume) if resume else None, rollback=Path(rollback) if rollback else None,
                    overwrite=overwrite, argv=argv)


def _fit(cfg: RunConfig, *, resume: Path | None, rollback: Path | None, overwrite: bool,
         argv: list[str] | None) -> Path:
    # -- the configuration: a resumed run continues its own --------------------------------------------------
    if rollback is not None and resume is None:
        raise ConfigError("a roll-back (--from FILE) continues a run: give the run with --resume RUN as well")
    if resume is not None:
        cfg = resumed_config(load_run_config(resume), cfg, resume)
    task = get_task(cfg.task)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    source = rollback or (resume / CHECKPOINT if resume is not None else None)  # the checkpoint to start from
    source = source if source is not None and (rollback is not None or source.exists()) else None
    _check_processes(cfg, source)  # before joining the group: a refusal must not leave the others waiting
    device = setup_distributed(resolve_device(cfg.device), cfg.dist_timeout_s)

    # -- data and model, every check done before the run folder is touched ------------------------------------
    splits = task.data(cfg)
    check_memory(task, cfg, splits, device)
    seed_everything(cfg.seed)  # the model's initial weights come from the seed
    with _out_of_memory_hint(cfg.optim.batch_size, device, "building the model"):
        module = task.model(cfg, splits).to(device)
    encoder = task.encoder(module)  # the ViT inside it
    stats = None  # (mean, std) normalising the inputs; None: the training split's
    if cfg.init.source and source is None:  # from step 0 the weights are SRC's; a continuing run's are its checkpoint's
        cfg, stats = initialise(module, encoder, cfg, splits.train.classes)  # records init.sha256
    freeze(encoder, cfg.init)
    module, trained = data_parallel(module, device)  # trained: what a step calls (DDP, or the module itself)
    steps_per_epoch = num_batches(len(splits.train), cfg.optim.batch_size, drop_last=True)
    total_steps = cfg.optim.epochs * steps_per_epoch
    trained = compile_step(trained, cfg.compile, device, total_steps)
    optimizer = build_optimizer(module, cfg.optim, encoder)
    average = WeightAverage(module, cfg.optim.ema) if cfg.optim.ema else None  # optim.ema: what is evaluated
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    progress, rng = Progress(), None
    if source is not None:  # every process loads the same checkpoint, and normalises as the run always has
        progress, rng, header = restore_checkpoint(source, module, optimizer, device,
                                                   average.module if average else None)
        stats = (header["mean"], header["std"]) if "mean" in header and "std" in header else None
    elif resume is not None:
        log.info("%s has no checkpoint yet: starting it again from step 0 with its saved configuration", resume)
    mean, std = stats or splits.train.channel_stats()
    skip_per_forward_check(module, mean, std)
    if average is not None:
        skip_per_forward_check(average.module, mean, std)
    ctx = Context(cfg, device, Normalize(mean, std).to(device), task.augment(cfg, splits).to(device),
                  splits.train.to(device), total_steps=total_steps)

    # -- the run folder: locked for the whole run by rank 0, which alone writes it ------------------------------
    folder = on_main_process(lambda: RunFolder.open(cfg, resume=resume is not None, overwrite=overwrite))
    run_dir = folder.path if folder is not None else Path(cfg.out_dir) / cfg.name
    try:
        return _train(cfg, task, ctx, splits, module, trained, optimizer, average, progress, rng, run_dir,
                      steps_per_epoch=steps_per_epoch, total_steps=total_steps, warmup_steps=warmup_steps,
                      resume=resume, rollback=rollback, argv=argv)
    finally:
        if folder is not None:
            folder.close()


def _train(cfg, task: Task, ctx: Context, splits, module, trained, optimizer, average: WeightAverage | None,
           progress: Progress, rng: list[RngState] | None, run_dir: Path, *, steps_per_epoch: int, total_steps: int,
           warmup_steps: int, resume: Path | None, rollback: Path | None, argv: list[str] | None) -> Path:
    main_process = rank() == 0
    metrics_path = run_dir / METRICS
    meta = {"task": cfg.task, "mean": ctx.normalize.mean.flatten().tolist(),
            "std": ctx.normalize.std.flatten().tolist(), "classes": splits.train.classes, "resize": cfg.data.resize}
    if main_process:
        with _disk_full_is_one_line(run_dir, progress):
            if rollback is not None:
                roll_back(run_dir, rollback, progress)
            if resume is not None:
                keep_rows(metrics_path, progress.epoch)  # rows past the checkpoint are trained again
            else:
                (run_dir / "argv.json").write_text(json.dumps(argv if argv is not None else sys.argv) + "\n")
                metrics_path.write_text("")
            save_json(run_dir / "config.json", to_dict(cfg))  # a resumed run may now ask for more epochs
    params, trains = count_params(module), sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = f": init.freeze={cfg.init.freeze}" if cfg.init.freeze != "none" else ""
    log.info("%s: %s parameters%s; data: %d train / %d val / %d test images of %s%s", cfg.task, f"{params:,}",
             f" ({trains:,} trained{frozen})" if trains != params else "",
             len(splits.train), len(splits.val), len(splits.test), splits.train.shape,
             f"; {world_size()} processes, {cfg.optim.batch_size // world_size()} images each a step"
             if is_distributed() else "")
    if resume is not None:
        log.info("resumed %s at epoch %d, step %d%s", run_dir, progress.epoch, progress.step,
                 f" (batch {progress.batch} of epoch {progress.epoch + 1})" if progress.batch else "")

    events = Events(run_dir, enabled=cfg.tensorboard and main_process,
                    purge_step=progress.step if resume is not None else None)
    try:
        return _epochs(cfg, task, ctx, splits, module, trained, optimizer, average, progress, rng, run_dir, meta,
                       events, steps_per_epoch=steps_per_epoch, total_steps=total_steps, warmup_steps=warmup_steps)
    finally:
        events.close()


def _epochs(cfg, task: Task, ctx: Context, splits, module, trained, optimizer, average: WeightAverage | None,
            progress: Progress, rng: list[RngState] | None, run_dir: Path, meta: dict, events: Events, *,
            steps_per_epoch: int, total_steps: int, warmup_steps: int) -> Path:
    main_process, device = rank() == 0, ctx.device
    averaged = None if average is None else average.module  # optim.ema's copy, checkpointed beside the weights
    evaluated = module if averaged is None else averaged  # validated, kept as best, tested and saved
    last_saved = replace(progress)  # what the newest checkpoint on disk holds (for messages)
    val_meta: dict = {}  # the validation metrics of the epoch a checkpoint ends

    def checkpoint(*, best: bool = False) -> None:
        """Every process hands in its random state; rank 0 writes the checkpoint (and the best, and a step file)."""
        states = gather_objects(RngState.capture())
        if not main_process:
            return
        with _disk_full_is_one_line(run_dir, last_saved):
            path = run_dir / CHECKPOINT
            if best:  # the best first: a kill between the two leaves a best that is never behind the checkpoint
                save_checkpoint(run_dir / BEST, module, optimizer, cfg, progress, states, {**meta, **val_meta},
                                averaged)
                atomic_copy(run_dir / BEST, path)
            else:
                save_checkpoint(path, module, optimizer, cfg, progress, states, {**meta, **val_meta}, averaged)
            if cfg.keep_last > 1:
                atomic_copy(path, run_dir / STEP_CHECKPOINT.format(step=progress.step))
                for old in step_checkpoints(run_dir)[:-cfg.keep_last]:
                    old.unlink(missing_ok=True)
        last_saved.epoch, last_saved.step = progress.epoch, progress.step

    amp = autocast_for(cfg.precision, device, total_steps)
    lr = cfg.optim.lr
    # the training time of each epoch after the first (a time budget's pace; rank 0's decides, so only it reads them)
    later_epochs_s = [r["epoch_time_s"] for r in read_rows(run_dir / METRICS)[1:]] if main_process else []
    with StopRequest(abort_on_second=not launched_by_torchrun()) as stop, \
            timeout_is_one_line(cfg.dist_timeout_s, lambda: f"at step {progress.step}"):
        for epoch in itertools.count(progress.epoch):
            if epoch >= cfg.optim.epochs:  # (a loop, not a range: a time budget may shrink the epochs)
                break
            module.train()
            if progress.batch:  # inside an epoch: this process's random state and the epoch's sums so far
                rng[rank()].restore()
                sums = {k: v[rank()] if v.dim() else (v if main_process else torch.zeros_like(v))
                        for k, v in progress.sums.items()}  # 0-d: an older checkpoint's sum over the processes
                t0 = time.perf_counter() - progress.elapsed
            else:  # every process its own random stream, a pure function of (seed, epoch, rank)
                seed_epoch(cfg.seed, epoch, rank())
                sums, t0 = {}, time.perf_counter()
            done = progress.batch
            warm_s = None  # the first epoch: when its first WARM_STEPS steps (compilation, cold caches) were done
            # the order is a pure function of (seed, epoch): a resumed epoch skips the batches done
            order = epoch_order(len(splits.train), cfg.seed, epoch)
            batches = itertools.islice(batch_indices(order, cfg.optim.batch_size, drop_last=True), done, None)
            # this process's part of each batch, read (a store's in the background, the next while this one
            # trains) and on the device
            batches = read_batches(ctx.train, (shard(idx) for idx in batches), device)
            bar = tqdm(batches, total=steps_per_epoch, initial=done, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                       disable=not (cfg.progress and main_process), leave=False, dynamic_ncols=True)
            for batch_no, (images, labels) in enumerate(bar, start=done + 1):
                # learning rate for this step
                lr = warmup_cosine(progress.step, total_steps=total_steps, warmup_steps=warmup_steps,
                                   base_lr=cfg.optim.lr, min_lr=cfg.optim.min_lr)
                for group in optimizer.param_groups:  # layer-wise decay: each group its scale of the schedule's lr
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                # forward and loss, backward, clip, step
                ctx.step = progress.step
                with _out_of_memory_hint(cfg.optim.batch_size, device):
                    with amp:
                        loss, stats = task.step(trained, images, labels, ctx)
                    loss_value = optimizer_step(loss, optimizer, module.parameters(), cfg.optim.grad_clip)
                if not math.isfinite(loss_value):
                    bar.close()
                    raise TrainingDiverged(f"loss became {loss_value} at step {progress.step} (epoch {epoch + 1}); "
                                           f"stopped before the update; {_kept(run_dir, last_saved)}. Try a lower "
                                           f"optim.lr (now {cfg.optim.lr})")
                if average is not None:
                    average.update(progress.step)
                events.step(progress.step, loss_value, lr)
                progress.step += 1
                if epoch == 0 and batch_no == WARM_STEPS and done < WARM_STEPS:
                    warm_s = time.perf_counter() - t0
                # log: running sums of the epoch's training metrics, on the device (no sync)
                for k, v in stats.items():
                    sums[k] = sums[k] + v if k in sums else v
                if cfg.progress and main_process:
                    bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", refresh=False,
                                    img_s=f"{batch_no * cfg.optim.batch_size / (time.perf_counter() - t0):.0f}")
                # mid-epoch checkpoint (every ckpt_every steps, or on a stop request every process agrees on);
                # the epoch's last step is checkpointed below, after evaluation
                stopping = agree(stop.requested)
                if batch_no < steps_per_epoch and (stopping or (cfg.ckpt_every and
                                                                progress.step % cfg.ckpt_every == 0)):
                    progress.batch, progress.elapsed = batch_no, time.perf_counter() - t0
                    progress.sums = dict(zip(sums, each_process(*sums.values())))
                    checkpoint()
                    if stopping:
                        bar.close()
                        raise TrainingInterrupted(_interrupted_message(run_dir, stop.signal_name, progress))
            bar.close()
            epoch_time = time.perf_counter() - t0
            progress.train_time_s += epoch_time
            if cfg.optim.time_budget_s:  # the epochs the budget holds: fitted after the first, cut if they slow down
                later = (None if warm_s is None or steps_per_epoch < 2 * WARM_STEPS else
                         (epoch_time - warm_s) / (steps_per_epoch - WARM_STEPS) * steps_per_epoch)
                if epoch > 0:
                    later_epochs_s.append(epoch_time)
                epochs = _budget_epochs(cfg, epoch, epoch_time, later, progress.train_time_s, later_epochs_s)
                if epoch == 0 or epochs != cfg.optim.epochs:
                    cfg, total_steps, warmup_steps = _refit(cfg, epochs, steps_per_epoch, warmup_steps)
                    ctx.total_steps = total_steps
                    if main_process:  # before this epoch's checkpoint: a resumed run keeps the fitted epochs
                        with _disk_full_is_one_line(run_dir, last_saved):
                            save_json(run_dir / "config.json", to_dict(cfg))
            totals = dict(zip(sums, sum_over_processes(*sums.values())))  # every process's part of the epoch
            n = float(totals.pop("n"))

            # evaluate on the validation split, record, keep the best, checkpoint
            broadcast_buffers(evaluated)  # every process evaluates rank 0's model
            with amp:
                val = task.evaluate(evaluated, splits.val, ctx)
                if average is not None:  # the trained weights too, to show what averaging gains
                    broadcast_buffers(module)
                    val |= {f"trained_{k}": v for k, v in task.evaluate(module, splits.val, ctx).items()}
            value = val[task.metric]
            best = math.isfinite(value) and (progress.best_value is None or value > progress.best_value)
            if best:  # ties keep the earlier epoch
                progress.best_value, progress.best_epoch = value, epoch + 1
            progress.epoch, progress.batch, progress.sums, progress.elapsed = epoch + 1, 0, {}, 0.0
            row = {"epoch": epoch + 1, "step": progress.step, "lr": lr,
                   **{f"train_{k}": float(v) / n for k, v in totals.items()}, **{f"val_{k}": v for k, v in val.items()},
                   "epoch_time_s": round(epoch_time, 4),
                   "images_per_s": round(steps_per_epoch * cfg.optim.batch_size / epoch_time, 1)}
            val_meta = {f"val_{k}": v for k, v in val.items()}
            if main_process:
                with _disk_full_is_one_line(run_dir, last_saved):
                    append_row(run_dir / METRICS, row)
                events.scalars({k: v for k, v in row.items() if k not in ("epoch", "step", "lr")}, progress.step)
            checkpoint(best=best)
            log.info("epoch %d/%d  %s  lr %.2e  %.0f img/s", epoch + 1, cfg.optim.epochs,
                     "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train_", "val_"))), lr,
                     row["images_per_s"])
            if agree(stop.requested) and epoch + 1 < cfg.optim.epochs:
                raise TrainingInterrupted(_interrupted_message(run_dir, stop.signal_name, progress))

        # -- the test split, once, on the final model; the files the run leaves --------------------------------
        broadcast_buffers(evaluated)
        with amp:
            test = task.evaluate(evaluated, splits.test, ctx)
    if not main_process:
        return run_dir
    with _disk_full_is_one_line(run_dir, last_saved):
        rows = read_rows(run_dir / METRICS)
        task.save(run_dir / MODEL_FILE, evaluated, meta)
        final = {"task": cfg.task, "metric": f"val_{task.metric}", **{f"test_{k}": v for k, v in test.items()},
                 **{k: v for k, v in (rows[-1] if rows else {}).items() if k.startswith("val_")},
                 f"best_val_{task.metric}": progress.best_value, "best_epoch": progress.best_epoch,
                 "epochs": progress.epoch, "train_time_s": round(progress.train_time_s, 3),
                 "params": count_params(module), "processes": world_size(),
                 "precision": "bf16" if isinstance(amp, torch.autocast) else "fp32"}  # what `auto` became
        save_json(run_dir / "metrics.json", final)
        plot_curves(rows, task.metric, run_dir / "curves.png")
        events.scalars({f"test_{k}": v for k, v in test.items()}, progress.step)
    log.info("test (once, final model): %s", "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    return run_dir


def _budget_epochs(cfg: RunConfig, epoch: int, epoch_s: float, later_epoch_s: float | None, spent_s: float,
                   later_epochs_s: list[float] = ()) -> int:
    """``optim.time_budget_s``: the epochs the run trains, decided by rank 0's clock (so every process trains the same
    schedule) at the end of epoch ``epoch`` (0-based). After the first: the whole epochs that fit at its pace (the
    steps after the first WARM_STEPS, ``later_epoch_s``), at most ``optim.epochs``. After a later one: the epochs
    fixed so far, unless the epochs have slowed down so that they would overrun the budget; then as many as still
    fit at the mean pace of the epochs after the first (``later_epochs_s``; one slow epoch alone moves it little)."""
    budget, planned = cfg.optim.time_budget_s, cfg.optim.epochs
    if epoch == 0:
        epochs = epochs_within(budget, epoch_s, planned, later_epoch_s)
        later = later_epoch_s or epoch_s
        pace = f" (then {later:.1f} s an epoch)" if later_epoch_s else ""
        why = (f"the first epoch trained in {epoch_s:.1f} s{pace}, so the run trains {{}} epoch(s)" +
               (f" of at most {planned}" if epochs < planned else
                f" (optim.epochs; the budget would hold {1 + max(budget - epoch_s, 0) / max(later, 1e-9):.1f})"))
    else:
        pace = sum(later_epochs_s) / len(later_epochs_s) if later_epochs_s else epoch_s
        epochs = epochs_still_within(budget, spent_s, epoch + 1, pace, planned)
        why = (f"after epoch {epoch + 1} ({spent_s:.0f} s in all; epochs after the first now take {pace:.1f} s) "
               f"{planned} epochs would overrun the budget, so the run trains {{}}")
    epochs = gather_objects(epochs)[0]
    if epoch == 0 or epochs != planned:
        log.info("optim.time_budget_s %g: %s", budget, why.format(epochs))
    return epochs


def _refit(cfg: RunConfig, epochs: int, steps_per_epoch: int, warmup_steps: int) -> tuple[RunConfig, int, int]:
    """``cfg`` with ``epochs`` (a time budget's), the run's optimiser steps, and the warm-up, kept in steps but never
    more than half the fitted run. The cosine ends at the new last step: a cut after the first epoch lowers the lr
    of the steps left a little."""
    total_steps = epochs * steps_per_epoch
    warmup = warmup_steps if epochs == cfg.optim.epochs else min(warmup_steps, total_steps // 2)
    return replace(cfg, optim=replace(cfg.optim, epochs=epochs)), total_steps, warmup


def compile_step(trained: torch.nn.Module, setting: str, device: torch.device, total_steps: int) -> torch.nn.Module:
    """``trained`` under torch.compile when ``setting`` (RunConfig.compile) says so.

    ``auto`` compiles on CUDA, and on a CPU when the run has at least COMPILE_MIN_STEPS optimiser steps: compiling
    costs 15-60 s there and makes a step 1.1-1.3x faster (benchmarks/step_speed.md), so a short run (the default
    digits job: 500 steps in ~10 s) would only wait for it. Under ``auto`` a compiler that fails (no C++ compiler,
    an unsupported operation) falls back to running eagerly with a warning; ``on`` lets the error stop the run."""
    long_run = total_steps >= COMPILE_MIN_STEPS
    if setting == "on" or (setting == "auto" and (device.type == "cuda" or (device.type == "cpu" and long_run))):
        log.info("compiling the training step (torch.compile%s; the first steps wait for it)",
                 f", compile=auto: {total_steps:,} steps on {device.type}" if setting == "auto" else "")
        if setting == "auto":
            from torch import _dynamo
            _dynamo.config.suppress_errors = True  # a failed compile runs eagerly instead
        return torch.compile(trained)
    return trained


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16). Without them bf16 autocast is many times
    slower than fp32; with them it may be faster or slower (:func:`cpu_bf16_speedup`)."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # a torch without it: assume none
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


BF16_MIN_SPEEDUP = 1.25  # precision=auto takes bf16 on a CPU whose bf16 matmul is at least this much faster


@functools.cache
def cpu_bf16_speedup(threads: int) -> float:
    """How much faster this CPU multiplies bf16 than fp32 matrices on ``threads`` threads (fp32 time / bf16 time,
    the best of 5 each, a (1024, 768) @ (768, 768) product: a ViT block's shapes); 0.0, untimed, without bf16
    instructions. Measured because the flags do not decide it: a step was 1.86x faster in bf16 on an AMD EPYC with
    AVX512-BF16 and 1.27x slower on an Intel Xeon with AVX512-BF16 but no AMX (benchmarks/cpu_bf16.md)."""
    if not cpu_has_bf16():
        return 0.0

    def best_time(a: torch.Tensor, b: torch.Tensor) -> float:
        a @ b  # warm-up
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        return min(times)

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(1024, 768), torch.randn(768, 768)
        return best_time(a, b) / best_time(a.bfloat16(), b.bfloat16())
    finally:
        torch.set_num_threads(previous)


def autocast_for(precision: str, device: torch.device, total_steps: int = 0):
    """The context the forward passes run in (RunConfig.precision): bf16 autocast, or plain fp32.

    ``auto`` takes bf16 on CUDA, and on a CPU for a run of at least COMPILE_MIN_STEPS steps when a bf16 matmul is at
    least BF16_MIN_SPEEDUP times faster than fp32 there (:func:`cpu_bf16_speedup`, rank 0's measurement for every
    process): a short run (the default digits job, the tests) gains seconds at most and keeps fp32's exact numbers.
    ``bf16`` and ``fp32`` force it on or off. The weights, the optimiser and the losses stay fp32."""
    if precision == "auto" and device.type == "cpu" and total_steps >= COMPILE_MIN_STEPS:
        threads = torch.get_num_threads()  # rank 0 alone times it: ranks timing side by side would slow each other
        speedup = gather_objects(on_main_process(lambda: cpu_bf16_speedup(threads)))[0]
        if speedup >= BF16_MIN_SPEEDUP:
            log.info("bf16 autocast (precision=auto: %s steps; a bf16 matmul is %.2fx fp32's on this CPU)",
                     f"{total_steps:,}", speedup)
            return torch.autocast("cpu", dtype=torch.bfloat16)
        if speedup > 0:
            log.info("fp32 (precision=auto: a bf16 matmul is only %.2fx fp32's on this CPU)", speedup)
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def skip_per_forward_check(module: torch.nn.Module, mean, std) -> None:
    """The engine's inputs are uint8 images (ImageSet holds nothing else), standardised by ``mean`` and ``std``:
    finite whenever those are finite and std > 0. Checked here once, so the ViTs in ``module`` skip their
    per-forward NaN/Inf scan of every batch (ViT.check_finite)."""
    mean, std = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(std, dtype=torch.float64)
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise ConfigError(f"the input statistics must be finite with std > 0, got mean={mean.tolist()} "
                          f"std={std.tolist()}")
    for m in module.modules():
        if isinstance(m, ViT):
            m.check_finite = False


# -- checks made before any process group or run folder exists -------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} asked for, but CUDA is not available; use device='cpu' or 'auto'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r} asked for, but MPS is not available; use device='cpu' or 'auto'")
    return device


def _check_processes(cfg: RunConfig, source: Path | None) -> None:
    """What torchrun's W processes (WORLD_SIZE) cannot do: split a batch unevenly, or continue inside an epoch a
    checkpoint written by another number of processes (each process's random stream is in it)."""
    processes = torchrun_processes()
    if cfg.optim.batch_size % processes:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size} must be divisible by the {processes} "
                          f"processes: each takes an equal part of the global batch")
    if source is not None:
        meta = load_meta(source)
        written_by = int(meta.get("world_size", 1))
        if int(meta.get("batch", 0)) > 0 and written_by != processes:
            raise ConfigError(f"{source} was written inside an epoch by {written_by} process(es): resume it with "
                              f"{written_by} (it holds each one's random stream), or from an epoch-end checkpoint")


def check_memory(task: Task, cfg: RunConfig, splits, device: torch.device) -> None:
    """Refuse a model whose weights, gradients and AdamW moments (4 fp32 copies) cannot fit in the memory the
    device has free, before anything is allocated (the model is counted on the meta device)."""
    with torch.device("meta"):
        params = count_params(task.model(cfg, splits))
    need = 16 * params
    free = _free_bytes(device)
    if free is not None and need > free:
        raise ConfigError(f"the model has {params:,} parameters: training it needs at least {need / 2**30:.1f} GiB "
                          f"for weights, gradients and AdamW's two moments, more than the {free / 2**30:.1f} GiB free "
                          f"on {device}; choose a smaller model (model.dim, model.depth, --size)")


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def is_out_of_memory(e: BaseException) -> bool:
    """True for a device or host allocation failure (CUDA's OutOfMemoryError, or the RuntimeError the
    CPU and MPS allocators raise)."""
    if isinstance(e, getattr(torch, "OutOfMemoryError", ())) or isinstance(e, MemoryError):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


@contextlib.contextmanager
def _out_of_memory_hint(batch_size: int, device: torch.device, where: str = "a training step"):
    """Re-raise an out-of-memory error as TrainingOutOfMemory with what to try instead."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        raise TrainingOutOfMemory(
            f"out of memory on {device} in {where} with optim.batch_size={batch_size}; try a smaller "
            f"--batch-size (e.g. {max(1, batch_size // 2)}) or a smaller model. ({str(e).splitlines()[0]})") from e


# -- what the run folder says when a run stops --------------------------------------------------------------------
def _kept(run_dir: Path, last: Progress) -> str:
    if last.step == 0:
        return "no checkpoint had been written yet"
    return f"the last checkpoint (epoch {last.epoch}, step {last.step}) is kept in {run_dir / CHECKPOINT}"


@contextlib.contextmanager
def _disk_full_is_one_line(run_dir: Path, last: Progress):
    """A write into the run folder that fails (disk full, quota, I/O error) stops the run with one line that
    says which checkpoint is kept: every write is atomic, so that one is whole, and the run resumes from it."""
    try:
        yield
    except OSError as e:
        if isinstance(e, RunFolderError):
            raise
        raise RunFolderError(f"could not write {e.filename or 'into ' + str(run_dir)} ({e.strerror or e}); "
                             f"{_kept(run_dir, last)}. Free space (an atomic write needs room for the old file and "
                             f"the new one) and continue with: vitlab train --resume {run_dir}") from e


def _interrupted_message(run_dir: Path, signal_name: str, progress: Progress) -> str:
    launcher = "torchrun ... -m vitlab.cli" if is_distributed() else "vitlab"
    where = (f"batch {progress.batch} of epoch {progress.epoch + 1}" if progress.batch else
             f"the end of epoch {progress.epoch}")
    return (f"{signal_name or 'stop'}: interrupted at step {progress.step} ({where}); saved {run_dir / CHECKPOINT}. "
            f"Continue with: {launcher} train --resume {run_dir}")

