"""Contrastive pretraining of a ViT encoder (SimCLR, Chen et al. 2020) with a kNN accuracy as a live signal.

Per step: learning rate -> two views -> encoder h = f(x) (pooled, pre-logits) -> z = g(h) -> InfoNCE(τ)
-> backward -> clip -> step. Per epoch: kNN accuracy of the encoder features on the test split, alignment
and uniformity of z (vitlab.analysis.tau) -> metrics.jsonl.

Run folder: config.json (a PretrainRunConfig), argv.json, metrics.jsonl, metrics.json, curves.png,
model.safetensors (the encoder, ``num_classes=0``: its head is the identity, so ``load_model`` rebuilds it and
``model(x)`` is the (B, D) feature), projection.safetensors (g, for ``vitlab tau-report``), and
checkpoint.safetensors at each epoch end (encoder, projection, optimiser, random states and the MoCo queue,
in the classification loop's format) from which ``vitlab pretrain --resume RUN`` continues bit for bit.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..analysis.tau import alignment, uniformity
from ..config import PretrainRunConfig
from ..configio import from_dict, save_json, to_dict
from ..data import ImageSet, Normalize, batch_indices, epoch_order, load_data, num_batches
from ..data.views import make_views
from ..losses import InfoNCE
from ..models import ViT, count_params
from ..models.projection import ProjectionHead
from .artifacts import save_model
from .checkpoint import load_tensors, save_tensors
from .distributed import (data_parallel, gather_with_grad, is_distributed, leaves_process_group, on_main_process,
                          rank, setup_distributed, shard, world_size)
from .loop import (CHECKPOINT, TrainingDiverged, prepare_run_dir, read_rows, resolve_device, restore_checkpoint,
                   resumed_config, save_checkpoint, seed_everything, truncate_metrics)
from .optim import build_optimizer
from .schedule import warmup_cosine
from .step import optimizer_step

log = logging.getLogger(__name__)

PROJECTION_FILE = "projection.safetensors"


def load_pretrain_config(run_dir: str | Path) -> PretrainRunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a vitlab run folder")
    data = json.loads(path.read_text())
    if "pretrain" not in data:
        raise ValueError(f"{run_dir} is not a pretraining run (its config.json has no 'pretrain' section)")
    return from_dict(PretrainRunConfig, data)


def encoder_features(model: ViT, x: torch.Tensor) -> torch.Tensor:
    """h = f(x): the pooled, pre-logits features. Shape: (B, C, H, W) -> (B, D)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


