"""Tokeniser stems: how an image becomes a (B, N, D) sequence of tokens.

* ``'patch'`` — the ViT patch embedding (Dosovitskiy et al. 2021, eq. 1): one P×P
  convolution with stride P (``PatchEmbed``).
* ``'conv+maxpool'``, ``'conv+stride'``, ``'conv+avgpool'`` — a small convolutional stem
  in the spirit of Xiao et al. 2021, "Early Convolutions Help Transformers See Better":
  log2(P) steps, each halving the resolution, then a 1×1 convolution to D.

  ===============  =========================================================
  stem             one down-sampling step
  ===============  =========================================================
  conv+maxpool     conv3×3 s1 p1 → BatchNorm2d → ReLU → max-pool 2×2 s2
  conv+stride      conv3×3 s2 p1 → BatchNorm2d → ReLU (learned down-sampling)
  conv+avgpool     conv3×3 s1 p1 → BatchNorm2d → ReLU → avg-pool 2×2 s2
  ===============  =========================================================

  Channel widths double step by step and reach D at the last step: step i of L
  (1-based) has ``max(D // 2**(L - i), 1)`` channels, e.g. 96, 192, 384, 768 for
  ViT-B/16 — Xiao et al.'s doubling pattern. The 3×3 convolutions have no bias (the
  BatchNorm after them has one); the closing 1×1 convolution has one, as PatchEmbed does.
  ``depth`` > 1 (``ModelConfig.stem_depth``) adds depth − 1 more conv3×3 s1 p1 → BatchNorm2d → ReLU
  after each step, at its output resolution and width (a ResNet stage's shape): more
  local feature extraction before the tokens, at the cost of those convolutions' FLOPs.

  The stem runs channels-last (NHWC): its convolution weights are stored so and its input is converted, which
  lets oneDNN on CPUs (and cuDNN on GPUs) skip the layout reorders around every convolution. The numbers are
  those of the NCHW convolution; only the memory layout differs (a training step of the Fashion-MNIST recipe
  1.10x faster on 2 CPU cores, benchmarks/step_speed.md). A state dict is saved contiguous as ever.

Every stem is a plain stack of Conv2d / pooling / pointwise layers in run order, so
``vitlab.analysis.receptive_field.from_module(stem)`` gives its geometry (``stem_specs``, ``stem_grid``
there) and ``vitlab.flops.stem_summary`` the grid, parameter count and FLOPs of the stem a config builds.
"""
from __future__ import annotations

import torch
from torch import nn

from .patch_embed import PatchEmbed

STEMS = ("patch", "conv+maxpool", "conv+stride", "conv+avgpool")
CONV_STEMS = STEMS[1:]


def check_stem(stem: str, patch_size: int, img_size: int | None = None) -> None:
    """Raise ValueError unless ``stem`` can down-sample ``img_size`` by ``patch_size``."""
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r} is not one of {STEMS}")
    if img_size is not None and img_size % patch_size:
        raise ValueError(f"img_size={img_size} is not divisible by patch_size={patch_size}")
    if stem in CONV_STEMS and (patch_size < 2 or patch_size & (patch_size - 1)):
        raise ValueError(f"stem={stem!r} halves the resolution log2(P) times, so patch_size P must be a "
                         f"power of two >= 2; got patch_size={patch_size}")


def conv_stem_widths(dim: int, steps: int) -> list[int]:
    """Channels after each down-sampling step: doubling, the last one equal to ``dim``."""
    return [max(dim // 2 ** (steps - i), 1) for i in range(1, steps + 1)]


class ConvStem(nn.Module):
    """A convolutional stem down-sampling by ``patch_size`` in log2(P) halving steps (module docstring).

    Args:
        kind: 'conv+maxpool', 'conv+stride' or 'conv+avgpool'.
        patch_size: the total down-sampling P, a power of two >= 2.
        in_chans: image channels C.
        dim: token width D.
        depth: 3×3 convolutions per down-sampling step (module docstring); 1 is Xiao et al.'s stem.

    Shape:
        (B, C, H, W) -> (B, H/P * W/P, D), tokens in row-major order like ``PatchEmbed``.
    """

    def __init__(self, *, kind: str, patch_size: int, in_chans: int, dim: int, depth: int = 1):
        super().__init__()
        if kind not in CONV_STEMS:
            raise ValueError(f"conv stem kind={kind!r} is not one of {CONV_STEMS}")
        check_stem(kind, patch_size)
        if depth < 1:
            raise ValueError(f"stem depth must be >= 1 (3x3 convolutions per down-sampling step), got {depth}")
        self.kind = kind
        self.patch_size = patch_size
        self.in_chans = in_chans
        steps = patch_size.bit_length() - 1  # log2(P)
        layers: list[nn.Module] = []
        c_in = in_chans
        for c_out in conv_stem_widths(dim, steps):
            stride = 2 if kind == "conv+stride" else 1
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if kind == "conv+maxpool":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            elif kind == "conv+avgpool":
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
            for _ in range(depth - 1):  # at the step's output resolution
                layers += [nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
            c_in = c_out
        self.stages = nn.Sequential(*layers)
        # not named ``proj``: its keys must not pass for PatchEmbed's (the HF mapping keys on them)
        self.to_dim = nn.Conv2d(c_in, dim, kernel_size=1)
        for m in self.modules():  # channels-last weights (module docstring); load_state_dict copies keep the layout
            if isinstance(m, nn.Conv2d):
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # (B, C, H, W), stored NHWC
        x = self.to_dim(self.stages(x))  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


def build_stem(cfg) -> nn.Module:
    """The stem ``cfg.stem`` for a ModelConfig-like ``cfg`` (patch_size, in_chans, dim, img_size)."""
    stem = getattr(cfg, "stem", "patch")
    check_stem(stem, cfg.patch_size, cfg.img_size)  # img_size=None skips the divisibility check
    if stem == "patch":
        return PatchEmbed(patch_size=cfg.patch_size, in_chans=cfg.in_chans, dim=cfg.dim)
    return ConvStem(kind=stem, patch_size=cfg.patch_size, in_chans=cfg.in_chans, dim=cfg.dim,
                    depth=getattr(cfg, "stem_depth", 1))
