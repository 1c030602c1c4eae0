"""Training-step throughput of the 28×28 recipe's model and two larger variants, 1 and 2 threads.

Used to choose what a longer Fashion-MNIST run could afford (benchmarks/mnist.md): the cost of a
wider (D=128) or deeper (6 blocks) model relative to the recipe's, per epoch of 60,000 images.
One training step as `vitlab train` takes it (the loop's own `optimizer_step`: backward, gradient
clipping at the recipe's norm, AdamW) on a batch of 128 random images; 3 warm-up steps, then the mean of 20.

    python benchmarks/mnist_step_speed.py > benchmarks/mnist_step_speed.md
"""
from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F

from machine import header, load_now

from vitlab import ViT
from vitlab.recipes.mnist import fashion_mnist
from vitlab.train.step import optimizer_step

VARIANTS = [("recipe (D=96, 4 blocks)", {}), ("D=128", {"dim": 128}), ("6 blocks", {"depth": 6})]


def images_per_s(model: torch.nn.Module, grad_clip: float, batch: int = 128, warmup: int = 3,
                 steps: int = 20) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        optimizer_step(F.cross_entropy(model(x), y), opt, model.parameters(), grad_clip)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    print(header("2, then 1") + "\n")
    print("| model | parameters | threads | images/s | s per 60k-image epoch | cost vs recipe |")
    print("|---|---|---|---|---|---|")
    for threads in (2, 1):
        torch.set_num_threads(threads)
        base = None
        for name, change in VARIANTS:
            torch.manual_seed(0)
            recipe = fashion_mnist()
            model = ViT(dataclasses.replace(recipe.model, **change)).train()
            rate = images_per_s(model, recipe.optim.grad_clip)
            base = base or rate
            params = sum(p.numel() for p in model.parameters())
            print(f"| {name} | {params:,} | {threads} | {rate:.0f} | {60000 / rate:.0f} | ×{base / rate:.2f} |",
                  flush=True)
    print(f"\nLoad average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
