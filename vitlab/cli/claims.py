"""vitlab claims: every claim of the study notes, checked here, with a verdict and its evidence."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from .common import CLIError, no_extra


def _numbers(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise CLIError(f"--only {text!r}: expected claim numbers such as 4 or 4,7,12") from None


def cmd_claims(args, rest: list[str]) -> int:
    from ..analysis.claims import CLAIMS, Lab, report, run

    no_extra(rest)
    only = _numbers(args.only) if args.only else None
    unknown = [n for n in only or [] if n not in CLAIMS]
    if unknown:
        raise CLIError(f"--only {args.only}: there is no claim {unknown[0]}; the claims are 1..{len(CLAIMS)}")
    if args.seeds < 2:
        raise CLIError(f"--seeds must be >= 2 (settings are compared over seeds), got {args.seeds}")
    out = Path(args.out)
    report_path = Path(args.report) if args.report else out / "claims.md"
    if report_path.exists() and not args.overwrite:
        raise CLIError(f"{report_path} exists; pass --overwrite to replace it (and the plots beside it)")
    if args.tau_sweep and not (Path(args.tau_sweep) / "sweep.csv").is_file():
        raise CLIError(f"--tau-sweep {args.tau_sweep}: no sweep.csv there; expected a folder `vitlab sweep "
                       f"pretrain.tau=... --out DIR` wrote")
    if args.keep_runs and Path(args.keep_runs).exists() and any(Path(args.keep_runs).iterdir()):
        raise CLIError(f"--keep-runs {args.keep_runs} is not empty; give a new or empty folder")
    engine_log = logging.getLogger("vitlab.train")
    level = engine_log.level
    if not args.verbose:  # the claims report their progress; the engine's per-epoch lines would bury it
        engine_log.setLevel(logging.WARNING)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vitlab-claims-") as scratch:
        runs = Path(args.keep_runs) if args.keep_runs else Path(scratch)  # the engine runs' folders
        lab = Lab(out=out, runs=runs, seed=args.seed, seeds=args.seeds,
                  tau_sweep=Path(args.tau_sweep) if args.tau_sweep else None)
        try:
            results = run(lab, only)
        finally:
            engine_log.setLevel(level)
    total = time.perf_counter() - start
    argv = list(args.argv[1:]) if args.argv else ["claims"]
    if args.header:  # the header is printed above; the command line names it only
        argv = [a for a in argv if a != args.header]
    command = " ".join(["vitlab", *argv])
    header = "\n\n".join(filter(None, [args.header, f"Written by `{command}` in {total:.0f} s; load average (1 min) "
                                                    f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end."]))
    path = report.write(results, lab, report_path, header=header)
    width = max(len(f.verdict) for _, f, _ in results)
    for claim, finding, seconds in results:
        print(f"{claim.number:>2}  {finding.verdict:<{width}}  {seconds:5.1f} s  {finding.why}")
    print(f"report: {path} ({total:.0f} s)", file=sys.stderr)
    return 0


def add_claims_commands(sub) -> None:
    p = sub.add_parser("claims", help="check the notes' claims: a verdict and its evidence for each",
                       description="Runs one seeded experiment or exact check per claim of the study notes and "
                                   "writes a Markdown report with its plots (benchmarks/claims.md is its output).")
    p.add_argument("--only", metavar="N[,N...]", help="check only these claims, e.g. 4 or 4,7,12")
    p.add_argument("--out", default="claims", help="folder for the plots (and the report, unless --report)")
    p.add_argument("--report", metavar="MD", help="the report's path (default OUT/claims.md); plots are linked "
                                                  "relative to it")
    p.add_argument("--seed", type=int, default=0, help="first seed; a setting's seeds are SEED, SEED+1, ...")
    p.add_argument("--seeds", type=int, default=3, help="seeds a setting where settings are compared (default 3)")
    p.add_argument("--tau-sweep", metavar="DIR", help="claim 9: read this `vitlab sweep pretrain.tau=...` folder "
                                                      "instead of pretraining on the digits")
    p.add_argument("--keep-runs", metavar="DIR", help="keep the engine runs' folders here (default: a temporary "
                                                      "folder, removed at the end)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.add_argument("--header", metavar="TEXT", help="a paragraph to open the report with (e.g. the commit and the "
                                                    "machine: benchmarks/claims.sh)")
    p.set_defaults(func=cmd_claims)
