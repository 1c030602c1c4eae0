"""The Transformer's position-wise feed-forward network."""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout (ViT paper eq. 3).

    Shape:
        (B, N, D) -> (B, N, D), hidden width ``int(D * mlp_ratio)``.
    """

    def __init__(self, *, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
