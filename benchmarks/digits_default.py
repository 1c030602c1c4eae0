"""The default job, measured: `vitlab train` with no arguments, several seeds, on this machine.

Runs the real console script in a subprocess per seed (so start-up is counted in the wall time), then reads each
run folder's metrics. ``train_time_s`` is the time spent in training steps (forward, backward, optimiser);
``wall_s`` is the whole command, including Python start-up, data loading, per-epoch validation and writing the
run folder. The validation split (145 images) is what the recipe was chosen on and what picks
best.safetensors; the test split (360 images) is scored once, at the end, on the final model.

    python benchmarks/digits_default.py --seeds 0 1 2 3 4 > benchmarks/digits_default.md
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import header, load_now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("extra", nargs="*", help="extra `vitlab train` flags (none for the default job)")
    args = parser.parse_args()
    vitlab = shutil.which("vitlab") or str(Path(sys.executable).with_name("vitlab"))
    out = Path(tempfile.mkdtemp(prefix="vitlab-bench-"))
    print("# `vitlab train` (default job: digits)\n")
    print(header("PyTorch's default (2 on this machine)") + "\n")
    rows = []
    for seed in args.seeds:
        cmd = [vitlab, "train", "-q", "--seed", str(seed), "--out_dir", str(out), "--name", f"seed{seed}", *args.extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        m = json.loads((out / f"seed{seed}" / "metrics.json").read_text())
        epochs = [json.loads(line) for line in (out / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()]
        elapsed, first98 = 0.0, None  # training time until the first epoch with validation accuracy >= 98%
        for e in epochs:
            elapsed += e["epoch_time_s"]
            if first98 is None and e["val_acc"] >= 0.98:
                first98 = (e["epoch"], elapsed)
        rows.append({**m, "seed": seed, "wall_s": wall, "first98": first98})
    cfg = json.loads((out / f"seed{args.seeds[0]}" / "config.json").read_text())
    print(f"Command per seed: `vitlab train --seed S {' '.join(args.extra)}`.\n")
    print("| seed | final val acc | best val acc (epoch) | test acc (final model, once) | training time (s) "
          "| whole command (s) | first epoch with val ≥ 98% (training s to it) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f98 = f"{r['first98'][0]} ({r['first98'][1]:.1f} s)" if r["first98"] else "never"
        print(f"| {r['seed']} | {r['val_acc']:.4f} | {r['best_val_acc']:.4f} ({r['best_epoch']}) | {r['test_acc']:.4f} "
              f"| {r['train_time_s']:.1f} | {r['wall_s']:.1f} | {f98} |")
    for key, what in (("val_acc", "Final validation accuracy (145 images, one image = 0.69 points)"),
                      ("test_acc", "Test accuracy (360 images, one image = 0.28 points)")):
        v = [r[key] for r in rows]
        print(f"\n{what}: mean {statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f} (sample std), "
              f"min {min(v):.4f}, max {max(v):.4f} over {len(rows)} seeds; seeds ≥ 98%: {sum(a >= 0.98 for a in v)}.")
    times, walls = [r["train_time_s"] for r in rows], [r["wall_s"] for r in rows]
    print(f"\nTraining time: mean {statistics.mean(times):.1f} s, max {max(times):.1f} s; whole command: mean "
          f"{statistics.mean(walls):.1f} s, max {max(walls):.1f} s. {rows[0]['params']:,} parameters, "
          f"{rows[0]['epochs']} epochs. {load_now().join(['Load average at the end: ', '.'])}\n")
    print("Resolved configuration (config.json of the first seed):\n")
    print("```json\n" + json.dumps({k: cfg[k] for k in ("model", "data", "optim")}, indent=1) + "\n```")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
