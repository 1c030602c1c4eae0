"""Training and inference throughput of vitlab's ViT against HF transformers' ViT, same process.

Both models get identical weights (vitlab.interop.to_hf), the same inputs and the same
thread count; timings alternate between the two so that machine noise hits both alike.
Prints a Markdown table with images/s and the ratio vitlab / HF (> 1: vitlab is faster).

    python benchmarks/throughput.py > benchmarks/throughput.md
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from transformers import ViTConfig, ViTForImageClassification
from transformers.utils import logging as hf_logging

from machine import header, load_now

from vitlab import ModelConfig, ViT, size_config
from vitlab.interop import to_hf

hf_logging.set_verbosity_error()

CASES = [
    ("digits recipe (8x8, patch 2, D=96, depth 4)", ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=10,
                                                               dim=96, depth=4, heads=4, mlp_ratio=2.0), 256),
    ("ViT-Ti/16 @ 224", size_config("Ti"), 16),
    ("ViT-S/16 @ 224", size_config("S"), 8),
]


def hf_twin(cfg: ModelConfig, model: ViT, attn: str) -> ViTForImageClassification:
    hf_cfg = ViTConfig(image_size=cfg.img_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans,
                       hidden_size=cfg.dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads,
                       intermediate_size=int(cfg.dim * cfg.mlp_ratio), num_labels=cfg.num_classes,
                       layer_norm_eps=cfg.norm_eps, qkv_bias=cfg.qkv_bias, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    hf_cfg._attn_implementation = attn
    hf = ViTForImageClassification(hf_cfg)
    hf.load_state_dict(to_hf(model.state_dict()))
    return hf


def timed(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    torch.manual_seed(0)
    print(f"# Throughput: vitlab vs HF transformers ViT (same weights, same process)\n")
    print(header(torch.get_num_threads()) + " fp32, CPU; medians of 5 alternating timings.\n")
    print("| model | batch | pass | vitlab img/s | HF sdpa img/s | HF eager img/s | vitlab / HF sdpa | vitlab / HF eager |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cfg, batch in CASES:
        ours = ViT(cfg)
        peers = {"sdpa": hf_twin(cfg, ours, "sdpa"), "eager": hf_twin(cfg, ours, "eager")}
        x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size)
        y = torch.randint(0, cfg.num_classes, (batch,))
        with torch.no_grad():
            ref = peers["eager"](pixel_values=x).logits
            assert torch.allclose(ours.eval()(x), ref, atol=1e-4), "models disagree: benchmark would be meaningless"
        for mode in ("inference", "train step"):
            fns = {}
            for key, m in [("vitlab", ours), *peers.items()]:
                call = (lambda m=m: m(x)) if key == "vitlab" else (lambda m=m: m(pixel_values=x).logits)
                if mode == "inference":
                    m.eval()
                    fns[key] = lambda call=call: torch.no_grad()(call)()
                else:
                    m.train()
                    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

                    def step(call=call, opt=opt):
                        opt.zero_grad(set_to_none=True)
                        F.cross_entropy(call(), y).backward()
                        opt.step()
                    fns[key] = step
            for fn in fns.values():  # warm-up
                fn(), fn()
            reps = 10 if cfg.img_size <= 32 else 3
            samples = {k: [] for k in fns}
            for _ in range(5):  # alternate so noise hits every model alike
                for k, fn in fns.items():
                    samples[k].append(timed(fn, reps))
            ips = {k: batch / statistics.median(v) for k, v in samples.items()}
            print(f"| {name} | {batch} | {mode} | {ips['vitlab']:.0f} | {ips['sdpa']:.0f} | {ips['eager']:.0f} | "
                  f"{ips['vitlab'] / ips['sdpa']:.2f} | {ips['vitlab'] / ips['eager']:.2f} |", flush=True)
    print(f"\nLoad average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
