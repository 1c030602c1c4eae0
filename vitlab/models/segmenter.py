"""A ViT encoder with a convolutional up-sampling decoder for per-pixel classification.

The encoder is a vitlab ``ViT`` without a head. Its patch tokens (prefix tokens dropped) are laid
back on their g×g grid, projected to the decoder width by a 1×1 conv, and doubled log2(P) times
(P the patch size) by ``Upsample2x`` — each step followed by 3×3 conv + BatchNorm + ReLU — until
the map is the input size again; a final 1×1 conv gives the class scores. This is the
"progressive up-sampling" decoder of SETR (Zheng et al. 2021, "Rethinking Semantic Segmentation
from a Sequence-to-Sequence Perspective with Transformers", §3.3, SETR-PUP).

Unpooling (SegNet, Badrinarayanan et al. 2017) needs the arg-max indices of a matching max pool,
and a ViT has none. Our source for them: a light convolutional path on the input image — one 3×3
conv (in_chans -> width) at full resolution, then log2(P) ``MaxPool2d(2, return_indices=True)``
in a row, down to the token grid. The decoder reuses those indices in reverse order (the
coarsest first), so each unpooled value lands where the image's local features peaked: near the
strokes, which is where the labels change. The conv is fixed (random, not trained): arg-max indices
pass no gradient back, so training could not change it anyway. The path costs one small conv and
is built only for ``upsample='unpool'``.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from einops import rearrange
from torch import nn

from ..config import ModelConfig, SegmentConfig
from ..layers.upsample import Upsample2x
from .vit import ViT


class UpStage(nn.Module):
    """Upsample2x, then 3×3 conv + BatchNorm + ReLU. Shape: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, method: str, width: int):
        super().__init__()
        self.up = Upsample2x(method, width)
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(width)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(self.norm(self.conv(self.up(x, indices))))


class Segmenter(nn.Module):
    """ViT encoder + progressive 2× up-sampling decoder.

    Args:
        cfg: the encoder (its ``num_classes`` is ignored: the encoder has no head).
        segment: the decoder (``upsample`` method and ``width``).
        num_classes: classes per pixel (11 for the digit canvases: background + 10 digits).

    Shape:
        (B, C, H, W) -> (B, num_classes, H, W) logits.
    """

    def __init__(self, cfg: ModelConfig, segment: SegmentConfig | None = None, num_classes: int = 11):
        super().__init__()
        segment = segment or SegmentConfig()
        p = cfg.patch_size
        if p & (p - 1):
            raise ValueError(f"Segmenter: model.patch_size={p} is not a power of two, so 2x up-sampling steps "
                             f"cannot turn the {cfg.grid_size}x{cfg.grid_size} token grid back into "
                             f"{cfg.img_size}x{cfg.img_size}; use a patch size such as {2 ** round(math.log2(p))}")
        if cfg.img_size % p:  # ModelConfig checks this too; kept for a message in decoder terms
            raise ValueError(f"Segmenter: model.img_size={cfg.img_size} is not divisible by model.patch_size={p}")
        if num_classes < 1:
            raise ValueError(f"Segmenter: num_classes must be >= 1, got {num_classes}")
        self.cfg = replace(cfg, num_classes=0)
        self.segment = segment
        self.num_classes = num_classes
        self.steps = p.bit_length() - 1  # log2(P)
        width = segment.width
        self.encoder = ViT(self.cfg)
        self.num_prefix_tokens = self.encoder.num_prefix_tokens
        self.to_decoder = nn.Conv2d(self.cfg.dim, width, kernel_size=1)
        self.stages = nn.ModuleList(UpStage(segment.upsample, width) for _ in range(self.steps))
        self.to_classes = nn.Conv2d(width, num_classes, kernel_size=1)
        if segment.upsample == "unpool":
            # arg-max indices carry no gradient, so this conv could not learn: it is a fixed, randomly
            # initialised 3x3 filter bank (saved with the weights, not trained)
            self.index_conv = nn.Conv2d(self.cfg.in_chans, width, 3, padding=1).requires_grad_(False)
            self.index_pool = nn.MaxPool2d(2, return_indices=True)
        else:
            self.index_conv = None

    def no_weight_decay(self) -> set[str]:
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()}

    def pool_indices(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Arg-max indices of log2(P) successive 2× max pools of a 3×3 conv of the image, finest first."""
        f = self.index_conv(x)  # (B, W, H, W)
        indices = []
        for _ in range(self.steps):
            f, idx = self.index_pool(f)  # (B, W, H/2^k, W/2^k) twice
            indices.append(idx)
        return indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.cfg.patch_size
        tokens = self.encoder.forward_features(x)[:, self.num_prefix_tokens:]  # (B, g*g, D)
        f = rearrange(tokens, "b (h w) d -> b d h w", h=h // p, w=w // p)  # (B, D, g, g)
        f = self.to_decoder(f)  # (B, width, g, g)
        indices = self.pool_indices(x)[::-1] if self.index_conv is not None else [None] * self.steps
        for stage, idx in zip(self.stages, indices):
            f = stage(f, idx)  # (B, width, 2h, 2w)
        return self.to_classes(f)  # (B, classes, H, W)
