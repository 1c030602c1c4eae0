"""The training step as the engine ships it, against HF transformers' ViT and timm's, and what each speed lever gives.

Part 1 (peers): the same architecture with the same weights in one process: vitlab's step as vitlab.train.loop
takes it (build_optimizer's fused AdamW, the per-forward input check off, the convolutional stem channels-last,
attn_impl='auto', which is the explicit path on a CPU, and torch.compile as compile='auto' decides for a run of the
recipe's length: on, for any run of >= 2,000 steps), HF's ViTForImageClassification (sdpa attention) and timm's
VisionTransformer, each with torch.optim.AdamW's default as their training scripts use it, eager as they ship. A
second row per model gives vitlab's step without compiling (what a run shorter than 2,000 steps takes) and the
peers under torch.compile too, which their users may add themselves. The Fashion-MNIST architecture has a convolutional stem, which neither HF nor timm has: both get a copy of
vitlab's stem in place of their patch embedding (same weights), and that row uses a class token with token
pooling, the one pooling HF has. Outputs are checked equal before anything is timed. Timings alternate between
the models, medians of 7 with the spread (min-max); the large-matmul FLOP/s of the same process is the
reference for the share of the machine a step reaches (training FLOPs = 3 x forward, FlopCounterMode).

Part 2 (levers): the shipped Fashion-MNIST recipe model, one lever added at a time from the step as it was
before them (stem NCHW, for-loop AdamW, per-forward NaN/Inf check, sdpa attention), then torch.compile with its
compile time; then bf16 autocast on this CPU (measured, not shipped: fp32 on CPUs), batch size and thread count.

    python benchmarks/step_speed.py > benchmarks/step_speed.md
    python benchmarks/step_speed.py --device cuda   # the peers on a GPU, bf16 autocast (benchmarks/gpu.sh)
"""
from __future__ import annotations

import copy
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from timm_shim import import_timm  # noqa: E402  (timm without torchvision, tests/timm_shim.py)

from machine import header, load_now  # noqa: E402

from vitlab import ModelConfig, ViT, size_config  # noqa: E402
from vitlab.config import OptimConfig  # noqa: E402
from vitlab.flops import forward_flops  # noqa: E402
from vitlab.interop import to_hf  # noqa: E402
from vitlab.interop.timm import timm_args, to_timm  # noqa: E402
from vitlab.layers.attention import Attention  # noqa: E402
from vitlab.recipes import fashion_mnist  # noqa: E402
from vitlab.train.loop import COMPILE_MIN_STEPS, compile_step  # noqa: E402
from vitlab.train.optim import build_optimizer  # noqa: E402

THREADS = 2
REPS = 7
DEVICE = torch.device("cpu")  # --device


