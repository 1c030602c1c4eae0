"""How the Fashion-MNIST recipe was chosen: a table of screening runs, read from their run folders.

Every arm is `vitlab train --recipe fashion-mnist --threads 2 --epochs 40 --optim.time_budget_s B FLAGS`, one seed
(0), alone on the machine, two CPU threads; `FLAGS` are each run's own (argv.json), on the recipe of the commit
the runs were made at (README of this file's output). The table reads each run's config.json, metrics.jsonl and
metrics.json: the choice was made on the final validation accuracy (6,000 images: one image = 0.017 points), at
equal training time (the budget), and the test accuracy is shown beside it, scored once per run, never used to
choose. One seed per arm: differences below ~0.3 points are within what a seed changes (benchmarks/fashion.md has
the recipe over 3 seeds).

    python benchmarks/fashion_screen.py RUNS_DIR [NAME ...] > benchmarks/fashion_screen.md
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

BASE = ["train", "--recipe", "fashion-mnist", "--threads", "2", "--epochs", "40"]
SKIP = {"--out_dir", "--name", "--optim.time_budget_s"}


def flags(argv: list[str]) -> str:
    rest, out, i = argv[1 + len(BASE):], [], 0  # argv[0] is the program
    while i < len(rest):
        if rest[i] in SKIP:
            i += 2
        elif rest[i] == "-q":
            i += 1
        else:
            out.append(f"{rest[i]} {rest[i + 1]}")
            i += 2
    return " ".join(out) or "(none)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("names", nargs="*", help="run folders under RUNS, in table order (default: all, by time)")
    args = ap.parse_args()
    names = args.names or [p.name for p in sorted(args.runs.iterdir(), key=lambda p: p.stat().st_mtime)
                           if (p / "metrics.json").is_file()]
    print("| arm | flags on the recipe | budget s | epochs | training s | median img/s | final val acc | "
          "val acc by epoch | test acc (not used) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        run = args.runs / name
        argv = json.loads((run / "argv.json").read_text())
        cfg = json.loads((run / "config.json").read_text())
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        final = json.loads((run / "metrics.json").read_text())
        curve = " ".join(f"{100 * r['val_acc']:.1f}" for r in rows)
        print(f"| {name} | `{flags(argv)}` | {cfg['optim']['time_budget_s']:g} | {final['epochs']} | "
              f"{final['train_time_s']:.0f} | {statistics.median(r['images_per_s'] for r in rows):.0f} | "
              f"**{100 * final['val_acc']:.2f}** | {curve} | {100 * final['test_acc']:.2f} |")


if __name__ == "__main__":
    main()
