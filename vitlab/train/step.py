"""One optimiser update, shared by the classification, segmentation and pretraining loops."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor],
                   grad_clip: float) -> float:
    """zero_grad -> backward -> clip the global gradient norm (if ``grad_clip`` > 0) -> step.

    A loss that is NaN or Inf skips the update, so the weights stay those of the last good
    step; its value is returned either way, for the caller to log or to raise on.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    value = loss.item()
    if math.isfinite(value):
        optimizer.step()
    return value
