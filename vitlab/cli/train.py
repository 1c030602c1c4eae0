"""vitlab train / pretrain / eval / sweep: runs of every task, scoring them on the test split, grids of them."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import CLIError, build_run_config, no_extra, parse_overrides, torchrun_rank

TASK_HELP = "classify (default) | segment | pretrain"


def add_train_arguments(p: argparse.ArgumentParser, *, task: str | None) -> None:
    """The flags of `vitlab train` (and of `vitlab pretrain`, its short form for ``--task pretrain``)."""
    if task is None:
        p.add_argument("--task", choices=("classify", "segment", "pretrain"), help=f"what to train: {TASK_HELP}")
    p.add_argument("--recipe", help=f"starting configuration of the task (vitlab/recipes): {recipes_help()}")
    p.add_argument("--config", help="JSON or TOML file with (part of) a run configuration")
    p.add_argument("--size", help="model size from the table: Ti, S, B, L, H (sets width/depth/heads/mlp/patch)")
    p.add_argument("--init", metavar="SRC",
                   help="fine-tune: start from these weights instead of random ones (config key init.source): a "
                        "vitlab run folder or model file, an HF save_pretrained folder, or a timm state dict. The "
                        "model takes SRC's architecture; its head is kept only if SRC's classes are the data's; "
                        "pos_embed is resampled to the data's size; unless set, the lr is the recipe's x 0.3 with a "
                        "short warm-up. See also --init.freeze none|encoder|all-but-last-N, --init.stats "
                        "source|data, --optim.layer_decay (docs/finetune.md)")
    p.add_argument("--resume", metavar="RUN", help="continue the run folder RUN from its last checkpoint (from step 0 "
                                                   "if it has none yet)")
    p.add_argument("--from", metavar="FILE", dest="rollback",
                   help="with --resume: continue from this checkpoint instead (e.g. RUN/checkpoint-stepNNNNNN."
                        "safetensors); newer step checkpoints and metrics rows are set aside as abandoned-*")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--ckpt-every", metavar="N", dest="ckpt_every", type=int,
                   help="also checkpoint every N optimiser steps (config key ckpt_every; 0: epoch ends only)")
    p.add_argument("--keep-last", metavar="K", dest="keep_last", type=int,
                   help="keep the last K checkpoints as checkpoint-stepNNNNNN.safetensors (config key keep_last)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train, task=task)


def cmd_train(args, rest: list[str]) -> int:
    from ..configio import apply_overrides
    from ..train import RESUMABLE_KEYS, fit, load_run_config

    overrides = parse_overrides(rest)
    for key in ("ckpt_every", "keep_last"):
        if getattr(args, key) is not None:
            overrides[key] = str(getattr(args, key))
    if args.quiet:
        overrides["progress"] = "false"
    if args.init is not None:
        overrides["init.source"] = args.init
    if args.rollback and not args.resume:
        raise CLIError("--from FILE rolls a run back: give the run as well, --resume RUN --from FILE")
    if args.resume:
        fixed = sorted(set(overrides) - set(RESUMABLE_KEYS))
        given = [f"--{a}" for a in ("config", "size", "recipe") if getattr(args, a)]
        if fixed or given or (args.command == "train" and args.task):
            raise CLIError(f"--resume continues {args.resume} with its saved configuration; only "
                           f"{', '.join('--' + k for k in RESUMABLE_KEYS)} may change, got "
                           f"{fixed + given + (['--task'] if args.command == 'train' and args.task else [])}")
        cfg = apply_overrides(load_run_config(args.resume), overrides)
    else:
        cfg, notes = configure(args, overrides)
        for note in notes if torchrun_rank() == 0 else ():
            print(note)
    run_dir = fit(cfg, resume=args.resume, rollback=args.rollback, overwrite=args.overwrite, argv=args.argv)
    if torchrun_rank() > 0:  # rank 0 wrote the run folder and reports it
        return 0
    final = json.loads((run_dir / "metrics.json").read_text())
    metric = final["metric"].removeprefix("val_")
    print(f"run folder: {run_dir}")
    print(f"{cfg.task}: val {metric} {final[f'val_{metric}']:.4f} (best {final[f'best_val_{metric}']:.4f} at epoch "
          f"{final['best_epoch']}), test {metric} {final[f'test_{metric}']:.4f} after {final['epochs']} epochs, "
          f"{final['train_time_s']:.1f} s of training, {final['params']:,} parameters")
    if cfg.task == "pretrain":
        print(f"next: vitlab probe {run_dir}")
    return 0


def configure(args, overrides: dict[str, str]):
    """The run configuration a command line asks for (``build_run_config``), then, with ``--init SRC``, SRC's
    architecture (``vitlab.recipes.from_source``), the model fitted to the data (``fit_to_data``) and, with
    ``--init``, the fine-tuning schedule (``finetune_schedule``). Returns it and the lines that say what was chosen."""
    from ..recipes import finetune_schedule, fit_to_data, from_source

    cfg, explicit = build_run_config(args, overrides)
    init_note = ""
    if cfg.init.source:
        cfg, explicit, init_note = from_source(cfg, explicit)
    cfg, note = fit_to_data(cfg, explicit)
    if cfg.init.source:
        cfg, schedule = finetune_schedule(cfg, explicit)
        init_note += schedule
    return cfg, [n for n in (note, init_note) if n]


def cmd_eval(args, rest: list[str]) -> int:
    """Score a run's final model on its test split (what the run itself did once, at its end), or a model file
    (one `vitlab import` wrote, say) on the test split of ``--data``."""
    from dataclasses import replace

    from ..config import DataConfig, RunConfig
    from ..train import load_run_config
    from ..train.checkpoint import load_meta

    no_extra(rest)
    run = Path(args.run)
    if run.is_dir() and (run / "config.json").is_file():
        cfg = load_run_config(run)
        if args.data:
            cfg = replace(cfg, data=replace(cfg.data, name=args.data))
    else:
        if not args.data:
            raise CLIError(f"{run} is a model file, not a run folder: say which data to score it on with --data "
                           f"SOURCE (e.g. --data folder:PATH)")
        meta = load_meta(run / "model.safetensors" if run.is_dir() else run)
        cfg = RunConfig(task=meta.get("task", "segment" if "segment" in meta else "classify"),
                        data=DataConfig(name=args.data, resize=meta.get("resize", "center-crop")))
    return {"classify": _eval_classify, "segment": _eval_segment, "pretrain": _eval_pretrain}[cfg.task](cfg, args)


def _eval_classify(cfg, args) -> int:
    import numpy as np

    from ..data import Normalize, load_data
    from ..train import evaluate, load_model
    from ..train.plots import plot_confusion

    model, meta = load_model(args.run)
    if cfg.data.name.startswith("folder:") and not cfg.data.img_size:  # fitted to the model, as in training
        from dataclasses import replace

        cfg = replace(cfg, data=replace(cfg.data, img_size=model.cfg.img_size, channels=model.cfg.in_chans))
    test = load_data(cfg.data).test
    ev = evaluate(model, test, Normalize(meta["mean"], meta["std"]))
    classes = meta.get("classes", test.classes)
    n = len(classes)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (test.labels.numpy(), ev["pred"].numpy()), 1)
    out = Path(args.out) if args.out else (Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
                                           ) / "confusion.png"
    plot_confusion(cm, classes, out, title=f"{cfg.data.name}: test accuracy {ev['acc']:.4f}")
    print(f"test accuracy {ev['acc']:.4f} ({int(np.trace(cm))}/{len(test)}), loss {ev['loss']:.4f}")
    print("class  recall  support")
    for i, name in enumerate(classes):
        support = cm[i].sum()
        print(f"{name:>5}  {cm[i, i] / support if support else float('nan'):.4f}  {support:>7}")
    print(f"confusion matrix: {out}")
    return 0


def _eval_segment(cfg, args) -> int:
    from ..data import Normalize
    from ..data.segmentation import load_segmentation
    from ..train import evaluate_segmentation, load_segmenter
    from ..train.metrics import iou_per_class
    from ..train.plots import plot_confusion

    model, meta = load_segmenter(args.run)
    test = load_segmentation(cfg.segment, cfg.data).test
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


def _eval_pretrain(cfg, args) -> int:
    from ..data import Normalize, load_data
    from ..train import load_model
    from ..train.tasks.pretrain import knn_accuracy

    model, meta = load_model(args.run)
    splits = load_data(cfg.data)
    acc = knn_accuracy(model, splits.train, splits.test, Normalize(meta["mean"], meta["std"]), cfg.pretrain.knn_k)
    print(f"test kNN accuracy {acc:.4f} (k = {cfg.pretrain.knn_k}, cosine, the training split as the memory bank; "
          f"{len(splits.test)} images); for a linear probe: vitlab probe {args.run}")
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
    tp.add_argument("--task", choices=("classify", "segment", "pretrain"))
    tp.add_argument("--recipe")
    tp.add_argument("--config")
    tp.add_argument("--size")
    tp.add_argument("-q", "--quiet", action="store_true")
    targs, overrides_tokens = tp.parse_known_args(train_args)
    overrides = parse_overrides(overrides_tokens)
    if targs.quiet:
        overrides["progress"] = "false"
    base, notes = configure(targs, overrides)  # as for vitlab train: fitted to the data, and to --init's weights
    for note in notes:
        print(note)
    out = Path(args.out) if args.out else Path(base.out_dir) / "sweep"
    run_sweep(base, grid, seeds=args.seeds, out_dir=out, overwrite=args.overwrite)
    print((out / "sweep.md").read_text())
    print(f"sweep folder: {out} (sweep.md, sweep.csv, sweep.png, runs/)")
    return 0


def recipes_help() -> str:
    from ..recipes import DEFAULT_RECIPES, RECIPES

    return "; ".join(f"{task}: " + ", ".join(f"{name}{' (default)' if name == DEFAULT_RECIPES[task] else ''}"
                                            for name in names) for task, names in RECIPES.items())


def add_train_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model: classify, segment or pretrain (default: the digits classifier)",
                       description="One loop for every task. Tasks (--task) and their recipes (--recipe): "
                                   f"{recipes_help()}. Any configuration key can be set as --section.key "
                                   "VALUE, e.g. --model.depth 6 --optim.lr 3e-3 --pretrain.tau 0.1. Short forms: "
                                   "--epochs, --batch-size, --lr, --data, --tau, --seed, --name, --device. With "
                                   "--data SOURCE the model keys not set are fitted to the data (one line says "
                                   "how); a shorter --epochs than the recipe's shrinks its warm-up in proportion. With "
                                   "--init SRC the run fine-tunes SRC's weights (its architecture, a new head "
                                   "where the classes differ, a lower lr). "
                                   "Per-epoch metrics and best.safetensors use the validation split; the test "
                                   "split is scored once, at the end.")
    add_train_arguments(p, task=None)
    p = sub.add_parser("pretrain", help="contrastive (SimCLR/InfoNCE) pretraining: vitlab train --task pretrain",
                       description="The short form of `vitlab train --task pretrain`: the same flags; recipes "
                                   "digits (default) and fashion-mnist; --tau for --pretrain.tau.")
    add_train_arguments(p, task="pretrain")

    p = sub.add_parser("eval", help="score a run's final model on its test split: accuracy and confusion matrix, "
                                    "mIoU and per-class IoU, or kNN accuracy")
    p.add_argument("run", help="run folder, or a model file (then --data says which test split)")
    p.add_argument("--data", metavar="SOURCE", help="score on this source's test split instead of the run's")
    p.add_argument("--out", help="confusion-matrix PNG (default: RUN/confusion.png)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sweep", help="train a grid of configurations x seeds; tabulate mean ± std",
                       usage="vitlab sweep KEY=V1,V2,... [KEY2=...] [--seeds N] [--out DIR] -- [train arguments]",
                       description="Any configuration key of any task can be an axis. Everything after '--' is as "
                                   "for vitlab train (--task, --recipe, --config, --size, --section.key VALUE). "
                                   "Writes sweep.md, sweep.csv and sweep.png into --out.")
    p.add_argument("--seeds", type=int, default=1, help="seeds per grid point: seed, seed + 1, ... (default 1)")
    p.add_argument("--out", help="sweep folder (default: OUT_DIR/sweep)")
    p.add_argument("--overwrite", action="store_true", help="replace existing run folders of the same names")
    p.set_defaults(func=cmd_sweep)
