"""An exponential moving average of the weights (Polyak averaging; timm's and DeiT's ``model_ema``).

With ``optim.ema = d`` > 0 the loop keeps, beside the trained module, a copy whose floating-point parameters and
buffers follow it after every optimiser step t (0, 1, 2, ...):

    average <- average + (1 - d_t) * (trained - average),   d_t = min(d, (1 + t) / (10 + t))

The warm-up factor is TensorFlow's ``ExponentialMovingAverage(num_updates=t)``: without it the first hundreds of
steps of a short run (d = 0.999 forgets its start with a time constant of 1,000 steps) would keep much of the
random initial weights. The average is what the run evaluates, keeps as its best, tests once and saves as
model.safetensors; the trained weights go on in the checkpoint beside it (``ema.*`` next to ``model.*``), so a
resumed run continues both bit for bit.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

EMA_WARMUP = 10  # d_t = min(d, (1 + t) / (EMA_WARMUP + t))


def ema_decay(decay: float, step: int) -> float:
    """The decay used after optimiser step ``step`` (0-based)."""
    return min(decay, (1 + step) / (EMA_WARMUP + step))


class WeightAverage:
    """``module``'s moving average, in a copy of it (``.module``, in eval mode, never trained)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        # the tensors to average and their sources, paired once: the optimiser updates the sources in place
        pairs = list(zip(self._tensors(self.module), self._tensors(module)))
        self._averages = [a for a, _ in pairs if a.is_floating_point()]
        self._sources = [s for a, s in pairs if a.is_floating_point()]
        self._counters = [(a, s) for a, s in pairs if not a.is_floating_point()]  # e.g. BatchNorm's: copied

    @staticmethod
    def _tensors(module: nn.Module) -> list[torch.Tensor]:
        return [*module.parameters(), *module.buffers()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the trained weights, after optimiser step ``step``."""
        if self._averages:
            torch._foreach_lerp_(self._averages, self._sources, 1.0 - ema_decay(self.decay, step))
        for a, s in self._counters:
            a.copy_(s)
