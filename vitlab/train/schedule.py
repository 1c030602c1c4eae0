"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_lr``; the epochs a time budget allows."""
from __future__ import annotations

import math


def warmup_cosine(step: int, *, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """The learning rate at optimiser step ``step`` (0-based).

    A pure function of the step, so resuming needs no scheduler state beyond the step.
    Warm-up rises linearly from base_lr/warmup_steps to base_lr; cosine (Loshchilov &
    Hutter 2017) then falls to min_lr at the last step.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps - 1, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def epochs_within(budget_s: float, first_epoch_s: float, most: int) -> int:
    """The whole epochs a training-time budget holds at the first epoch's pace: at least 1, at most ``most``.

    The first epoch is the slowest (compilation, warm caches), so the estimate errs on the side of the budget."""
    if first_epoch_s <= 0:
        return most
    return max(1, min(most, int(budget_s // first_epoch_s)))
