"""vitlab pretrain / probe / tau-report: self-supervised pretraining (vitlab/train/pretrain.py) and what τ does."""
from __future__ import annotations

import json
from pathlib import Path

from .common import CLIError, no_extra, parse_overrides, torchrun_rank

PRETRAIN_ALIASES = {"tau": "pretrain.tau", "seed": "seed", "name": "name", "device": "device",
                    "threads": "threads"}


def cmd_pretrain(args, rest: list[str]) -> int:
    from ..configio import apply_overrides, load_config_file, merge
    from ..recipes import PRETRAIN_RECIPES
    from ..train.pretrain import load_pretrain_config, pretrain

    overrides = {PRETRAIN_ALIASES.get(k, k): v for k, v in parse_overrides(rest).items()}
    if args.quiet:
        overrides["progress"] = "false"
    if args.resume:
        fixed = sorted(set(overrides) - {"optim.epochs", "device", "threads", "progress"})
        if fixed or args.config or args.recipe != "digits":
            raise CLIError(f"--resume continues {args.resume} with its saved configuration; only --epochs, "
                           f"--device, --threads and -q may change, got {fixed or ['--config/--recipe']}")
        cfg = apply_overrides(load_pretrain_config(args.resume), overrides)
    else:
        if args.recipe not in PRETRAIN_RECIPES:
            raise CLIError(f"unknown pretraining recipe {args.recipe!r}; expected one of {sorted(PRETRAIN_RECIPES)}")
        cfg = PRETRAIN_RECIPES[args.recipe]()
        if args.config:
            cfg = merge(cfg, load_config_file(args.config))
        cfg = apply_overrides(cfg, overrides)
    run_dir = pretrain(cfg, resume=args.resume, overwrite=args.overwrite, argv=args.argv)
    if torchrun_rank() > 0:  # rank 0 wrote the run folder and reports it
        return 0
    final = json.loads((run_dir / "metrics.json").read_text())
    print(f"run folder: {run_dir}")
    print(f"InfoNCE {final['loss']:.4f} (τ={final['tau']:g}), kNN test accuracy {final['knn_acc']:.4f} after "
          f"{final['epochs']} epochs, {final['train_time_s']:.1f} s; next: vitlab probe {run_dir}")
    return 0


def cmd_probe(args, rest: list[str]) -> int:
    from ..train.probe import probe

    no_extra(rest)
    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    r = probe(args.run, finetune_all=args.finetune, random=args.random, epochs=args.epochs, lr=args.lr,
              device=args.device, threads=args.threads)
    print(f"{r['mode']} probe: test accuracy {r['test_acc']:.4f} (train {r['train_acc']:.4f}, {r['epochs']} epochs); "
          f"written to {Path(args.run) / 'probe.json'}")
    return 0


def cmd_tau_report(args, rest: list[str]) -> int:
    from ..analysis.tau import tau_report

    no_extra(rest)
    out = Path(args.out) if args.out else Path(args.runs[0]).parent / "tau-report"
    table = tau_report(args.runs, out, images=args.images)
    print(f"{'tau':>6} {'align':>7} {'unif':>7} {'top1%':>7} {'top10':>7} {'knn':>7} {'probe':>7}  run")
    fmt = lambda v: f"{v:7.4f}" if isinstance(v, float) else f"{'-':>7}"  # noqa: E731
    for r in table:
        print(f"{r['tau']:6.3g} {fmt(r['alignment'])} {fmt(r['uniformity'])} {fmt(r['top1pct'])} {fmt(r['top10'])} "
              f"{fmt(r['knn_acc'])} {fmt(r['probe_acc'])}  {r['run']}")
    print(f"figures: {out}")
    return 0


def add_pretrain_commands(sub) -> None:
    p = sub.add_parser("pretrain", help="contrastive (SimCLR/InfoNCE) pretraining of an encoder",
                       description="Starts from a recipe (--recipe); any key is --section.key VALUE "
                                   "(model., data., optim., pretrain.); short forms --tau, --epochs, "
                                   "--batch-size, --lr, --data, --seed, --name, --device, --threads.")
    p.add_argument("--recipe", default="digits", help="starting configuration: digits (default) or fashion-mnist")
    p.add_argument("--config", help="JSON or TOML file with (part of) a pretraining run configuration")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--resume", metavar="RUN", help="continue the pretraining run folder RUN from its last epoch "
                                                   "checkpoint (only --epochs, --device, --threads, -q may change)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("probe", help="linear probe (or --finetune) of a pretraining run's encoder")
    p.add_argument("run", help="pretraining run folder")
    p.add_argument("--finetune", action="store_true", help="train the encoder and a new head together")
    p.add_argument("--random", action="store_true", help="the baseline: a randomly initialised encoder of "
                                                         "the run's architecture instead of its weights")
    p.add_argument("--epochs", type=int, help="default: 300 (linear, full batch) or 20 (finetune)")
    p.add_argument("--lr", type=float, help="default: 1e-2 (linear) or 1e-3 (finetune)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("tau-report", help="hardness, alignment/uniformity and probe accuracy across a τ sweep")
    p.add_argument("runs", nargs="+", help="pretraining run folders (one per τ)")
    p.add_argument("--out", help="output folder (default: tau-report beside the first run)")
    p.add_argument("--images", type=int, default=256, help="test images for the negative-weight profile")
    p.set_defaults(func=cmd_tau_report)
