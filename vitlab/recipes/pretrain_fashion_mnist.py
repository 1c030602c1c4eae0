"""Contrastive pretraining on Fashion-MNIST (issue 15): an hour on 2 CPU cores, then a linear probe.

    vitlab train --task pretrain --recipe fashion-mnist --name simclr-fm && vitlab probe runs/simclr-fm --features tokens
"""
from __future__ import annotations

from ..config import DataConfig, ModelConfig, OptimConfig, PretrainConfig, RunConfig


def pretrain_fashion_mnist() -> RunConfig:
    """SimCLR (τ = 0.2, batch 256: 510 negatives an anchor) on the classification recipe's encoder: a 3×3-conv
    stem with stride-2 down-sampling and one more convolution at each resolution (stem depth 2) to 7×7 tokens, 4
    blocks of width 96, max pooling (0.50 M parameters with the projection head). Views: random resized crop
    (40-100% of the area), horizontal flips (a mirrored shoe is still a shoe), small shifts. The run is a time
    budget: as many whole epochs as fit 3,300 s of training (``optim.time_budget_s``; at most 40), with bf16
    autocast where the CPU computes bf16 faster than fp32 (``precision = auto``).

    Measured (benchmarks/pretrain_hour.md, one seed, 2 threads, alone, bf16 on an AVX512-BF16 AMD EPYC): 27
    epochs, 3,131 s of training (3,759 s for the command, with the kNN monitor after every epoch). The linear probe
    depends on what it reads (validation / test): the final token map (``vitlab probe RUN --features tokens``)
    90.52% / 90.54%, against 85.52% / 85.76% for a random encoder of this architecture read the same way and
    85.12% / 84.32% for the pixels; the last four blocks pooled (``--features blocks``, DINO's protocol) 86.70% /
    86.56% (random 84.15% / 84.02%); the pooled features the loss saw (SimCLR's protocol, the default) 81.95% /
    82.52% (random 78.98% / 78.75%). Chosen on validation over the previous 64-wide patch encoder (pooled probe
    79.07% validation after 15 epochs on one thread, benchmarks/pretrain_fashion_long.md). The τ study of
    benchmarks/tau.md used that earlier 2-epoch recipe (its script pins it)."""
    return RunConfig(
        task="pretrain",
        model=ModelConfig(img_size=28, patch_size=4, in_chans=1, num_classes=0, dim=96, depth=4, heads=4,
                          mlp_ratio=2.0, pool="max", class_token=False, stem="conv+stride", stem_depth=2),
        data=DataConfig(name="fashion-mnist", augment="none"),
        optim=OptimConfig(epochs=40, time_budget_s=3300.0, batch_size=256, lr=2e-3, warmup_epochs=0.5,
                          weight_decay=0.05, label_smoothing=0.0),
        pretrain=PretrainConfig(tau=0.2, proj_dim=64, proj_hidden=256, crop_scale=0.4, flip="on",
                                translate=0.1),
    )