@torch.no_grad()
def encode(model: ViT, images: torch.Tensor, normalize: Normalize, batch_size: int = 512) -> torch.Tensor:
    """Encoder features of uint8 images, un-augmented, in eval mode. Shape: (N, C, H, W) -> (N, D)."""
    was_training = model.training
    model.eval()
    device = normalize.mean.device
    out = [encoder_features(model, normalize(images[idx].to(device))).float()
           for idx in batch_indices(torch.arange(len(images)), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int,
                num_classes: int) -> torch.Tensor:
    """Similarity-weighted k-nearest-neighbour vote on cosine similarity (Wu et al. 2018, "Unsupervised
    Feature Learning via Non-Parametric Instance Discrimination", §3.4, with weights s rather than exp(s/τ)).

    Each query's k most similar bank rows (cosine similarity of L2-normalised features) vote for their label
    with weight equal to their similarity; the class with the largest total wins (ties: the lowest class).

    Shape:
        bank: (M, D), bank_labels: (M,), queries: (Q, D) -> (Q,) predicted labels.
    """
    bank = F.normalize(bank.float(), dim=1)
    preds = []
    for q in F.normalize(queries.float(), dim=1).split(1024):  # (1024, M) similarities at a time, not (Q, M)
        top_sim, top_idx = (q @ bank.T).topk(min(k, bank.shape[0]), dim=1)  # (q, k)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[top_idx], top_sim)  # (q, C)
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(model: ViT, train: ImageSet, test: ImageSet, normalize: Normalize, k: int) -> float:
    """Test accuracy of :func:`knn_predict` with the un-augmented train set as the memory bank."""
    bank, queries = encode(model, train.images, normalize), encode(model, test.images, normalize)
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    pred = knn_predict(bank, train.labels.to(bank.device), queries, k, n_classes)
    return float((pred.cpu() == test.labels.cpu()).float().mean())


def save_projection(path: str | Path, head: ProjectionHead, cfg: PretrainRunConfig) -> None:
    p = cfg.pretrain
    save_tensors(path, head.state_dict(), {"projection": {"in_dim": cfg.model.dim, "hidden_dim": p.proj_hidden,
                                                          "out_dim": p.proj_dim, "batch_norm": p.proj_batch_norm}})


def load_projection(path: str | Path, device="cpu") -> ProjectionHead:
    tensors, meta = load_tensors(path, device=device)
    head = ProjectionHead(**meta["projection"]).to(device)
    head.load_state_dict(tensors)
    return head.eval()


class _Contrastive(torch.nn.Module):
    """Encoder f and projection g as one module, so that DDP sees one forward: x -> z = g(f(x))."""

    def __init__(self, encoder: ViT, projection: ProjectionHead):
        super().__init__()
        self.encoder, self.projection = encoder, projection

    def no_weight_decay(self) -> set[str]:
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(encoder_features(self.encoder, x))  # (B, proj_dim)


def pretrain(cfg: PretrainRunConfig, *, resume: str | Path | None = None, overwrite: bool = False,
             argv: list[str] | None = None) -> Path:
    """Pretrain ``cfg``'s encoder contrastively and return its run folder. ``resume`` continues a run folder
    from its last epoch checkpoint with its saved configuration (more epochs, another device or thread count
    may be asked for).

    Under ``torchrun --nproc_per_node W`` the W processes join one process group (gloo on the CPU, NCCL on
    GPUs), each takes a contiguous W-th of every global batch of ``optim.batch_size`` images, the encoder
    and projection are wrapped in DDP, and the InfoNCE negatives are gathered from all processes with
    gradients, so a step optimises the loss of the global batch. Rank 0 evaluates and writes the run folder.
    BatchNorm layers become SyncBatchNorm on GPUs; on the CPU (where PyTorch's SyncBatchNorm does not run)
    each process normalises over its own part of the batch.
    """
    with leaves_process_group():
        return _pretrain(cfg, resume=resume, overwrite=overwrite, argv=argv)


def _pretrain(cfg: PretrainRunConfig, *, resume: str | Path | None, overwrite: bool,
              argv: list[str] | None) -> Path:
    if resume is not None:
        resume = Path(resume)
        cfg = resumed_config(load_pretrain_config(resume), cfg, resume)
    if cfg.model.num_classes != 0:  # the encoder has no classifier; the probe adds one
        cfg = replace(cfg, model=replace(cfg.model, num_classes=0))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = setup_distributed(resolve_device(cfg.device))
    p = cfg.pretrain
    distributed = is_distributed()
    if cfg.optim.batch_size % world_size():
        raise ValueError(f"optim.batch_size={cfg.optim.batch_size} must be divisible by the {world_size()} "
                         f"processes: each takes an equal part of the global batch")
    main_process = rank() == 0

    # -- data on the device as uint8, views, model + projection, optimiser ------------------------
    train, test = load_data(cfg.data)
    c, h, w = train.shape
    if (c, h) != (cfg.model.in_chans, cfg.model.img_size) or h != w:
        raise ValueError(f"data {cfg.data.name!r} has {c}x{h}x{w} images but the model expects "
                         f"{cfg.model.in_chans}x{cfg.model.img_size}x{cfg.model.img_size}")
    if len(train) < cfg.optim.batch_size:
        raise ValueError(f"optim.batch_size={cfg.optim.batch_size} exceeds the {len(train)} training images")
    run_dir = on_main_process(lambda: prepare_run_dir(cfg, resume=resume is not None, overwrite=overwrite))
    seed_everything(cfg.seed)
    mean, std = train.channel_stats()
    normalize = Normalize(mean, std).to(device)
    views = make_views(p, c, h).to(device)
    train_dev = train.to(device)
    model = ViT(cfg.model).to(device)
    head = ProjectionHead(in_dim=cfg.model.dim, hidden_dim=p.proj_hidden, out_dim=p.proj_dim,
                          batch_norm=p.proj_batch_norm).to(device)
    # under DDP the gathered loss (below) makes the averaged gradients those of the global batch's loss
    both, trained = data_parallel(_Contrastive(model, head), device)  # SyncBatchNorm swaps children in place
    optimizer = build_optimizer(both, cfg.optim)
    criterion = InfoNCE(temperature=p.tau, queue_size=p.queue_size).to(device)
    steps_per_epoch = num_batches(len(train), cfg.optim.batch_size, drop_last=True)
    total_steps = cfg.optim.epochs * steps_per_epoch
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)

    start_epoch, step, train_time, rows = 0, 0, 0.0, []
    if resume is not None:  # every process loads the same checkpoint
        extra: dict[str, torch.Tensor] = {}
        start_epoch, step, train_time, _ = restore_checkpoint(resume / CHECKPOINT, both, optimizer, device, extra)
        if "queue" in extra:
            criterion.queue = extra["queue"].to(device)
        log.info("resumed %s at epoch %d (step %d)", resume, start_epoch, step)
    if main_process:
        metrics_path = run_dir / "metrics.jsonl"
        if resume is not None:
            truncate_metrics(metrics_path, start_epoch)
            rows = read_rows(metrics_path)
        else:
            (run_dir / "argv.json").write_text(json.dumps(argv if argv is not None else sys.argv) + "\n")
            metrics_path.write_text("")
        save_json(run_dir / "config.json", to_dict(cfg))  # a resumed run may now ask for more epochs
    log.info("encoder: %s parameters; projection %d -> %d -> %d; τ=%g%s", f"{count_params(model):,}",
             cfg.model.dim, p.proj_hidden, p.proj_dim, p.tau,
             f"; {world_size()} processes, {cfg.optim.batch_size // world_size()} images each a step"
             if distributed else "")
    test_x = test.images.to(device).float().div_(255)  # for alignment/uniformity, fixed views per epoch below

    lr = cfg.optim.lr
    for epoch in range(start_epoch, cfg.optim.epochs):
        both.train()
        criterion.train()
        t0 = time.perf_counter()
        loss_sum, seen = torch.zeros((), device=device), 0
        order = epoch_order(len(train), cfg.seed, epoch).to(device)
        if distributed:  # different views on each process, a pure function of (seed, epoch, rank) to resume from
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + rank())
        bar = tqdm(batch_indices(order, cfg.optim.batch_size, drop_last=True), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", disable=not (cfg.progress and main_process),
                   leave=False, dynamic_ncols=True)
        for idx in bar:
            # learning rate for this step
            lr = warmup_cosine(step, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=cfg.optim.lr,
                               min_lr=cfg.optim.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # two views -> h -> z -> InfoNCE; both views go through one forward so BatchNorm sees 2N rows
            x = train_dev.images[shard(idx)].float().div_(255)  # (N / W, C, H, W) in [0, 1]
            v1, v2 = views(x)
            x2 = normalize(torch.cat([v1, v2]))  # (2N, C, H, W)
            z1, z2 = trained(x2).float().chunk(2)  # (N, proj_dim) each
            if distributed:  # the global batch, with gradients: the same loss and the same queue on every process
                z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # (global N, proj_dim) each
            loss = criterion(z1, z2)
            loss_value = optimizer_step(loss, optimizer, both.parameters(), cfg.optim.grad_clip)
            if not math.isfinite(loss_value):
                raise TrainingDiverged(f"loss became {loss_value} at step {step} (epoch {epoch + 1}); "
                                       f"try a lower optim.lr (now {cfg.optim.lr}) or a larger pretrain.tau")
            step += 1
            loss_sum += loss.detach() * len(idx)
            seen += len(idx)
            if cfg.progress and main_process:
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", refresh=False)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        if not main_process:
            continue

        # evaluate: kNN accuracy of h on the test split; alignment/uniformity of normalised z on test views
        both.eval()
        knn = knn_accuracy(model, train, test, normalize, p.knn_k)
        with torch.no_grad():
            gen_state = torch.get_rng_state()
            torch.manual_seed(cfg.seed + 12345)  # the same test views every epoch
            t1, t2 = views(test_x)
            torch.set_rng_state(gen_state)
            za = head(encoder_features(model, normalize(t1))).float()
            zb = head(encoder_features(model, normalize(t2))).float()
        row = {"epoch": epoch + 1, "step": step, "lr": lr, "loss": loss_sum.item() / seen, "knn_acc": knn,
               "alignment": alignment(za, zb), "uniformity": uniformity(za),
               "epoch_time_s": round(epoch_time, 4), "images_per_s": round(seen / epoch_time, 1)}
        rows.append(row)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        queue = {"queue": criterion.queue} if criterion.queue is not None else None
        save_checkpoint(run_dir / CHECKPOINT, both, optimizer, cfg, epoch + 1, step, train_time,
                        {"mean": mean, "std": std, "classes": train.classes}, extra_tensors=queue)
        log.info("epoch %d/%d  loss %.4f  kNN acc %.4f  align %.3f  unif %.3f  lr %.2e", epoch + 1,
                 cfg.optim.epochs, row["loss"], knn, row["alignment"], row["uniformity"], lr)

    if not main_process:
        return Path(cfg.out_dir) / cfg.name
    # -- final artefacts --------------------------------------------------------------------------------
    save_model(run_dir / "model.safetensors", model, {"mean": mean, "std": std, "classes": train.classes,
                                                      "pretrain": asdict(p)})
    save_projection(run_dir / PROJECTION_FILE, head, cfg)
    final = {"loss": rows[-1]["loss"], "knn_acc": rows[-1]["knn_acc"], "best_knn_acc": max(r["knn_acc"] for r in rows),
             "alignment": rows[-1]["alignment"], "uniformity": rows[-1]["uniformity"], "tau": p.tau,
             "epochs": len(rows), "train_time_s": round(train_time, 3), "params": count_params(model),
             "processes": world_size()}
    save_json(run_dir / "metrics.json", final)
    plot_pretrain_curves(rows, run_dir / "curves.png")
    return run_dir


def plot_pretrain_curves(rows: list[dict], path: str | Path) -> None:
    """InfoNCE loss and kNN test accuracy per epoch."""
    from .plots import plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["loss"] for r in rows])
    ax_loss.set(xlabel="epoch", ylabel="InfoNCE", title="contrastive loss (train)")
    ax_acc.plot(epochs, [r["knn_acc"] for r in rows])
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"kNN test accuracy (final {rows[-1]['knn_acc']:.4f})")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
