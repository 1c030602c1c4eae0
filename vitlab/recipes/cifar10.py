"""CIFAR-10 from scratch with a pure ViT, read from a store (vitlab data pack): the set is decoded once, not per run."""
from __future__ import annotations

from ..config import DataConfig, ModelConfig, OptimConfig, RunConfig


def cifar10() -> RunConfig:
    """`vitlab data pack folder:PATH/cifar10-jpeg --out cifar10-store`, then `vitlab train --recipe cifar10`
    (``--data store:DIR`` for a store elsewhere; ``--data folder:PATH`` decodes the folder into memory instead).

    A pure ViT (the linear patch embedding of the paper, no convolutional stem): 4×4 patches of the 32×32
    images make an 8×8 grid of 64 tokens and the class token, 6 blocks of width 96, 0.46 M parameters.
    Random crops after 4-pixel padding and horizontal flips, label smoothing and drop-path: ViTs lack the
    convolution's prior and overfit a small set without them.

    Measured (benchmarks/cifar10.md, one seed, 2 CPU threads): 68.5% on the validation split (5,000 of the
    training images) after the 15 epochs, 68.7% on the test split, scored once at the end; 41 minutes of
    training (the machine was shared for about a third of it: 136-330 images/s against ~325 alone). Still
    rising at the last epoch (63.1% at epoch 9): the schedule is sized for two CPU cores, not for the accuracy
    a pure ViT can reach on CIFAR-10 with a longer one.
    The store's own speed (pack, reads, epoch against the in-memory path): benchmarks/store.md.
    """
    return RunConfig(
        model=ModelConfig(img_size=32, patch_size=4, in_chans=3, num_classes=10, dim=96, depth=6, heads=3,
                          mlp_ratio=2.0, pool="token", stem="patch", drop_path=0.1),
        data=DataConfig(name="store:cifar10-store", augment="crop-flip", crop_padding=4),
        optim=OptimConfig(epochs=15, batch_size=128, lr=2e-3, warmup_epochs=1, weight_decay=0.05,
                          label_smoothing=0.1),
    )
