"""Batches sliced from an in-memory tensor, in a data order fixed by (seed, epoch)."""
from __future__ import annotations

from collections.abc import Iterator

import torch


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of one epoch; a pure function of (seed, epoch), so a
    resumed run sees exactly the order an uninterrupted one would have seen."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_indices(order: torch.Tensor, batch_size: int, drop_last: bool = False) -> Iterator[torch.Tensor]:
    n = len(order)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)
