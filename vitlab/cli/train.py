"""vitlab train / eval / sweep: training runs (classification and segmentation), scoring them, grids of them."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import CLIError, build_run_config, no_extra, parse_overrides, torchrun_rank


def cmd_train(args, rest: list[str]) -> int:
    from ..configio import apply_overrides
    from ..train import RESUMABLE_KEYS, fit, load_run_config
    from ..train.distributed import launched_by_torchrun

    overrides = parse_overrides(rest)
    for key in ("ckpt_every", "keep_last"):
        if getattr(args, key) is not None:
            overrides[key] = str(getattr(args, key))
    if args.quiet:
        overrides["progress"] = "false"
    if args.resume:
        fixed = sorted(set(overrides) - set(RESUMABLE_KEYS))
        if fixed or args.config or args.size or args.recipe != "digits":
            raise CLIError(f"--resume continues {args.resume} with its saved configuration; only "
                           f"{', '.join('--' + k for k in RESUMABLE_KEYS)} may change, got "
                           f"{fixed or [a for a in ('--config', '--size', '--recipe') if getattr(args, a[2:]) not in (None, 'digits')]}")
        cfg = apply_overrides(load_run_config(args.resume), overrides)
    else:
        cfg = build_run_config(args, overrides)
    if cfg.task == "segment":  # vitlab/train/segment.py
        if launched_by_torchrun():
            raise CLIError("task='segment' trains in one process; under torchrun, W copies would write the same "
                           "run folder (classification and pretraining run under torchrun)")
        return train_segment(cfg, args)
    run_dir = fit(cfg, resume=args.resume, overwrite=args.overwrite, argv=args.argv)
    if torchrun_rank() > 0:  # rank 0 wrote the run folder and reports it
        return 0
    final = json.loads((run_dir / "metrics.json").read_text())
    print(f"run folder: {run_dir}")
    print(f"test accuracy {final['test_acc']:.4f} after {final['epochs']} epochs, "
          f"{final['train_time_s']:.1f} s of training, {final['params']:,} parameters")
    return 0


def train_segment(cfg, args) -> int:
    from ..train.segment import fit_segment

    run_dir = fit_segment(cfg, resume=args.resume, overwrite=args.overwrite, argv=args.argv)
    final = json.loads((run_dir / "metrics.json").read_text())
    print(f"run folder: {run_dir}")
    print(f"test mIoU {final['test_miou']:.4f}, pixel accuracy {final['test_pixel_acc']:.4f} after "
          f"{final['epochs']} epochs, {final['train_time_s']:.1f} s of training, {final['params']:,} parameters")
    return 0


def cmd_eval(args, rest: list[str]) -> int:
    import numpy as np

    from ..data import Normalize, load_data
    from ..train import evaluate, load_model, load_run_config
    from ..train.plots import plot_confusion

    no_extra(rest)
    cfg = load_run_config(args.run)
    if cfg.task == "segment":
        return eval_segment(cfg, args)
    model, meta = load_model(args.run)
    _, test = load_data(cfg.data)
    ev = evaluate(model, test, Normalize(meta["mean"], meta["std"]))
    classes = meta.get("classes", test.classes)
    n = len(classes)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (test.labels.numpy(), ev["pred"].numpy()), 1)
    out = Path(args.out) if args.out else Path(args.run) / "confusion.png"
    plot_confusion(cm, classes, out, title=f"{cfg.data.name}: test accuracy {ev['acc']:.4f}")
    print(f"test accuracy {ev['acc']:.4f} ({int(np.trace(cm))}/{len(test)}), loss {ev['loss']:.4f}")
    print("class  recall  support")
    for i, name in enumerate(classes):
        support = cm[i].sum()
        print(f"{name:>5}  {cm[i, i] / support if support else float('nan'):.4f}  {support:>7}")
    print(f"confusion matrix: {out}")
    return 0


def eval_segment(cfg, args) -> int:
    from ..data import Normalize
    from ..data.segmentation import load_segmentation
    from ..train.plots import plot_confusion
    from ..train.segment import evaluate_segmentation, iou_per_class, load_segmenter

    model, meta = load_segmenter(args.run)
    _, test = load_segmentation(cfg.segment, val_split=cfg.data.val_split, split_seed=cfg.data.split_seed)
    ev = evaluate_segmentation(model, test, Normalize(meta["mean"], meta["std"]))
    cm = ev["confusion"]
    classes = meta.get("classes", test.classes)
    out = Path(args.out) if args.out else Path(args.run) / "confusion.png"
    plot_confusion(cm.numpy(), classes, out, title=f"segmentation: test mIoU {ev['miou']:.4f} (per pixel)")
    print(f"test mIoU {ev['miou']:.4f}, pixel accuracy {ev['pixel_acc']:.4f}, loss {ev['loss']:.4f} "
          f"({len(test)} canvases)")
    print("class         IoU     pixels")
    for name, iou, support in zip(classes, iou_per_class(cm).tolist(), cm.sum(1).tolist()):
        print(f"{name:>10}  {iou:.4f}  {support:>9}")
    print(f"confusion matrix: {out}")
    return 0


def cmd_sweep(args, rest: list[str]) -> int:
    from ..sweep import parse_grid, run_sweep

    axes, train_args = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
    bad = [a for a in axes if a.startswith("-")]
    if bad:
        raise CLIError(f"unexpected option(s) {bad} before '--': training arguments go after it, "
                       f"e.g. vitlab sweep model.depth=2,4 --seeds 3 -- --epochs 5")
    grid = parse_grid(axes)
    tp = argparse.ArgumentParser(prog="vitlab sweep ... --", add_help=False)
    tp.add_argument("--recipe", default="digits")
    tp.add_argument("--config")
    tp.add_argument("--size")
    tp.add_argument("-q", "--quiet", action="store_true")
    targs, overrides_tokens = tp.parse_known_args(train_args)
    overrides = parse_overrides(overrides_tokens)
    if targs.quiet:
        overrides["progress"] = "false"
    base = build_run_config(targs, overrides)
    out = Path(args.out) if args.out else Path(base.out_dir) / "sweep"
    run_sweep(base, grid, seeds=args.seeds, out_dir=out, overwrite=args.overwrite)
    print((out / "sweep.md").read_text())
    print(f"sweep folder: {out} (sweep.md, sweep.csv, sweep.png, runs/)")
    return 0


def add_sweep_command(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of configurations x seeds; tabulate mean ± std",
                       usage="vitlab sweep KEY=V1,V2,... [KEY2=...] [--seeds N] [--out DIR] -- [train arguments]",
                       description="Any configuration key can be an axis. Everything after '--' is as for "
                                   "vitlab train (--recipe, --config, --size, --section.key VALUE). Writes "
                                   "sweep.md, sweep.csv and sweep.png into --out.")
    p.add_argument("--seeds", type=int, default=1, help="seeds per grid point: seed, seed + 1, ... (default 1)")
    p.add_argument("--out", help="sweep folder (default: OUT_DIR/sweep)")
    p.add_argument("--overwrite", action="store_true", help="replace existing run folders of the same names")
    p.set_defaults(func=cmd_sweep)
