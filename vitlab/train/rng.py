"""Random states: seeded from (seed, epoch, rank) at each epoch start, captured whole inside an epoch.

Every random draw of training (dropout, drop path, augmentation, MixUp, the contrastive views) comes from
torch's generators. Re-seeding them at the start of every epoch from (seed, epoch, rank) makes an
epoch-end checkpoint need no random state at all, and gives every torchrun process its own stream; a
checkpoint written inside an epoch stores each process's state (:class:`RngState`) so that it continues
bit for bit. NumPy's and Python's generators are seeded and captured alongside, for any code that uses them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch (every device), NumPy and Python: the model's initialisation comes from this."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed every generator for one epoch of one process, from a hash of (seed, epoch, rank)."""
    derived = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint32)[0])
    seed_everything(derived)


@dataclass
class RngState:
    """One process's random state: torch's CPU generator, its current CUDA device's, NumPy's and Python's."""

    torch_cpu: torch.Tensor
    torch_cuda: torch.Tensor | None
    numpy: list
    python: list

    @classmethod
    def capture(cls) -> "RngState":
        np_state = np.random.get_state()
        version, internal, gauss = random.getstate()
        return cls(torch.get_rng_state(), torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
                   [np_state[0], np_state[1].tolist(), *np_state[2:]], [version, list(internal), gauss])

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(self.torch_cuda)
        kind, keys, pos, has_gauss, cached = self.numpy
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, internal, gauss = self.python
        random.setstate((version, tuple(internal), gauss))

    # -- in a checkpoint: the torch states as tensors, the others as JSON -----------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"torch": self.torch_cpu}
        if self.torch_cuda is not None:
            out["cuda"] = self.torch_cuda
        return out

    def json(self) -> dict:
        return {"numpy": self.numpy, "python": self.python}

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "RngState":
        return cls(tensors["torch"], tensors.get("cuda"), meta["numpy"], meta["python"])
