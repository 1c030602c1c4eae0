"""vitlab probe / tau-report: what a contrastive pretraining run (vitlab train --task pretrain) learnt, and what
τ does."""
from __future__ import annotations

from pathlib import Path

from .common import CLIError, no_extra

FEATURES = ("pooled", "blocks", "tokens")  # vitlab.train.tasks.pretrain.PROBE_FEATURES, without importing torch


def cmd_probe(args, rest: list[str]) -> int:
    from ..train.probe import probe

    no_extra(rest)
    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.pixels and (args.finetune or args.random):
        raise CLIError("--pixels probes the raw pixels, with no encoder: it cannot be combined with --finetune or "
                       "--random")
    if args.features != "pooled" and (args.pixels or args.finetune):
        raise CLIError(f"--features {args.features} chooses what the linear probe reads of the encoder: it cannot be "
                       f"combined with --pixels or --finetune")
    r = probe(args.run, finetune_all=args.finetune, random=args.random, pixels=args.pixels, features=args.features,
              epochs=args.epochs, lr=args.lr, device=args.device, threads=args.threads, overwrite=args.overwrite,
              progress=not args.quiet)
    detail = f"run folder {r['run']}" if "run" in r else f"train {r['train_acc']:.4f}"
    print(f"{r['mode']} probe: val accuracy {r['val_acc']:.4f}, test accuracy {r['test_acc']:.4f} ({detail}, "
          f"{r['epochs']} epochs); written to {Path(args.run) / 'probe.json'}")
    return 0


def cmd_tau_report(args, rest: list[str]) -> int:
    import json

    from ..analysis.tau import tau_report

    no_extra(rest)
    first = Path(args.runs[0])
    out = Path(args.out) if args.out else (first if (first / "runs").is_dir() else first.parent) / "tau-report"
    table = tau_report(args.runs, out, images=args.images, reference=args.reference, features=args.features)
    print(f"{'tau':>6} {'seed':>5} {'align':>7} {'unif':>7} {'top1%':>7} {'top10%':>7} {'knn':>7} {'probe':>7}  run")
    fmt = lambda v: f"{v:7.4f}" if isinstance(v, float) else f"{'-':>7}"  # noqa: E731
    for r in table:
        print(f"{r['tau']:6.3g} {r['seed']:5d} {fmt(r['alignment'])} {fmt(r['uniformity'])} {fmt(r['top1pct'])} "
              f"{fmt(r['top10pct'])} {fmt(r['knn_acc'])} {fmt(r['probe_acc'])}  {r['run']}")
    summary = json.loads((out / "tau_summary.json").read_text())
    ms = lambda r, k: f"{r[k]:.4f} ± {r[k + '_std']:.4f}" if k in r else "-"  # noqa: E731
    fixed = {f["tau"]: f for f in summary["fixed_encoder"]["profiles"]}
    print(f"\nper τ (mean ± std over seeds; probe: linear on the {args.features} features; fixed encoder: the "
          f"τ={summary['fixed_encoder']['tau']:g} run's)")
    print(f"{'tau':>6} {'n':>3} {'probe (val)':>17} {'probe (test)':>17} {'knn':>17} {'alignment':>17} "
          f"{'uniformity':>17} {'top1% own':>17} {'top1% fixed':>11} {'top10% fixed':>12}")
    for r in summary["by_tau"]:
        print(f"{r['tau']:6.3g} {r['n']:3d} {ms(r, 'probe_acc'):>17} {ms(r, 'probe_test_acc'):>17} "
              f"{ms(r, 'knn_acc'):>17} {ms(r, 'alignment'):>17} {ms(r, 'uniformity'):>17} {ms(r, 'top1pct'):>17} "
              f"{fixed[r['tau']]['top1pct']:11.4f} {fixed[r['tau']]['top10pct']:12.4f}")
    for key, what in (("random_probe_acc", f"a random encoder, linear probe on the {args.features} features"),
                      ("pixels_probe_acc", "the raw pixels, linear probe")):
        seen = [r for r in table if r[key] is not None]
        if seen:
            print(f"baseline, {what}: val {seen[0][key]:.4f} (probe.json of {seen[0]['run']})")
    best = summary["best"]
    if best:
        sides = "; ".join(f"vs τ={n['tau']:g}: {100 * n['difference']:+.2f} points" +
                          (f", Welch p = {n['p']:.3f} ({'separable' if n['separable'] else 'within the seed spread'})"
                           if "p" in n else " (one seed: no test)") for n in best["neighbours"])
        print(f"\nbest τ by {best['metric']}: {best['tau']:g} ({100 * best['mean']:.2f} ± {100 * best['std']:.2f}%, "
              f"{best['n']} seed(s)); {sides}")
    print(f"figures: {out}")
    return 0


def add_probe_commands(sub) -> None:
    p = sub.add_parser("probe", help="linear probe (or --finetune) of a pretraining run's encoder")
    p.add_argument("run", help="pretraining run folder")
    p.add_argument("--finetune", action="store_true",
                   help="train the encoder and a new head together: a classification run initialised from RUN's "
                        "model (vitlab train --init), into the run folder RUN-finetune (RUN-random-finetune with "
                        "--random)")
    p.add_argument("--random", action="store_true", help="the baseline: a randomly initialised encoder of "
                                                         "the run's architecture instead of its weights")
    p.add_argument("--pixels", action="store_true", help="the baseline: the same linear probe on the run's raw "
                                                         "pixels, no encoder (entry 'pixels' of probe.json)")
    p.add_argument("--features", choices=FEATURES, default="pooled",
                   help="what the linear probe reads: the pooled features the loss saw (SimCLR's protocol), the "
                        "pooled output of each of the last 4 blocks concatenated (DINO's), or the final patch-token "
                        "map flattened (entries linear_blocks / linear_tokens of probe.json)")
    p.add_argument("--epochs", type=int, help="default: 300 (linear, full batch) or 20 (finetune)")
    p.add_argument("--lr", type=float, help="default: 1e-2 (linear) or 1e-3 (finetune)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="--finetune: replace an existing RUN-finetune folder")
    p.add_argument("-q", "--quiet", action="store_true", help="--finetune: no progress bars")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("tau-report", help="hardness, alignment/uniformity and probe accuracy across a τ sweep")
    p.add_argument("runs", nargs="+", help="pretraining run folders (one or more per τ), or a sweep folder (vitlab "
                                           "sweep pretrain.tau=... --seeds 3 --out DIR)")
    p.add_argument("--out", help="output folder (default: tau-report inside the sweep folder, or beside the first "
                                 "run)")
    p.add_argument("--images", type=int, default=256,
                   help="validation images for the negative-weight profiles")
    p.add_argument("--reference", metavar="RUN", help="the run whose encoder gives the fixed-encoder profile "
                                                      "(default: the median τ's, lowest seed)")
    p.add_argument("--features", choices=FEATURES, default="pooled",
                   help="which linear probe of each run's probe.json the accuracies come from (what `vitlab probe "
                        "--features` read)")
    p.set_defaults(func=cmd_tau_report)
