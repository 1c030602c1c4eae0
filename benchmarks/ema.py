"""What a weight average (``optim.ema``) gains on a recipe, seed by seed, on the validation split.

The average does not change training: a run with ``--optim.ema D`` trains exactly the weights a run without it
trains (same seed, same steps), and evaluates both each epoch (``val_acc``: the average; ``val_trained_acc``: the
trained weights). So each seed gives an exact pair, and the difference is the average's alone. Test accuracy is
scored once, at the end, on the average (what the run saves), and is not used to choose.

    python benchmarks/ema.py --recipe fashion-mnist --ema 0.999 --seeds 0 1 2 --out /tmp/ema > benchmarks/ema_fashion.md
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import header, load_now

EXE = shutil.which("vitlab") or str(Path(sys.executable).with_name("vitlab"))


def run(out: Path, recipe: str, ema: float, seed: int, threads: int, extra: list[str]) -> Path:
    """One `vitlab train` (reused when an earlier call made it with the same command)."""
    name = f"{recipe}-ema{ema:g}-s{seed}"
    argv = ["train", "--recipe", recipe, "--optim.ema", f"{ema:g}", *extra, "--threads", str(threads), "--seed",
            str(seed), "--out_dir", str(out), "--name", name, "-q"]
    folder, t0 = out / name, time.perf_counter()
    if not ((folder / "metrics.json").exists() and json.loads((folder / "argv.json").read_text())[1:] == argv):
        proc = subprocess.run([EXE, *argv, *(["--overwrite"] if folder.exists() else [])], text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode:
            raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        (folder / "wall_s.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
    return folder


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):+.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else \
        f"{values[0]:+.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fashion-mnist")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--extra", default="", help="more flags for every run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# A weight average (optim.ema = {args.ema:g}) on the `{args.recipe}` recipe\n\n{header(args.threads)}\n")
    print(f"Command per seed: `vitlab train --recipe {args.recipe} --optim.ema {args.ema:g} {args.extra} --seed S`, "
          f"one run at a time.\n")
    print("| seed | epochs | training s | whole command s | final val: average | final val: trained weights | "
          "difference (points) | best val of the average (epoch) | test acc of the average (once) |")
    print("|---|---|---|---|---|---|---|---|---|")
    finals, per_epoch = [], {}
    for seed in args.seeds:
        folder = run(args.out, args.recipe, args.ema, seed, args.threads, args.extra.split())
        m = json.loads((folder / "metrics.json").read_text())
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        for r in rows:
            per_epoch.setdefault(r["epoch"], []).append(100 * (r["val_acc"] - r["val_trained_acc"]))
        last = rows[-1]
        finals.append(100 * (last["val_acc"] - last["val_trained_acc"]))
        wall = (folder / "wall_s.txt").read_text().strip() if (folder / "wall_s.txt").exists() else "-"
        print(f"| {seed} | {m['epochs']} | {m['train_time_s']:.0f} | {wall} | {last['val_acc']:.4f} | "
              f"{last['val_trained_acc']:.4f} | {finals[-1]:+.2f} | {m['best_val_acc']:.4f} ({m['best_epoch']}) | "
              f"{m['test_acc']:.4f} |")
    print(f"\nFinal validation accuracy, average minus trained weights, mean ± sample std over {len(finals)} "
          f"seed(s): **{mean_std(finals)} points**.\n")
    print("By epoch (average minus trained weights, points, mean ± std over the seeds that reached the epoch):\n")
    print("| epoch | " + " | ".join(str(e) for e in per_epoch) + " |")
    print("|---|" + "---|" * len(per_epoch))
    print("| difference | " + " | ".join(mean_std(v) for v in per_epoch.values()) + " |")
    print(f"\nLoad average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
