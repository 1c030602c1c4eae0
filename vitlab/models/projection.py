"""SimCLR's projection head g(·): the MLP between the encoder and the contrastive loss.

Chen et al. 2020 (§4.2, Figure 8) find a non-linear head, discarded after pretraining, gives a better
representation h = f(x) than applying the loss to h directly: g can drop what the augmentations vary
(colour, position) so that h keeps it.
"""
from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear -> [BatchNorm1d] -> ReLU -> Linear.

    Args:
        in_dim: encoder width D.
        hidden_dim: hidden width.
        out_dim: embedding width fed to InfoNCE.
        batch_norm: BatchNorm1d after the first Linear (whose bias it then makes redundant).

    Shape:
        (B, in_dim) -> (B, out_dim).
    """

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if value <= 0:
                raise ValueError(f"ProjectionHead {name} must be > 0, got {value}")
        self.in_dim, self.hidden_dim, self.out_dim, self.batch_norm = in_dim, hidden_dim, out_dim, batch_norm
        self.fc1 = nn.Linear(in_dim, hidden_dim, bias=not batch_norm)
        self.norm = nn.BatchNorm1d(hidden_dim) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def dims(self) -> dict:
        """The constructor's arguments: what rebuilds this head from a file."""
        return {"in_dim": self.in_dim, "hidden_dim": self.hidden_dim, "out_dim": self.out_dim,
                "batch_norm": self.batch_norm}

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.norm(self.fc1(h))))  # (B, out_dim)
