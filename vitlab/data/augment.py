"""Batched augmentation on the model's device with kornia, and MixUp / CutMix with soft targets.

Every preset takes a float batch (B, C, H, W) in [0, 1] and returns one of the same shape,
dtype and range; standardisation (``Normalize``) comes after it.

| ``data.augment``   | what it does                                                                |
| ------------------ | --------------------------------------------------------------------------- |
| ``none``           | nothing (the default)                                                       |
| ``digits``         | small random translation, rotation and scaling (no flips: 2/5, 6/9)         |
| ``flip``           | horizontal flip, half of the images                                         |
| ``crop-flip``      | random crop after zero-padding by ``data.crop_padding`` px, horizontal flip |
| ``randaugment``    | crop-flip, then RandAugment (Cubuk et al. 2020), ``randaugment_n``/``_m``   |
| ``trivialaugment`` | crop-flip, then TrivialAugment (Müller & Hutter 2021)                       |

Independent of the preset: ``data.random_erasing`` (Zhong et al. 2020) appends kornia's
RandomErasing with that probability, and ``data.mixup`` / ``data.cutmix`` (Zhang et al. 2018;
Yun et al. 2019) mix pairs of images in ``mix_batch``, which the training loop calls after
``build_augment`` when either alpha is > 0.
"""
from __future__ import annotations

from typing import NamedTuple

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.augmentation.auto import RandAugment, TrivialAugment
from torch import nn

from ..config import AUGMENTS, DataConfig

__all__ = ["AUGMENTS", "MixedBatch", "Normalize", "build_augment", "cutmix", "mix_batch", "mixup",
           "smoothed_one_hot"]


def build_augment(cfg: DataConfig) -> nn.Module:
    """The training-time augmentation for ``cfg.augment`` (plus random erasing), applied to a whole
    float batch in [0, 1] on the model's device. See the module docstring for the presets.

    ``digits``: handwritten digits keep their class under small shifts, rotations and scalings,
    and with only ~1,400 training images they are what lets a ViT, which has no built-in
    translation invariance, learn one.
    """
    presets = {"none": lambda cfg: [], "digits": _digits, "flip": _flip, "crop-flip": _crop_flip,
               "randaugment": _randaugment, "trivialaugment": _trivialaugment}
    steps = presets[cfg.augment](cfg)
    if cfg.random_erasing > 0:
        steps.append(K.RandomErasing(p=cfg.random_erasing, value=0.0))
    if not steps:
        return nn.Identity()
    return steps[0] if len(steps) == 1 else nn.Sequential(*steps)


def _digits(cfg: DataConfig) -> list[nn.Module]:
    return [K.RandomAffine(degrees=cfg.rotate, translate=(cfg.translate, cfg.translate),
                           scale=(1.0 - cfg.scale, 1.0 + cfg.scale), p=1.0, padding_mode="zeros")]


def _flip(cfg: DataConfig) -> list[nn.Module]:
    return [K.RandomHorizontalFlip(p=0.5)]


def _crop_flip(cfg: DataConfig) -> list[nn.Module]:
    steps = [RandomCropPad(cfg.crop_padding)] if cfg.crop_padding > 0 else []
    return steps + _flip(cfg)


def _randaugment(cfg: DataConfig) -> list[nn.Module]:
    return _crop_flip(cfg) + [AsRGB(RandAugment(n=cfg.randaugment_n, m=cfg.randaugment_m))]


def _trivialaugment(cfg: DataConfig) -> list[nn.Module]:
    return _crop_flip(cfg) + [AsRGB(TrivialAugment())]


class RandomCropPad(nn.Module):
    """Zero-pad by ``padding`` px on every side, then crop back to the input size at a random
    offset per image: a translation by up to ±``padding`` px with zero fill (the CIFAR recipe of
    He et al. 2016). kornia's RandomCrop needs the size up front; this builds it per input size."""

    def __init__(self, padding: int):
        super().__init__()
        self.padding = padding
        self._crops: dict[tuple[int, int], nn.Module] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        if size not in self._crops:
            self._crops[size] = K.RandomCrop(size, padding=self.padding, fill=0.0, padding_mode="constant")
        return self._crops[size](x)


class AsRGB(nn.Module):
    """Run a 3-channel-only augmentation (kornia's RandAugment colour operations) on a grey
    batch by repeating the channel and averaging back; 3-channel batches pass straight through."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:
            return self.inner(x)
        return self.inner(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True)  # (B, 3, H, W) -> (B, 1, H, W)


# -- MixUp / CutMix ---------------------------------------------------------------------------------

class MixedBatch(NamedTuple):
    images: torch.Tensor  # (B, C, H, W), mixed
    targets: torch.Tensor  # (B, num_classes) soft targets, rows sum to 1
    labels: torch.Tensor  # (B,) the dominant label (y if lam >= 0.5 else y[perm]), for train accuracy
    lam: float  # weight of the unpermuted images
    perm: torch.Tensor  # (B,) the partner of each image


def smoothed_one_hot(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(B,) labels -> (B, num_classes) targets that F.cross_entropy's ``label_smoothing`` uses:
    ``(1 - smoothing) * one_hot + smoothing / num_classes``."""
    return F.one_hot(y, num_classes).float() * (1.0 - smoothing) + smoothing / num_classes


def mixup(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """MixUp (Zhang et al. 2018): ``lam * x + (1 - lam) * x[perm]``."""
    return x * lam + x[perm] * (1.0 - lam)


def cutmix(x: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, float, tuple[int, int, int, int]]:
    """CutMix (Yun et al. 2019): paste a box of area about ``1 - lam`` from ``x[perm]``, centred at
    a uniformly random point and clipped to the image (as timm does).

    Returns:
        the mixed batch, ``lam`` recomputed from the box actually pasted (1 - box area / image area),
        and the box as (top, bottom, left, right), bottom and right exclusive.
    """
    H, W = x.shape[-2:]
    cut = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(H * cut), int(W * cut)
    cy, cx = int(torch.randint(0, H, ())), int(torch.randint(0, W, ()))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, H)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, W)
    out = x.clone()
    out[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
    return out, 1.0 - (bottom - top) * (right - left) / (H * W), (top, bottom, left, right)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, mixup_alpha: float = 0.0,
              cutmix_alpha: float = 0.0, smoothing: float = 0.0) -> MixedBatch:
    """Mix a batch with MixUp or CutMix; with both alphas > 0 each batch picks one with equal
    probability (as timm does). lam ~ Beta(alpha, alpha); partners are a random permutation.

    The targets are ``lam * t(y) + (1 - lam) * t(y[perm])`` with ``t`` the smoothed one-hot, so
    F.cross_entropy on them equals the lam-weighted sum of the two label-smoothed hard losses.

    Shape:
        x: (B, C, H, W); y: (B,) -> images (B, C, H, W), targets (B, num_classes), labels (B,)
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError("mix_batch needs mixup_alpha > 0 or cutmix_alpha > 0")
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(x), device=x.device)
    if use_cutmix:
        images, lam, _ = cutmix(x, lam, perm)
    else:
        images = mixup(x, lam, perm)
    y2 = y[perm]
    targets = lam * smoothed_one_hot(y, num_classes, smoothing) + (1.0 - lam) * smoothed_one_hot(y2, num_classes,
                                                                                                 smoothing)
    return MixedBatch(images, targets, y if lam >= 0.5 else y2, lam, perm)


class Normalize(nn.Module):
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] then standardised with training-split statistics."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std
