"""An hour of contrastive pretraining on Fashion-MNIST, then the linear probes (issue 15).

Each arm is `vitlab train --task pretrain --recipe fashion-mnist` with `--optim.time_budget_s BUDGET` (whole epochs
that fit BUDGET seconds of training at the first epoch's pace; `--epochs 40` only bounds them) and the flags of
`--extra`, `--jobs` runs at a time with `--threads` threads each (the default, two at a time on one thread each, makes
"an hour on 2 cores" an hour on one core beside another run; `--jobs 1 --threads 2` gives one run both cores). Arms:

- `patch`: the recipe's earlier encoder (a 64-wide ViT on 4×4 patches, average pooling);
- `conv`: the recipe without its grey jitter, the classification recipe's encoder (96 wide, a 3×3-conv stem with stride-2
  down-sampling and one more convolution at each resolution, max pooling; before the recipe took this encoder the
  arm passed it as flags, `--model.dim 96 --model.stem conv+stride --model.stem_depth 2 --model.pool max`, the
  run of benchmarks/pretrain_hour.md);
- `conv-grey-jitter`: `conv` with random brightness and contrast in the views (`--pretrain.grey_jitter 0.4`): the
  recipe as shipped since it took the grey jitter (benchmarks/pretrain_hour_grey_jitter.md); `conv` now passes
  `--pretrain.grey_jitter 0` to stay the run of benchmarks/pretrain_hour.md.

Then, for every run, `vitlab probe RUN --features F` and `--random --features F` for F in pooled (SimCLR's protocol:
the pooled features the loss saw), blocks (DINO's: the last four blocks' normed, pooled outputs side by side) and
tokens (the final patch-token map, flattened), and `vitlab probe RUN --pixels` (logistic regression on the raw
pixels, the data set paper's 84.2% baseline). Every probe trains on the 54,000 training images, is read on the 6,000
validation images, and is scored once on the 10,000 test images; choose on the val columns.

    python benchmarks/pretrain_hour.py --out /tmp/p15 --arms conv --jobs 1 --threads 2 --extra="--precision bf16" \
        > benchmarks/pretrain_hour.md

A second call with the same --out reads the finished runs and probes (same command) instead of redoing them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from machine import header, load_now

PATCH64 = ["--model.dim", "64", "--model.stem", "patch", "--model.stem_depth", "1", "--model.pool", "avg",
           "--pretrain.grey_jitter", "0"]
ARMS = {"patch": PATCH64, "conv": ["--pretrain.grey_jitter", "0"],
        "conv-grey-jitter": ["--pretrain.grey_jitter", "0.4"]}
FEATURES = ("pooled", "blocks", "tokens")
EXE = shutil.which("vitlab") or str(Path(sys.executable).with_name("vitlab"))


def pretrain(out: Path, arm: str, seed: int, budget: float, threads: int, extra: list[str]) -> dict:
    name = f"{arm}-s{seed}"
    argv = ["train", "--task", "pretrain", "--recipe", "fashion-mnist", "--epochs", "40", "--optim.time_budget_s",
            f"{budget:g}", *ARMS[arm], *extra, "--threads", str(threads), "--seed", str(seed), "--out_dir", str(out), "--name", name]
    run, t0 = out / name, time.perf_counter()
    if not ((run / "metrics.json").exists() and json.loads((run / "argv.json").read_text())[1:] == argv):
        proc = subprocess.run([EXE, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        (run / "wall_s.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
    wall = run / "wall_s.txt"
    return {"arm": arm, "seed": seed, "run": run, "metrics": json.loads((run / "metrics.json").read_text()),
            "wall_s": wall.read_text().strip() if wall.exists() else "-"}


def probe(run: Path, *flags: str) -> dict:
    """One `vitlab probe` entry of run/probe.json, computed unless an earlier call left it."""
    mode = ("pixels" if "--pixels" in flags else ("random_" if "--random" in flags else "") + "linear")
    features = flags[flags.index("--features") + 1] if "--features" in flags else "pooled"
    mode += "" if features == "pooled" else f"_{features}"
    path = run / "probe.json"
    if not (path.exists() and mode in json.loads(path.read_text())):
        subprocess.run([EXE, "probe", str(run), *flags, "--threads", "2"], check=True, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())[mode]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=3300, help="seconds of pretraining a run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES, help="what the probes read")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads a run")
    ap.add_argument("--extra", default="", help="more flags for every run, e.g. --extra='--precision bf16'")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# An hour of contrastive pretraining on Fashion-MNIST, then linear probes (issue 15)\n\n{header(args.threads)}\n")
    t0 = time.perf_counter()
    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda j: pretrain(args.out, *j, args.budget, args.threads, args.extra.split()), jobs))
    print(f"Pretraining, {args.jobs} run(s) at a time ({args.threads} thread(s) each), flags `{args.extra or '-'}`, "
          f"budget {args.budget:g} s of training a run: "
          f"{time.perf_counter() - t0:.0f} s in this call (0 when every run was already there).\n")
    print("| arm | seed | epochs | pretraining s | whole command s | val kNN (k=20) | test kNN (k=20) |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        m = r["metrics"]
        print(f"| {r['arm']} | {r['seed']} | {m['epochs']} | {m['train_time_s']:.0f} | {r['wall_s']} | "
              f"{m['val_knn_acc']:.4f} | {m.get('test_knn_acc', float('nan')):.4f} |")
    t0 = time.perf_counter()
    print("\nLinear probes (val / test accuracy; train on the 54,000 training images, full batch, 300 epochs):\n")
    print("| arm | seed | features | pretrained encoder | random encoder, same architecture |")
    print("|---|---|---|---|---|")
    for r in runs:
        for f in args.features:
            mine, rand = probe(r["run"], "--features", f), probe(r["run"], "--features", f, "--random")
            print(f"| {r['arm']} | {r['seed']} | {f} | {mine['val_acc']:.4f} / {mine['test_acc']:.4f} | "
                  f"{rand['val_acc']:.4f} / {rand['test_acc']:.4f} |")
    px = probe(runs[0]["run"], "--pixels")
    print(f"\nRaw pixels (no encoder, the same probe): {px['val_acc']:.4f} / {px['test_acc']:.4f}. "
          f"Probes: {time.perf_counter() - t0:.0f} s in this call. Load at the end: {load_now()}")


if __name__ == "__main__":
    main()
