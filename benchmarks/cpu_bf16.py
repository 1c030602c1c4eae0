"""Is bf16 autocast faster than fp32 on this CPU? What `precision = auto` decides here, and whether it is right.

The CPU's flags, then per thread count: a large matmul in fp32 and in bf16, `cpu_bf16_speedup` (the
(1024, 768) @ (768, 768) timing `precision = auto` decides on: bf16 at >= BF16_MIN_SPEEDUP), and the Fashion-MNIST
recipe model's training step as the engine ships it for a long run (compiled, fused AdamW; step_speed.py's
`shipped_step`), fp32 against bf16 autocast, timings alternating, medians of 7 with the spread (min-max).

    python benchmarks/cpu_bf16.py > benchmarks/cpu_bf16.md
"""
from __future__ import annotations

import statistics

import torch

from machine import header, load_now
from step_speed import alternate, cell, matmul_gflops, shipped_step

from vitlab import ViT
from vitlab.recipes.mnist import fashion_mnist
from vitlab.train.loop import BF16_MIN_SPEEDUP, cpu_bf16_speedup, cpu_has_bf16


def main() -> None:
    print("# bf16 autocast against fp32 on this CPU\n")
    print(header(2) + "\n")
    caps = torch.cpu.get_capabilities()
    flags = sorted(k for k, v in caps.items() if v and ("bf16" in k or "amx" in k or "avx512" in k))
    print(f"CPU capabilities (torch.cpu.get_capabilities, avx512/amx/bf16 ones): {', '.join(flags) or 'none'}; "
          f"cpu_has_bf16() = {cpu_has_bf16()}.\n")
    batch = 128
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    print("| threads | fp32 matmul GFLOP/s | bf16 matmul GFLOP/s | cpu_bf16_speedup | auto decides | "
          "recipe step fp32 img/s | recipe step bf16 img/s | bf16 / fp32 step |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in (2, 1):
        torch.set_num_threads(threads)
        fp32, bf16 = matmul_gflops(dtype=torch.float32), matmul_gflops(dtype=torch.bfloat16)
        speedup = cpu_bf16_speedup(threads)
        torch.manual_seed(0)
        steps = {p: shipped_step(ViT(fashion_mnist().model).train(), x, y, compiled=True, cpu_bf16=p == "bf16")
                 for p in ("fp32", "bf16")}
        s = alternate(steps, batch, 4)
        ratio = statistics.median(s["bf16"]) / statistics.median(s["fp32"])
        print(f"| {threads} | {fp32:.0f} | {bf16:.0f} | {speedup:.2f} | "
              f"{'bf16' if speedup >= BF16_MIN_SPEEDUP else 'fp32'} | {cell(s['fp32'])} | {cell(s['bf16'])} | "
              f"{ratio:.2f} |", flush=True)
    print(f"\n`precision = auto` takes bf16 on a CPU for runs of >= 2,000 steps when cpu_bf16_speedup >= "
          f"{BF16_MIN_SPEEDUP}. Load average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
