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


def epochs_within(budget_s: float, first_epoch_s: float, most: int, later_epoch_s: float | None = None) -> int:
    """The whole epochs a training-time budget holds: at least 1, at most ``most``.

    The first epoch has been trained (``first_epoch_s``, compilation and cold caches included); each later one is
    expected to take ``later_epoch_s``, the first epoch's pace once its first steps were done (default: the first
    epoch's own time, which errs on the side of the budget). So the run fits ``1 + (budget - first) // later``."""
    if first_epoch_s <= 0:
        return most
    later = first_epoch_s if later_epoch_s is None or later_epoch_s <= 0 else later_epoch_s
    return epochs_still_within(budget_s, first_epoch_s, 1, later, most)


def epochs_still_within(budget_s: float, spent_s: float, done: int, epoch_s: float, planned: int) -> int:
    """The epochs a run keeps after ``done`` epochs took ``spent_s``: ``planned`` while the rest, at ``epoch_s`` each
    (the expected pace), fit ``budget_s``, else the most whole epochs that still fit (never fewer than ``done``,
    never more than ``planned``). After the first epoch this fixes the run's epochs (epochs_within); after a later
    one it cuts epochs that a shared machine has slowed down, which keeps the budget a budget."""
    if epoch_s <= 0 or spent_s + (planned - done) * epoch_s <= budget_s:
        return planned
    return max(done, min(planned, done + int(max(budget_s - spent_s, 0.0) // epoch_s)))
