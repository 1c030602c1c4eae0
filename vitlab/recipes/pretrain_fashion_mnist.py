"""Contrastive pretraining on Fashion-MNIST, the data set of the τ study (benchmarks/tau.md).

    vitlab train --task pretrain --recipe fashion-mnist --pretrain.tau 0.1 --name tau-0.1 && vitlab probe runs/tau-0.1
"""
from __future__ import annotations

from ..config import DataConfig, ModelConfig, OptimConfig, PretrainConfig, RunConfig


def pretrain_fashion_mnist() -> RunConfig:
    """A 4-block, 64-wide encoder on 7×7 patches of 4×4 pixels (0.2 M parameters), average pooling; views:
    random resized crop (40-100% of the area), horizontal flips (a mirrored shoe is still a shoe), small
    shifts. Batch 256: 510 negatives per anchor. 2 epochs (468 steps, ~8 minutes on one CPU core): sized so
    that the five τ values of benchmarks/tau.md pretrain in under an hour on a shared 2-core machine;
    longer pretraining gives higher probe accuracies (`--epochs N`)."""
    return RunConfig(
        task="pretrain",
        model=ModelConfig(img_size=28, patch_size=4, in_chans=1, num_classes=0, dim=64, depth=4, heads=4,
                          mlp_ratio=2.0, pool="avg", class_token=False),
        data=DataConfig(name="fashion-mnist", augment="none"),
        optim=OptimConfig(epochs=2, batch_size=256, lr=2e-3, warmup_epochs=0.5, weight_decay=0.05,
                          label_smoothing=0.0),
        pretrain=PretrainConfig(tau=0.2, proj_dim=64, proj_hidden=256, crop_scale=0.4, flip="on",
                                translate=0.1),
    )