def matmul_gflops(n: int = 2048, reps: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


class StemAsPatchEmbed(nn.Module):
    """vitlab's convolutional stem where HF or timm call their patch embedding: (B, C, H, W) -> (B, N, D)."""

    def __init__(self, stem: nn.Module):
        super().__init__()
        self.stem = stem
        self.projection = stem.to_dim  # HF reads the input dtype off embeddings.patch_embeddings.projection

    def forward(self, pixel_values, interpolate_pos_encoding=False):  # HF's signature; timm passes x only
        return self.stem(pixel_values)


def patch_twin_state(ours: ViT) -> tuple[ModelConfig, dict]:
    """The config and state dict of ``ours`` with a patch stem in place of a conv stem (a placeholder the peers'
    own patch embedding loads, replaced afterwards by a copy of ``ours``' stem)."""
    if ours.cfg.stem == "patch":
        return ours.cfg, ours.state_dict()
    cfg = replace(ours.cfg, stem="patch", stem_depth=1)
    sd = {k: v for k, v in ours.state_dict().items() if not k.startswith("to_patch_embedding.")}
    sd.update({k: v for k, v in ViT(cfg).state_dict().items() if k.startswith("to_patch_embedding.")})
    return cfg, sd


def hf_twin(ours: ViT) -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification
    cfg, sd = patch_twin_state(ours)
    hf_cfg = ViTConfig(image_size=cfg.img_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans,
                       hidden_size=cfg.dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads,
                       intermediate_size=int(cfg.dim * cfg.mlp_ratio), num_labels=cfg.num_classes,
                       layer_norm_eps=cfg.norm_eps, qkv_bias=cfg.qkv_bias, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    hf_cfg._attn_implementation = "sdpa"
    hf = ViTForImageClassification(hf_cfg)
    hf.load_state_dict(to_hf(sd))
    if ours.cfg.stem != "patch":
        hf.vit.embeddings.patch_embeddings = StemAsPatchEmbed(copy.deepcopy(ours.to_patch_embedding))
    return hf


def timm_twin(ours: ViT) -> nn.Module:
    from functools import partial

    VisionTransformer = import_timm().models.vision_transformer.VisionTransformer
    cfg, sd = patch_twin_state(ours)
    tm = VisionTransformer(**timm_args(cfg), norm_layer=partial(nn.LayerNorm, eps=cfg.norm_eps))
    tm.load_state_dict(to_timm(sd))
    if ours.cfg.stem != "patch":
        tm.patch_embed = StemAsPatchEmbed(copy.deepcopy(ours.to_patch_embedding))
    return tm


def train_step(call, params, optimizer, x, y, cpu_bf16: bool = False):
    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=DEVICE.type == "cuda"), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16):  # as the engine does, + the bf16 lever
            logits = call(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.item()
    return step


def shipped_step(model: ViT, x, y, compiled: bool = False, cpu_bf16: bool = False):
    """The engine's step (vitlab.train.loop): build_optimizer, no per-forward check, compile if asked."""
    model.check_finite = False
    call = torch.compile(model) if compiled else model
    return train_step(call, list(model.parameters()), build_optimizer(model, OptimConfig(lr=1e-4)), x, y, cpu_bf16)


def compiled_peer(call):
    """A peer's own module under torch.compile (what its user could add)."""
    return torch.compile(call)


def alternate(fns: dict, batch: int, reps: int) -> dict[str, list[float]]:
    for fn in fns.values():  # warm-up
        fn(), fn()
    samples = {k: [] for k in fns}
    for _ in range(REPS):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples[k].append(batch * reps / (time.perf_counter() - t0))
    return samples


def cell(v: list[float]) -> str:
    return f"{statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})"


def peers(name: str, cfg: ModelConfig, batch: int, reps: int, gflops: float) -> None:
    torch.manual_seed(0)
    ours = ViT(cfg).train()
    hf, tm = hf_twin(ours).train().to(DEVICE), timm_twin(ours).train().to(DEVICE)
    ours.to(DEVICE)
    x = torch.rand(batch, cfg.in_chans, cfg.img_size, cfg.img_size, device=DEVICE)
    y = torch.randint(0, cfg.num_classes, (batch,), device=DEVICE)
    with torch.no_grad():
        ours.eval(), hf.eval(), tm.eval()
        ref = ours(x)
        atol = 1e-4 if DEVICE.type == "cpu" else 5e-3  # cuDNN convolutions may use TF32
        assert torch.allclose(hf(pixel_values=x).logits, ref, atol=atol), "HF twin differs"
        assert torch.allclose(tm(x), ref, atol=atol), "timm twin differs"
        ours.train(), hf.train(), tm.train()
    hf_call = lambda v: hf(pixel_values=v).logits  # noqa: E731
    # as shipped: compile='auto' for a run of the recipe's length (>= COMPILE_MIN_STEPS steps: compiled)
    shipped = compile_step(ours, "auto", DEVICE, COMPILE_MIN_STEPS) is not ours
    copies = {k: copy.deepcopy(m) for k, m in (("ours", ours), ("hf", hf), ("tm", tm))}
    fns = {"vitlab": shipped_step(ours, x, y, compiled=shipped),
           "HF": train_step(hf_call, list(hf.parameters()), torch.optim.AdamW(hf.parameters(), lr=1e-4), x, y),
           "timm": train_step(tm, list(tm.parameters()), torch.optim.AdamW(tm.parameters(), lr=1e-4), x, y),
           # the second row: vitlab not compiled (a short run), the peers compiled by their user
           "vitlab ": shipped_step(copies["ours"], x, y, compiled=not shipped),
           "HF ": train_step(compiled_peer(lambda v: copies["hf"](pixel_values=v).logits),
                             list(copies["hf"].parameters()), torch.optim.AdamW(copies["hf"].parameters(), lr=1e-4),
                             x, y),
           "timm ": train_step(compiled_peer(copies["tm"]), list(copies["tm"].parameters()),
                               torch.optim.AdamW(copies["tm"].parameters(), lr=1e-4), x, y)}
    s = alternate(fns, batch, reps)
    train_gflop = 3 * forward_flops(cfg) / 1e9
    for row, sep in (("as shipped (peers eager)" if shipped else "as shipped", ""), ("the other way", " ")):
        v, h, t = s["vitlab" + sep], s["HF" + sep], s["timm" + sep]
        mv = statistics.median(v)
        rh, rt = ([a / b for a, b in zip(v, w)] for w in (h, t))  # per alternation round
        kind = ("compiled" if shipped else "eager") if not sep else ("eager" if shipped else "compiled")
        peers_kind = "eager" if not sep else "compiled"
        print(f"| {name} | {batch} | vitlab {kind}, peers {peers_kind} | {cell(v)} | {cell(h)} | {cell(t)} | "
              f"{mv / statistics.median(h):.2f} ({min(rh):.2f}-{max(rh):.2f}) | "
              f"{mv / statistics.median(t):.2f} ({min(rt):.2f}-{max(rt):.2f}) | "
              f"{mv * train_gflop:.0f} = {100 * mv * train_gflop / gflops:.0f}% |", flush=True)


def with_attention(model: ViT, impl: str) -> ViT:
    for m in model.modules():
        if isinstance(m, Attention):
            m.impl = impl
    return model


def as_before(model: ViT, x, y):
    """The step before the levers: stem weights and input NCHW, for-loop AdamW, the per-forward check on, the fused
    sdpa attention kernel."""
    with_attention(model, "sdpa")
    stem = model.to_patch_embedding
    for m in stem.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous()

    def nchw_forward(v):
        return stem.to_dim(stem.stages(v)).flatten(2).transpose(1, 2)
    stem.forward = nchw_forward
    return model


def levers(batch: int = 128, reps: int = 4) -> None:
    cfg = fashion_mnist().model
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def fresh():
        torch.manual_seed(0)
        return ViT(cfg).train()

    base = as_before(fresh(), x, y)
    cl = with_attention(fresh(), "sdpa")
    cl.check_finite = True
    fused = with_attention(fresh(), "sdpa")
    fused.check_finite = True
    fns = {
        "before (stem NCHW, for-loop AdamW, per-forward check, sdpa attention)":
            train_step(base, list(base.parameters()), torch.optim.AdamW(base.parameters(), lr=1e-4), x, y),
        "+ channels-last stem": train_step(cl, list(cl.parameters()),
                                           torch.optim.AdamW(cl.parameters(), lr=1e-4), x, y),
        "+ fused AdamW": train_step(fused, list(fused.parameters()),
                                    build_optimizer(fused, OptimConfig(lr=1e-4)), x, y),
        "+ input check once per data set": shipped_step(with_attention(fresh(), "sdpa"), x, y),
        "+ explicit attention on the CPU (attn_impl='auto'; as shipped for a run of < 2,000 steps)":
            shipped_step(fresh(), x, y),
    }
    t0 = time.perf_counter()
    compiled = shipped_step(fresh(), x, y, compiled=True)
    compiled()
    compile_s = time.perf_counter() - t0
    fns["+ torch.compile (as shipped for a run of >= 2,000 steps: compile='auto')"] = compiled
    fns["+ bf16 autocast on this CPU (not shipped: fp32 on CPUs)"] = shipped_step(fresh(), x, y, compiled=True,
                                                                                   cpu_bf16=True)
    s = alternate(fns, batch, reps)
    first = statistics.median(next(iter(s.values())))
    print("| step | img/s median (min-max) | vs before |\n|---|---|---|")
    for k, v in s.items():
        print(f"| {k} | {cell(v)} | {statistics.median(v) / first:.2f} |")
    print(f"\ntorch.compile: first step (compiling) {compile_s:.0f} s.\n")

    print("| batch | threads | shipped (compiled) step img/s median (min-max) |\n|---|---|---|")
    for threads in (2, 1):
        torch.set_num_threads(threads)
        for b in (64, 128, 256):
            xb, yb = torch.rand(b, 1, 28, 28), torch.randint(0, 10, (b,))
            s = alternate({"s": shipped_step(fresh(), xb, yb, compiled=True)}, b, max(1, 512 // b))
            print(f"| {b} | {threads} | {cell(s['s'])} |", flush=True)
    torch.set_num_threads(THREADS)


def main() -> None:
    global DEVICE
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (both parts) or cuda (the peers only, bf16 autocast)")
    DEVICE = torch.device(parser.parse_args().device)
    torch.set_num_threads(THREADS)
    print("# Training step: vitlab as shipped vs HF transformers and timm; the speed levers\n")
    print(header(THREADS) + f" fp32, CPU; medians of {REPS} alternating timings, spread min-max.\n")
    gflops = matmul_gflops()
    print(f"Large fp32 matmul (2048x2048, same process): {gflops:.0f} GFLOP/s.\n")
    fashion = replace(fashion_mnist().model, class_token=True, pool="token", drop_path=0.0)
    print("| model | batch | steps | vitlab img/s | HF sdpa img/s | timm img/s | vitlab / HF | vitlab / timm | "
          "vitlab GFLOP/s = share of matmul |")
    print("|---|---|---|---|---|---|---|---|---|")
    gpu = DEVICE.type == "cuda"
    peers(f"Fashion-MNIST recipe ({fashion.stem} stem; class token)", fashion, 1024 if gpu else 128, 4, gflops)
    peers("ViT-Ti/16 @ 224", replace(size_config("Ti"), drop_path=0.0), 256 if gpu else 16, 2, gflops)
    if gpu:
        print("\n(on a GPU the share column is against the CPU matmul above: compare with the card's bf16 peak)")
        return
    print(f"\n## Levers (Fashion-MNIST recipe model as shipped: {fashion_mnist().model.stem}, "
          f"{fashion_mnist().model.pool} pooling)\n")
    levers()
    print(f"Large fp32 matmul at the end: {matmul_gflops():.0f} GFLOP/s. Load average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
