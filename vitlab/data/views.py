"""Two random views of every image in a batch, for contrastive pretraining (SimCLR, Chen et al. 2020, §3).

SimCLR's ablation (§3, Figure 5) finds random cropping plus colour distortion the composition that matters:
crops alone can be solved by colour histograms. Here, on a whole float batch on the model's device (kornia):

* every image: random resized crop back to the original size (area fraction in [crop_scale, 1]);
* 3-channel images: colour jitter (p = 0.8) and random grayscale (p = ``grayscale``);
* 1-channel images: a small random translation instead of colour distortion, and with ``grey_jitter`` > 0 its
  grey analogue, random brightness and contrast (p = 0.8): without it two crops of one image can be matched by
  their intensity histograms alone, the shortcut colour distortion removes for colour images;
* horizontal flip only where it keeps the class: ``flip='auto'`` flips 3-channel images and never
  1-channel ones (a mirrored 2 or 5 is another digit), ``on``/``off`` force it.

Randomness comes from torch's global generator, so a fixed ``torch.manual_seed`` gives the same views.
"""
from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from ..config import PretrainConfig


class TwoViews(nn.Module):
    """Apply one random augmentation twice, independently, to a batch.

    Shape:
        x: (B, C, H, W) float in [0, 1] -> (view1, view2), each (B, C, H, W).
    """

    def __init__(self, augment: nn.Module):
        super().__init__()
        self.augment = augment

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment(x), self.augment(x)


def uses_flip(cfg: PretrainConfig, channels: int) -> bool:
    """Whether views are flipped: ``auto`` means colour images only."""
    return cfg.flip == "on" or (cfg.flip == "auto" and channels == 3)


def make_views(cfg: PretrainConfig, channels: int, size: int) -> TwoViews:
    """The two-view augmentation for images of ``channels`` × ``size`` × ``size`` (see the module docstring).

    Args:
        cfg: crop scale, flip, translation, jitter and grayscale settings.
        channels: 1 (grey) or 3 (RGB).
        size: the images' height and width (views keep it).
    """
    if channels not in (1, 3):
        raise ValueError(f"two-view augmentation needs 1 or 3 channels, got {channels}")
    ops: list[nn.Module] = [K.RandomResizedCrop((size, size), scale=(cfg.crop_scale, 1.0), ratio=(3 / 4, 4 / 3),
                                                p=1.0)]
    if uses_flip(cfg, channels):
        ops.append(K.RandomHorizontalFlip(p=0.5))
    if channels == 3:
        if cfg.jitter > 0:
            j = cfg.jitter
            ops.append(K.ColorJitter(j, j, j, j / 4, p=0.8))
        if cfg.grayscale > 0:
            ops.append(K.RandomGrayscale(p=cfg.grayscale))
    else:
        if cfg.grey_jitter > 0:
            ops.append(K.ColorJitter(brightness=cfg.grey_jitter, contrast=cfg.grey_jitter, p=0.8))
        if cfg.translate > 0:
            ops.append(K.RandomAffine(degrees=0.0, translate=(cfg.translate, cfg.translate), p=1.0,
                                      padding_mode="zeros"))
    return TwoViews(nn.Sequential(*ops))
