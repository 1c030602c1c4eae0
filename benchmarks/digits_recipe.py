"""How the default digits recipe was found: the choices that mattered, each over validation folds and seeds.

Every row changes the final recipe (vitlab/recipes/digits.py) in the named keys only (and trains it
for the recipe's epochs unless the row names others). The choice is made on validation: one validation split of
digits is 145 images (one image = 0.69 points), too few to separate recipes a point apart, so every row is trained
on FOLDS validation splits of the same 1,437 training digits (``data.val_fold`` 0..FOLDS-1: each holds out another
stratified 10%; the test split is the same 360 images in all) times SEEDS seeds, and the validation accuracy is
averaged over all of them (145 x FOLDS x SEEDS predictions). The test accuracy of the same runs is shown beside it,
scored once per run at its end, never used to choose. Accuracy is what this table is for; it runs with one thread
so that it can share the machine, and its times are not the default job's (benchmarks/digits_default.md has those,
measured alone).

    python benchmarks/digits_recipe.py > benchmarks/digits_recipe.md                # 5 folds x 2 seeds a row
    python benchmarks/digits_recipe.py --only 8-14 > benchmarks/digits_recipe_round2.md   # the second round
    python benchmarks/digits_recipe.py --only 0,15-18 > benchmarks/digits_recipe_round3.md  # weight averages
    python benchmarks/digits_recipe.py --folds 1 --seeds 0 1 2 3 4                 # the first round's protocol
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from machine import header, load_now

from vitlab.configio import apply_overrides
from vitlab.recipes import digits
from vitlab.train import fit

VARIANTS = [
    ("the recipe", {}),
    ("3×3 conv + max-pool stem (exports to ONNX, not to HF or timm)", {"model.stem": "conv+maxpool"}),
    ("3×3 conv + max-pool stem, 20 epochs", {"model.stem": "conv+maxpool", "optim.epochs": 20}),
    ("35 epochs", {"optim.epochs": 35}),
    ("batch 32", {"optim.batch_size": 32}),
    ("drop path 0.1", {"model.drop_path": 0.1}),
    ("lr 4e-3", {"optim.lr": 4e-3}),
    ("average pooling, no class token", {"model.pool": "avg", "model.class_token": False}),
    # round 2 (--only 8-14): longer, wider, more regularised
    ("40 epochs", {"optim.epochs": 40}),
    ("width 96", {"model.dim": 96}),
    ("width 96, 40 epochs", {"model.dim": 96, "optim.epochs": 40}),
    ("label smoothing 0.2", {"optim.label_smoothing": 0.2}),
    ("weight decay 0.1", {"optim.weight_decay": 0.1}),
    ("shifts of up to ±1 px only", {"data.augment": "digits", "data.translate": 0.125, "data.rotate": 0.0,
                                    "data.scale": 0.0}),
    ("MixUp 0.2", {"data.mixup": 0.2}),
    # round 3 (--only 0,15-18): an exponential moving average of the weights (optim.ema), the recipe beside it
    ("weight average (optim.ema) 0.98", {"optim.ema": 0.98}),
    ("weight average 0.99", {"optim.ema": 0.99}),
    ("weight average 0.995", {"optim.ema": 0.995}),
    ("weight average 0.99, 35 epochs", {"optim.ema": 0.99, "optim.epochs": 35}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="validation splits (data.val_fold 0..N-1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", default="0-7", help="rows of VARIANTS to run, e.g. 0-7 (round 1), 8-14, 0,15-18")
    args = parser.parse_args()
    chosen = []
    for part in args.only.split(","):
        lo, _, hi = part.partition("-")
        chosen += range(int(lo), int(hi or lo) + 1)
    rows = [(i, VARIANTS[i]) for i in chosen]
    runs = [(fold, seed) for fold in range(args.folds) for seed in args.seeds]
    print("# How the digits recipe was found\n")
    print(header(1) + "\n")
    print(f"Each row: the recipe with the listed change ({digits().optim.epochs} epochs unless it says otherwise), "
          f"trained on {args.folds} validation split(s) (data.val_fold 0..{args.folds - 1}) x seeds "
          f"{', '.join(map(str, args.seeds))}: {len(runs)} runs. **Chosen on** the final validation accuracy "
          f"(145 images a split, {145 * len(runs):,} predictions a row), mean ± sample std over the runs, with the "
          "mean of each split (over its seeds); the test accuracy (360 images, 0.28 points an image, the same "
          "split in every run) of the same runs is beside it, scored once at each run's end.\n")
    print("| variant | " + " | ".join(f"val split {f}" for f in range(args.folds)) + " | val mean ± std | test "
          "mean ± std | training s (1 thread) |")
    print("|---|" + "---|" * (args.folds + 3))
    with tempfile.TemporaryDirectory() as out:
        for i, (name, changes) in rows:
            vals, tests, times = {}, [], []
            for fold, seed in runs:
                cfg = apply_overrides(digits(), {**changes, "seed": seed, "data.val_fold": fold, "threads": 1,
                                                 "progress": False, "out_dir": out, "name": f"v{i}-f{fold}-s{seed}"})
                final = json.loads((fit(cfg) / "metrics.json").read_text())
                vals.setdefault(fold, []).append(final["val_acc"])
                tests.append(final["test_acc"])
                times.append(final["train_time_s"])
            every = [v for fold in vals.values() for v in fold]
            ms = lambda v: f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}"  # noqa: E731
            print(f"| {name} | " + " | ".join(f"{statistics.mean(v):.4f}" for v in vals.values())
                  + f" | **{ms(every)}** | {ms(tests)} | {statistics.mean(times):.1f} |", flush=True)
    print(f"\nLoad average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
