"""The default job: a ViT on scikit-learn's bundled 8×8 digits."""
from __future__ import annotations

from ..config import DataConfig, ModelConfig, OptimConfig, RunConfig


def digits() -> RunConfig:
    """`vitlab train` (no arguments). Expected: see benchmarks/digits.md."""
    return RunConfig(
        model=ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=96, depth=4, heads=4,
                          mlp_ratio=2.0, pool="avg", class_token=True),
        data=DataConfig(name="digits", augment="digits"),
        optim=OptimConfig(epochs=40, batch_size=64, lr=2e-3, warmup_epochs=3, weight_decay=0.05,
                          label_smoothing=0.1),
    )
