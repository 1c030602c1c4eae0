"""The default job, measured: `vitlab train` with no arguments, several seeds, on this machine.

Runs the real console script in a subprocess per seed (so start-up is counted in the
wall time), then reads each run folder's metrics.json. ``train_time_s`` is the time
spent in training steps (forward, backward, optimiser); ``wall_s`` is the whole command,
including Python start-up, data loading, per-epoch evaluation and writing the run folder.

    python benchmarks/digits_default.py --seeds 0 1 2 3 4 > benchmarks/digits_default.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("extra", nargs="*", help="extra `vitlab train` flags (none for the default job)")
    args = parser.parse_args()
    vitlab = shutil.which("vitlab") or str(Path(sys.executable).with_name("vitlab"))
    out = Path(tempfile.mkdtemp(prefix="vitlab-bench-"))
    rows = []
    for seed in args.seeds:
        cmd = [vitlab, "train", "-q", "--seed", str(seed), "--out_dir", str(out), "--name", f"seed{seed}", *args.extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        m = json.loads((out / f"seed{seed}" / "metrics.json").read_text())
        epochs = [json.loads(line) for line in (out / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()]
        elapsed, first98 = 0.0, None  # training time until the first epoch with test accuracy >= 98%
        for e in epochs:
            elapsed += e["epoch_time_s"]
            if first98 is None and e["test_acc"] >= 0.98:
                first98 = (e["epoch"], elapsed)
        rows.append({"seed": seed, "test_acc": m["test_acc"], "train_time_s": m["train_time_s"], "wall_s": wall,
                     "epochs": m["epochs"], "params": m["params"], "first98": first98})
    cfg = json.loads((out / f"seed{args.seeds[0]}" / "config.json").read_text())
    print("# `vitlab train` (default job: digits)\n")
    print(f"Command per seed: `vitlab train --seed S {' '.join(args.extra)}`. "
          f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}.\n")
    print("| seed | final test acc | training time (s) | whole command (s) | first epoch ≥ 98% (training s to it) "
          "| epochs | params |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f98 = f"{r['first98'][0]} ({r['first98'][1]:.1f} s)" if r["first98"] else "never"
        print(f"| {r['seed']} | {r['test_acc']:.4f} | {r['train_time_s']:.1f} | {r['wall_s']:.1f} | {f98} | "
              f"{r['epochs']} | {r['params']:,} |")
    accs = [r["test_acc"] for r in rows]
    times = [r["train_time_s"] for r in rows]
    print(f"\nTest accuracy: mean {statistics.mean(accs):.4f}, min {min(accs):.4f}, max {max(accs):.4f} "
          f"over {len(rows)} seeds (test split: 360 images, so one image is 0.28 points).")
    print(f"Training time: mean {statistics.mean(times):.1f} s, max {max(times):.1f} s. Seeds with a final test "
          f"accuracy >= 98%: {sum(a >= 0.98 for a in accs)}/{len(rows)}.\n")
    print("Resolved configuration (config.json of the first seed):\n")
    print("```json\n" + json.dumps({k: cfg[k] for k in ("model", "data", "optim")}, indent=1) + "\n```")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
