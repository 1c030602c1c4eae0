"""Semantic segmentation of digit canvases: a small ViT encoder with an up-sampling decoder."""
from __future__ import annotations

from ..config import DataConfig, ModelConfig, OptimConfig, RunConfig, SegmentConfig


def segment() -> RunConfig:
    """`vitlab train --recipe segment` (sets ``task='segment'``).

    Aim: >= 0.80 test mIoU (11 classes, background included) in <= 5 minutes on 2 CPU cores.
    A 3×3-conv stem with average-pool down-sampling (``stem='conv+avgpool'``) in front of a
    4-block, 64-wide encoder, and a nearest-neighbour decoder of width 32, on 32×32 canvases of
    1–3 digits enlarged 2×. Nearest is the best of the four up-sampling methods here
    (benchmarks/ablations.md: nearest > unpool > bilinear > transposed, 3 seeds); the recipe
    run itself: benchmarks/segment_default.md. The plain patch stem reached only 0.550 mIoU
    after 20 epochs: pixel-level labels need the local detail a conv stem keeps. Compare the
    up-sampling methods with
    ``vitlab sweep segment.upsample=nearest,bilinear,transposed,unpool --seeds 3 -- --recipe segment``.
    """
    return RunConfig(
        model=ModelConfig(img_size=32, patch_size=4, in_chans=1, num_classes=0, dim=64, depth=4, heads=4,
                          mlp_ratio=2.0, pool="avg", class_token=False, stem="conv+avgpool"),
        data=DataConfig(name="digits", augment="none"),
        optim=OptimConfig(epochs=30, batch_size=32, lr=2e-3, warmup_epochs=1, weight_decay=0.05,
                          label_smoothing=0.0),
        task="segment",
        segment=SegmentConfig(upsample="nearest", width=32, canvas=32, max_digits=3, scale=2),
    )
