"""How fast data reaches the training loop: loading MNIST's idx files, then slicing batches from memory.

1. ``load_idx_dir`` on the four gzip-compressed MNIST files (70,000 images): gunzip + one read
   into a uint8 array per file, no per-image Python work. Median of a few repeats.
2. 1000 batches of 256 gathered from the in-memory (60000, 1, 28, 28) uint8 tensor in the
   training loop's shuffled order (``epoch_order`` / ``batch_indices``), as uint8 and with the
   loop's ``.float().div_(255)``.
3. For scale, decoding image files one by one (``folder:`` sources), on the first files of
   the CIFAR-10 JPEG copy's test split.

One CPU thread, so the numbers do not depend on what else the shared machine runs.

    python benchmarks/data_loading.py > benchmarks/data_loading.md
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from machine import header, load_now

from vitlab.data import batch_indices, epoch_order, load_idx_dir
from vitlab.data.folder import decode_images, list_classes


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def slice_batches(images: torch.Tensor, n_batches: int, batch_size: int, to_float: bool) -> int:
    seen, epoch = 0, 0
    while True:
        for idx in batch_indices(epoch_order(len(images), 0, epoch), batch_size, drop_last=True):
            x = images[idx]  # (B, 1, 28, 28) uint8
            if to_float:
                x = x.float().div_(255)
            seen += len(x)
            if seen >= n_batches * batch_size:
                return seen
        epoch += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", default="/work/shared/datasets/mnist")
    p.add_argument("--jpeg", default="/work/shared/datasets/cifar10-jpeg/test")
    p.add_argument("--jpeg-files", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)

    print("# Data loading\n")
    print(f"`python benchmarks/data_loading.py`, median of {args.repeats}. {header(1)}\n")
    print("| what | images | seconds | images/s |\n| --- | ---: | ---: | ---: |")

    t, (train, test) = timed(lambda: load_idx_dir(args.mnist), args.repeats)
    n = len(train) + len(test)
    print(f"| load MNIST idx.gz (train + test) | {n:,} | {t:.3f} | {n / t:,.0f} |")

    for to_float in (False, True):
        t, seen = timed(lambda: slice_batches(train.images, 1000, 256, to_float), args.repeats)
        what = "1000 shuffled batches of 256, uint8 gather" + (" + float/255" if to_float else "")
        print(f"| {what} | {seen:,} | {t:.3f} | {seen / t:,.0f} |")

    jpeg = Path(args.jpeg)
    if jpeg.is_dir():
        files = [f for _, fs in list_classes(jpeg) for f in fs][: args.jpeg_files]
        labels = np.zeros(len(files), dtype=np.int64)
        t, _ = timed(lambda: decode_images(files, labels, channels=3, size=None), 1)
        print(f"| decode {len(files):,} CIFAR-10 JPEG files (PIL, one by one) | {len(files):,} | {t:.3f} | "
              f"{len(files) / t:,.0f} |")
    print(f"\nMNIST train tensor: {tuple(train.images.shape)} {train.images.dtype}, "
          f"{train.images.numel() / 2**20:.1f} MiB. Load average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
