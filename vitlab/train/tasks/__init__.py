"""What differs between the three tasks, as one small record each; the loop (vitlab/train/loop.py) does the rest.

A task says how to load and check its data, build the module the optimiser trains, augment a batch, take a
step (the loss and the running sums of the epoch's training metrics), evaluate a split, save what the run
leaves for use, and where the ViT encoder inside its module is (what pretrained weights initialise); ``metric``
names its headline validation metric (higher is better), which picks ``best.safetensors``, heads the curves and
is what ``vitlab sweep`` plots. No callbacks, no base class: every function is plain and can be read, tested
and called on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ...config import RunConfig
from ...data import ImageSet, Normalize, Splits


@dataclass
class Context:
    """What a step and an evaluation need besides the module and the batch, built once per run (``step`` aside)."""

    cfg: RunConfig
    device: torch.device
    normalize: Normalize  # uint8 or [0, 1] images -> standardised with the training split's statistics
    augment: nn.Module  # float [0, 1] batch -> the training input (two views for pretraining)
    train: ImageSet  # the training split on the device (pretraining's kNN bank)
    total_steps: int = 0  # optimiser steps of the whole run
    step: int = 0  # the optimiser step being taken (0-based), set by the loop before each one: schedules read it


class Task(NamedTuple):
    metric: str  # the headline validation metric, higher is better: acc | miou | knn_acc
    data: Callable[[RunConfig], Splits]  # train / val / test, checked against the model configuration
    model: Callable[[RunConfig, Splits], nn.Module]  # what the optimiser trains, initialised from torch's RNG
    augment: Callable[[RunConfig, Splits], nn.Module]
    # (DDP-wrapped) module, uint8 images (B, C, H, W), labels -> loss, running sums {"loss": ..., "n": count}
    step: Callable[[nn.Module, torch.Tensor, torch.Tensor, Context], tuple[torch.Tensor, dict]]
    evaluate: Callable[[nn.Module, ImageSet, Context], dict[str, float]]  # this process's part, summed over all
    save: Callable[[Path, nn.Module, dict], None]  # model.safetensors (and what else the task leaves)
    # the ViT inside the module: what init.source loads, init.freeze freezes and optim.layer_decay counts layers of
    encoder: Callable[[nn.Module], nn.Module]


def get_task(name: str) -> Task:
    """The record of task ``name`` (RunConfig.task)."""
    from .classify import CLASSIFY
    from .pretrain import PRETRAIN
    from .segment import SEGMENT

    return {"classify": CLASSIFY, "segment": SEGMENT, "pretrain": PRETRAIN}[name]
