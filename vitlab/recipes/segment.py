"""Semantic segmentation of digit canvases: a small ViT encoder with an up-sampling decoder."""
from __future__ import annotations

from ..config import DataConfig, ModelConfig, OptimConfig, RunConfig, SegmentConfig


def segment() -> RunConfig:
    """`vitlab train --recipe segment` (sets ``task='segment'``).

    Aim: >= 0.80 test mIoU (11 classes, background included) in <= 5 minutes on 2 CPU cores.
    NOT reached, NOT tuned: these settings are a first guess (a 4x4-patch, 64-wide, 4-block
    encoder on 32x32 canvases of 1-3 digits enlarged 2x, bilinear decoder of width 32). One
    measured run (seed 0, threads=1 on a shared, loaded 2-core machine): test mIoU 0.550, pixel
    accuracy 0.952 after 20 epochs, 107 s of training; the test loss was still falling slowly and
    train loss (0.108) was below test loss (0.144). Untried: patch 2, more epochs, augmentation,
    other up-sampling methods.
    Compare the up-sampling methods with
    ``vitlab sweep segment.upsample=nearest,bilinear,transposed,unpool -- --recipe segment``.
    """
    return RunConfig(
        model=ModelConfig(img_size=32, patch_size=4, in_chans=1, num_classes=0, dim=64, depth=4, heads=4,
                          mlp_ratio=2.0, pool="avg", class_token=False),
        data=DataConfig(name="digits", augment="none"),
        optim=OptimConfig(epochs=20, batch_size=32, lr=2e-3, warmup_epochs=1, weight_decay=0.05,
                          label_smoothing=0.0),
        task="segment",
        segment=SegmentConfig(upsample="bilinear", width=32, canvas=32, max_digits=3, scale=2),
    )
