"""``task='segment'``: a Segmenter (ViT encoder + up-sampling decoder) on the digit canvases, per-pixel
cross-entropy; headline metric mIoU (vitlab.train.metrics), background included."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...config import RunConfig
from ...data import ImageSet, Normalize, Splits, batch_indices
from ...data.segmentation import load_segmentation
from ...errors import ConfigError
from ...models import ViT
from ...models.segmenter import Segmenter
from ..artifacts import save_segmenter
from ..distributed import all_sum, my_part, sum_over_processes
from ..metrics import confusion_matrix, mean_iou, pixel_accuracy
from . import Context, Task


def data(cfg: RunConfig) -> Splits:
    m, s = cfg.model, cfg.segment
    if m.img_size != s.canvas and not m.dynamic_img_size:
        raise ConfigError(f"task='segment': model.img_size={m.img_size} must equal segment.canvas={s.canvas}")
    if m.in_chans != 1:
        raise ConfigError(f"task='segment': the digit canvases have 1 channel but model.in_chans={m.in_chans}")
    return load_segmentation(cfg.segment, cfg.data)


def model(cfg: RunConfig, splits: Splits) -> nn.Module:
    return Segmenter(cfg.model, cfg.segment, num_classes=len(splits.train.classes))


def augment(cfg: RunConfig, splits: Splits) -> nn.Module:
    return nn.Identity()  # the canvases are generated: every epoch could be new data, but is not, to stay comparable


def step(trained: nn.Module, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, dict]:
    """uint8 canvases -> standardise -> per-pixel logits (B, K, H, W) -> cross-entropy against (B, H, W)."""
    logits = trained(ctx.normalize(ctx.augment(images.float().div_(255))))  # (B, K, H, W)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=ctx.cfg.optim.label_smoothing)
    return loss, {"loss": loss.detach() * labels.numel(), "pixel_acc": (logits.argmax(1) == labels).sum(),
                  "n": labels.numel()}


@torch.no_grad()
def _sums(model: nn.Module, data: ImageSet, normalize: Normalize, num_classes: int,
          batch_size: int) -> tuple[float, torch.Tensor]:
    was_training = model.training
    model.eval()
    device = normalize.mean.device
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    total_loss = 0.0
    for idx in batch_indices(torch.arange(len(data)), batch_size):
        y = data.labels[idx].to(device)
        logits = model(normalize(data.images[idx].to(device)))  # (B, K, H, W)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        cm += confusion_matrix(logits.argmax(1).cpu(), y.cpu(), num_classes)
    model.train(was_training)
    return total_loss, cm


def evaluate_segmentation(model: nn.Module, data: ImageSet, normalize: Normalize, batch_size: int = 256) -> dict:
    """Per-pixel cross-entropy, pixel accuracy, mIoU and the confusion matrix over a set, in this process."""
    loss, cm = _sums(model, data, normalize, model.num_classes, batch_size)
    return {"loss": loss / data.labels.numel(), "pixel_acc": pixel_accuracy(cm), "miou": mean_iou(cm), "confusion": cm}


def evaluate_split(model: nn.Module, split: ImageSet, ctx: Context) -> dict[str, float]:
    """Loss, pixel accuracy and mIoU of a split; under torchrun each process scores its part."""
    loss, cm = _sums(model, split.subset(my_part(len(split))), ctx.normalize, model.num_classes, 256)
    (loss,), cm = sum_over_processes(loss), all_sum(cm.to(ctx.device)).cpu()
    return {"loss": loss / split.labels.numel(), "pixel_acc": pixel_accuracy(cm), "miou": mean_iou(cm)}


def save(path: Path, model: Segmenter, meta: dict) -> None:
    save_segmenter(path, model, meta)


def encoder(module: nn.Module) -> ViT:
    return module.encoder  # the decoder is the Segmenter's own


SEGMENT = Task(metric="miou", data=data, model=model, augment=augment, step=step, evaluate=evaluate_split, save=save,
               encoder=encoder)
