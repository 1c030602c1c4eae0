"""``task='classify'``: a ViT on whole images; cross-entropy with label smoothing, MixUp/CutMix as soft targets."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...config import RunConfig
from ...data import ImageSet, Normalize, Splits, batch_indices, build_augment, load_data
from ...data.augment import mix_batch
from ...errors import DataError
from ...models import ViT
from ..artifacts import save_model
from ..distributed import my_part, sum_over_processes
from . import Context, Task


def check_data_fits_model(cfg: RunConfig, train: ImageSet) -> None:
    """Channels, resolution and class count of the data against ``cfg.model``, before anything is trained."""
    c, h, w = train.shape
    m = cfg.model
    if c != m.in_chans:
        hint = (f" (with init.source {cfg.init.source}, model.in_chans is the channel count its weights were trained "
                f"on{'; --data.channels ' + str(m.in_chans) + ' converts a folder' if m.in_chans in (1, 3) else ''})"
                if cfg.init.source else "")
        raise DataError(f"data {cfg.data.name!r} has {c} channels but model.in_chans={m.in_chans}{hint}")
    if (h, w) != (m.img_size, m.img_size) and not m.dynamic_img_size:
        raise DataError(f"data {cfg.data.name!r} has {h}x{w} images but model.img_size={m.img_size}")
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    if cfg.task == "classify" and n_classes != m.num_classes:
        extra = (f": the head would put probability on {m.num_classes - n_classes} class(es) that do not exist"
                 if m.num_classes > n_classes else "")
        raise DataError(f"data {cfg.data.name!r} has {n_classes} classes but model.num_classes={m.num_classes}"
                        f"{extra}")


def data(cfg: RunConfig) -> Splits:
    splits = load_data(cfg.data)
    check_data_fits_model(cfg, splits.train)
    return splits


def model(cfg: RunConfig, splits: Splits) -> nn.Module:
    return ViT(cfg.model)


def augment(cfg: RunConfig, splits: Splits) -> nn.Module:
    return build_augment(cfg.data)


def step(trained: nn.Module, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, dict]:
    """uint8 images -> [0, 1] -> augment -> (mix) -> standardise -> logits -> cross-entropy."""
    cfg = ctx.cfg
    x = ctx.augment(images.float().div_(255))  # (B, C, H, W) in [0, 1]
    if cfg.data.mixup > 0 or cfg.data.cutmix > 0:  # soft targets; labels become the dominant one (train accuracy)
        x, soft, labels = mix_batch(x, labels, cfg.model.num_classes, mixup_alpha=cfg.data.mixup,
                                    cutmix_alpha=cfg.data.cutmix, smoothing=cfg.optim.label_smoothing)[:3]
        logits = trained(ctx.normalize(x))  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), soft)
    else:
        logits = trained(ctx.normalize(x))  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.optim.label_smoothing)
    return loss, {"loss": loss.detach() * len(labels), "acc": (logits.argmax(-1) == labels).sum(), "n": len(labels)}


@torch.no_grad()
def _sums(model: nn.Module, data: ImageSet, normalize: Normalize, batch_size: int) -> tuple[float, int, torch.Tensor]:
    """Summed cross-entropy, correct predictions and the predictions of a set, in eval mode."""
    was_training = model.training
    model.eval()
    device = normalize.mean.device
    total_loss, preds = 0.0, []
    for idx in batch_indices(torch.arange(len(data)), batch_size):
        logits = model(normalize(data.images[idx].to(device)))
        total_loss += F.cross_entropy(logits.float(), data.labels[idx].to(device), reduction="sum").item()
        preds.append(logits.argmax(-1).cpu())
    model.train(was_training)
    pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
    return total_loss, int((pred == data.labels.cpu()).sum()), pred


def evaluate(model: nn.Module, data: ImageSet, normalize: Normalize, batch_size: int = 512) -> dict:
    """Loss, accuracy and predictions over a whole set, in eval mode, in this process."""
    loss, correct, pred = _sums(model, data, normalize, batch_size)
    return {"loss": loss / len(data), "acc": correct / len(data), "pred": pred}


def evaluate_split(model: nn.Module, split: ImageSet, ctx: Context) -> dict[str, float]:
    """Loss and accuracy of a split; under torchrun each process scores its part and the sums are combined."""
    loss, correct, _ = _sums(model, split.subset(my_part(len(split))), ctx.normalize, 512)
    loss, correct = sum_over_processes(loss, correct)
    return {"loss": loss / len(split), "acc": correct / len(split)}


def save(path: Path, model: ViT, meta: dict) -> None:
    save_model(path, model, meta)


def encoder(module: nn.Module) -> ViT:
    return module  # the ViT itself: its head is the classifier


CLASSIFY = Task(metric="acc", data=data, model=model, augment=augment, step=step, evaluate=evaluate_split, save=save,
                encoder=encoder)
