"""Transfer against scratch (issue 17): `vitlab train --init SRC` on a Fashion-MNIST folder of 8,000 training images,
against the same architecture trained from scratch on that folder for the same epochs.

1. The folder: 800 training images a class drawn with a fixed seed from Fashion-MNIST's 60,000 (vitlab carves its
   validation split, 800 images, from them), and the official 10,000 test images, written as PNG files into
   class folders named after Fashion-MNIST's classes (so that no SRC's class names match: every fine-tuned run gets
   a new head).
2. Two sources, both trained on MNIST (another data set: this is transfer, not more of the same data):
   - `vitlab train --recipe mnist --data mnist:DIR` (the shipped recipe, supervised);
   - `vitlab train --task pretrain --recipe fashion-mnist --data mnist:DIR` with the mnist recipe's architecture
     (a SimCLR/InfoNCE encoder, no labels used).
3. On the folder, every setting the mnist recipe's but the epochs (EPOCHS for all) and the learning rate: each start
   (scratch, the supervised source, the contrastive one) gets the lr of a small grid with the best validation
   accuracy, in runs of a seed of their own (100); then each arm trains with 3 other seeds: scratch, `--init` with
   the fine-tuning defaults (lr / 10, short warm-up), `--init` at the chosen lr from each source, and from the
   supervised source also `--optim.layer_decay 0.75`, `--init.freeze encoder` and `--init.freeze all-but-last-2`.

Two runs go at a time, one thread each (2 cores), so every arm's training time is measured beside one other run.
Test accuracy is the final model's, scored once; nothing here is chosen on it (the learning rates are chosen on
the validation split, by runs whose seed is not among the reported ones; every other setting was fixed before the
runs). Needs dataset-fashion-mnist and the MNIST idx
files in ../shared/datasets/mnist.

    python benchmarks/finetune.py > benchmarks/finetune.md
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from machine import header, load_now

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# the mnist recipe's encoder, for the pretraining source (the pretraining recipe's own is a 64-wide patch ViT)
ARCH = ["--model.dim", "96", "--model.depth", "4", "--model.heads", "4", "--model.mlp_ratio", "2",
        "--model.stem", "conv+stride", "--model.pool", "max", "--model.class_token", "false",
        "--model.patch_size", "4"]
# the pretraining recipe's views before it took grey jitter (benchmarks/finetune.md was made without it)
VIEWS = ["--pretrain.grey_jitter", "0"]
SCRATCH_LRS, INIT_LRS, CHOICE_SEED = (1e-3, 2e-3, 4e-3), (2e-4, 6e-4, 2e-3), 100
# section 3's contrastive start chose the grid's top (2e-3) in the first run: the grid reaches one step further
UNLABELLED_INIT_LRS = (6e-4, 2e-3, 4e-3)


def write_folder(out: Path, per_class_train: int = 800, seed: int = 0, unlabelled: Path | None = None) -> None:
    """The folder of the module docstring; with ``unlabelled``, the other 52,000 training images too, in a folder
    of their own (root/<class>/, for contrastive pretraining: the labels only name the kNN monitor's classes)."""
    from vitlab.data import load_idx_dir
    from vitlab.data.idx import FASHION_MNIST_CLASSES

    train, test = load_idx_dir(FASHION, FASHION_MNIST_CLASSES)
    rng = np.random.default_rng(seed)
    for split, data, k in (("train", train, per_class_train), ("test", test, None)):
        labels = data.labels.numpy()
        for c, name in enumerate(FASHION_MNIST_CLASSES):
            folder = out / split / name.replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            idx = np.flatnonzero(labels == c)
            drawn = idx if k is None else rng.choice(idx, size=k, replace=False)
            for i in drawn:
                Image.fromarray(data.images[i, 0].numpy()).save(folder / f"{i:05d}.png")
            if unlabelled is not None and split == "train":
                (unlabelled / name.replace("/", "-")).mkdir(parents=True, exist_ok=True)
                for i in np.setdiff1d(idx, drawn):
                    Image.fromarray(data.images[i, 0].numpy()).save(unlabelled / name.replace("/", "-") / f"{i:05d}.png")


def contrastive_part(out: Path, epochs: int, pretrain_epochs: int, seeds: list[int], on: str) -> None:
    """Contrastive pretraining (two threads), then fine-tuning on the folder, against scratch measured again beside
    it on the same host, with and without layer-wise lr decay 0.75: each start's lr chosen on validation (seed
    100) from its grid, then the seeds, two runs at a time, one thread each, as in section 2. ``on="fashion"``:
    Fashion-MNIST's other 52,000 training images (none of the folder's 8,000, none of the test images; labels
    unused), the semi-supervised case; ``on="mnist"``: MNIST, as section 2's contrastive source but longer."""
    folder, rest = out / "fashion-8000", out / "fashion-rest"
    if not (folder.exists() and rest.exists()):  # (a second call with the same --out reuses them and every run)
        write_folder(folder, unlabelled=rest)
    if on == "fashion":
        data, name, tag = ["--data", f"folder:{rest}", "--data.test_split", "0.05"], "src-fashion-simclr", "unlabelled"
        print("## 3. A contrastive source on the other 52,000 Fashion-MNIST training images (labels unused)\n")
    else:
        data, name, tag = ["--data", f"mnist:{MNIST}"], f"src-mnist-simclr-{pretrain_epochs}ep", "mnist-simclr"
        print(f"## 4. A contrastive source on MNIST, {pretrain_epochs} epochs\n")
    src = vitlab(["--task", "pretrain", "--recipe", "fashion-mnist", *data, *ARCH, *VIEWS, "--epochs",
                  str(pretrain_epochs)], out, name, 2)
    m = src["metrics"]
    shown = " ".join(data).replace(str(rest), "REST").replace(str(MNIST), "DIR")
    print(f"`vitlab train --task pretrain --recipe fashion-mnist {shown}` + the mnist recipe's "
          f"architecture, {pretrain_epochs} epochs, 2 threads: {m['train_time_s']:.0f} s of training; kNN accuracy "
          f"{100 * m['best_val_acc' if 'best_val_acc' in m else 'best_val_knn_acc']:.2f}% on its own validation "
          f"split.\n")
    base = ["--recipe", "mnist", "--data", f"folder:{folder}", "--epochs", str(epochs)]
    init = ["--init", str(out / src["name"])]
    starts = {"scratch": (base + ARCH, SCRATCH_LRS), "contrastive": (base + init, UNLABELLED_INIT_LRS),
              "contrastive-ld": (base + init + ["--optim.layer_decay", "0.75"], UNLABELLED_INIT_LRS[1:])}
    names = {start: f"{start}-{'unlabelled' if start == 'scratch' else tag}" for start in starts}  # scratch: shared
    pool = ThreadPoolExecutor(2)
    jobs = {(start, lr): pool.submit(vitlab, flags + ["--lr", str(lr), "--seed", str(CHOICE_SEED)], out,
                                     f"choose-{names[start]}-lr{lr}", 1)
            for start, (flags, lrs) in starts.items() for lr in lrs}
    chosen = {}
    for start, (_, lrs) in starts.items():
        val = {lr: jobs[(start, lr)].result()["metrics"]["best_val_acc"] for lr in lrs}
        chosen[start] = best_lr(val)
        print(f"{start}: lr chosen on validation (seed {CHOICE_SEED}): "
              + ", ".join(f"{v:g}: {100 * a:.2f}%" for v, a in val.items()) + f" -> {chosen[start]:g}\n")
    runs = {(start, s): pool.submit(vitlab, flags + ["--lr", str(chosen[start]), "--seed", str(s)], out,
                                    f"{names[start]}-seed{s}", 1)
            for s in seeds for start, (flags, _) in starts.items()}
    print("| arm | test accuracy (%) | best val accuracy (%) | training (s) | each seed's test accuracy |\n"
          "|---|---|---|---|---|")
    source = "the other Fashion-MNIST images" if on == "fashion" else "MNIST"
    for start, label in (("scratch", "scratch, measured beside it"),
                         ("contrastive", f"--init contrastive on {source}"),
                         ("contrastive-ld", "--init contrastive, layer_decay 0.75")):
        rs = [runs[(start, s)].result() for s in seeds]
        test = [100 * r["metrics"]["test_acc"] for r in rs]
        print(f"| {label} (lr {chosen[start]:g}) | {mean_std(test)} | "
              f"{mean_std([100 * r['metrics']['best_val_acc'] for r in rs])} | "
              f"{statistics.mean(r['metrics']['train_time_s'] for r in rs):.0f} | "
              f"{', '.join(f'{t:.2f}' for t in test)} |")


def vitlab(args: list[str], out: Path, name: str, threads: int) -> dict:
    """One `vitlab train` run into out/name; a finished run there made by the same command is read, not redone."""
    exe = shutil.which("vitlab") or str(Path(sys.executable).with_name("vitlab"))
    argv = ["train", *args, "--threads", str(threads), "--out_dir", str(out), "--name", name, "-q"]
    run, t0 = out / name, time.perf_counter()
    if (run / "metrics.json").exists() and json.loads((run / "argv.json").read_text())[1:] == argv:
        return {"name": name, "wall_s": None, "metrics": json.loads((run / "metrics.json").read_text()),
                "config": json.loads((run / "config.json").read_text()), "lines": []}
    proc = subprocess.run([exe, *argv], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return {"name": name, "wall_s": time.perf_counter() - t0, "metrics": json.loads((run / "metrics.json").read_text()),
            "config": json.loads((run / "config.json").read_text()),
            "lines": [ln for ln in proc.stdout.splitlines() if ln.startswith(("init ", "init.source", "data folder"))]}


def best_lr(val: dict[float, float]) -> float:
    """The lr with the best validation accuracy; ties: the smaller step."""
    return max(val, key=lambda lr: (val[lr], -lr))


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--source-epochs", type=int, default=1, help="pretraining source's epochs on MNIST")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--part", choices=("all", "unlabelled", "mnist-contrastive"), default="all",
                    help="unlabelled: only the semi-supervised case (section 3) and scratch beside it; "
                         "mnist-contrastive: a contrastive MNIST source of --pretrain-epochs (section 4)")
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="vitlab-finetune-"))
    if args.part != "all":
        print(header(threads=1) + " The pretraining at 2 threads; then two runs at a time, one thread each.\n")
        t0 = time.perf_counter()
        on = "fashion" if args.part == "unlabelled" else "mnist"
        contrastive_part(out, args.epochs, args.pretrain_epochs, args.seeds, on)
        print(f"\nSection {3 if on == 'fashion' else 4}: {time.perf_counter() - t0:.0f} s; load at the end "
              f"{load_now()}.")
        return
    print("# Fine-tuning from MNIST against training from scratch, on a Fashion-MNIST folder of 8,000 images\n")
    print(header(threads=1) + " Two runs at a time, one thread each.\n")
    t0 = time.perf_counter()
    folder = out / "fashion-8000"
    write_folder(folder)
    print(f"Folder: 8,000 training images (800 a class, seed 0), the official 10,000 test images; written in "
          f"{time.perf_counter() - t0:.0f} s.\n")

    pool = ThreadPoolExecutor(2)
    sup = pool.submit(vitlab, ["--recipe", "mnist", "--data", f"mnist:{MNIST}"], out, "src-mnist", 1)
    con = pool.submit(vitlab, ["--task", "pretrain", "--recipe", "fashion-mnist", "--data", f"mnist:{MNIST}", *ARCH,
                               *VIEWS, "--epochs", str(args.source_epochs)], out, "src-mnist-simclr", 1)
    sup, con = sup.result(), con.result()
    print("## The sources (trained on MNIST, two at a time, one thread each)\n")
    print("| source | command | epochs | training (s) | MNIST val | MNIST test |\n|---|---|---|---|---|---|")
    m = sup["metrics"]
    print(f"| supervised | `vitlab train --recipe mnist --data mnist:DIR` | {sup['config']['optim']['epochs']} | "
          f"{m['train_time_s']:.0f} | acc {100 * m['best_val_acc']:.2f}% | acc {100 * m['test_acc']:.2f}% |")
    m = con["metrics"]
    knn = {k: v for k, v in m.items() if "knn" in k}
    print(f"| contrastive (InfoNCE, τ {con['config']['pretrain']['tau']}) | `vitlab train --task pretrain --recipe "
          f"fashion-mnist --data mnist:DIR` + the mnist recipe's architecture | {args.source_epochs} | "
          f"{m['train_time_s']:.0f} | {json.dumps(knn)} | — |\n")

    base = ["--recipe", "mnist", "--data", f"folder:{folder}", "--epochs", str(args.epochs)]
    src, simclr = str(out / "src-mnist"), str(out / "src-mnist-simclr")

    # 1. each start's learning rate, chosen on the validation split with a seed of its own (not a reported one)
    grids = {"scratch": (base + ARCH, SCRATCH_LRS), "supervised": (base + ["--init", src], INIT_LRS),
             "contrastive": (base + ["--init", simclr], INIT_LRS)}
    jobs = {(start, lr): pool.submit(vitlab, flags + ["--lr", str(lr), "--seed", str(CHOICE_SEED)], out,
                                     f"choose-{start}-lr{lr}", 1)
            for start, (flags, lrs) in grids.items() for lr in lrs}
    chosen = {}
    print(f"## 1. The learning rate of each start, chosen on the validation split (seed {CHOICE_SEED}, "
          f"{args.epochs} epochs)\n")
    print("| start | " + " | ".join(f"lr {lr:g}" for lr in sorted({*SCRATCH_LRS, *INIT_LRS})) + " | chosen |")
    print("|---" * (len({*SCRATCH_LRS, *INIT_LRS}) + 2) + "|")
    for start, (_, lrs) in grids.items():
        val = {lr: jobs[(start, lr)].result()["metrics"]["best_val_acc"] for lr in lrs}
        chosen[start] = best_lr(val)
        cells = [f"{100 * val[lr]:.2f}" if lr in val else "" for lr in sorted({*SCRATCH_LRS, *INIT_LRS})]
        print(f"| {start} | " + " | ".join(cells) + f" | {chosen[start]:g} |")
    print("\nBest validation accuracy (%) of each run. The fine-tuning default is the recipe's lr / 10 = 0.0002.\n")

    # 2. each arm at its chosen lr, 3 seeds; the fine-tuning default beside
    sup = ["--init", src, "--lr", str(chosen["supervised"])]
    arms = {
        f"scratch (lr {chosen['scratch']:g})": base + ARCH + ["--lr", str(chosen["scratch"])],
        "--init supervised, the defaults (lr 0.0002)": base + ["--init", src],
        f"--init supervised (lr {chosen['supervised']:g})": base + sup,
        f"--init contrastive (lr {chosen['contrastive']:g})": base + ["--init", simclr, "--lr",
                                                                       str(chosen["contrastive"])],
        f"--init supervised (lr {chosen['supervised']:g}), layer_decay 0.75": base + sup + ["--optim.layer_decay",
                                                                                            "0.75"],
        f"--init supervised (lr {chosen['supervised']:g}), freeze encoder": base + sup + ["--init.freeze", "encoder"],
        f"--init supervised (lr {chosen['supervised']:g}), freeze all-but-last-2": base + sup + [
            "--init.freeze", "all-but-last-2"],
    }
    jobs = {(arm, s): pool.submit(vitlab, flags + ["--seed", str(s)], out, f"arm{i}-seed{s}", 1)
            for s in args.seeds for i, (arm, flags) in enumerate(arms.items())}
    results = {key: job.result() for key, job in jobs.items()}

    arch = {arm: results[(arm, args.seeds[0])]["config"]["model"] for arm in arms}
    first = arch[next(iter(arms))]
    same = all(a == first for a in arch.values())
    print(f"## 2. On the folder: {args.epochs} epochs, seeds {args.seeds}\n")
    print(f"Every arm's model configuration is the same: {same}.\n")
    print("| arm | test accuracy (%) | best val accuracy (%) | training (s) | each seed's test accuracy |\n"
          "|---|---|---|---|---|")
    for arm in arms:
        rs = [results[(arm, s)] for s in args.seeds]
        test = [100 * r["metrics"]["test_acc"] for r in rs]
        val = [100 * r["metrics"]["best_val_acc"] for r in rs]
        secs = [r["metrics"]["train_time_s"] for r in rs]
        print(f"| {arm} | {mean_std(test)} | {mean_std(val)} | {statistics.mean(secs):.0f} | "
              f"{', '.join(f'{t:.2f}' for t in test)} |")
    print("\nMean ± standard deviation over the seeds. Training time: metrics.json's train_time_s (the epochs' "
          "steps, one thread, beside one other run); a frozen encoder trains no backward pass through it.\n")
    print("What each `--init` run said (seed 0):\n")
    for arm in arms:
        for line in results[(arm, args.seeds[0])]["lines"]:
            print(f"- {arm}: `{line}`")
    print(f"\nWhole benchmark: {time.perf_counter() - t0:.0f} s; load at the end {load_now()}. Run folders: {out}")


if __name__ == "__main__":
    main()
