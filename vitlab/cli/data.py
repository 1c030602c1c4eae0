"""vitlab data pack / info: decode a source once into an on-disk store (vitlab.data.store), and say what one holds."""
from __future__ import annotations

import json
import time

from .common import CLIError, no_extra


def cmd_pack(args, rest: list[str]) -> int:
    from dataclasses import replace

    from ..config import DataConfig
    from ..data.store import pack

    no_extra(rest)
    if args.workers < 0:
        raise CLIError(f"--workers must be >= 0 (0: one per CPU core), got {args.workers}")
    cfg = replace(DataConfig(), name=args.source, img_size=args.img_size, channels=args.channels,
                  resize=args.resize, skip_bad=args.skip_bad, test_split=args.test_split, split_seed=args.split_seed)
    t0 = time.perf_counter()
    manifest = pack(cfg, args.out, workers=args.workers, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"{_summary(args.out, manifest)}; {time.perf_counter() - t0:.1f} s. Train from it with: "
          f"vitlab train --data store:{args.out}")
    return 0


def cmd_info(args, rest: list[str]) -> int:
    from ..data.store import open_store

    no_extra(rest)
    manifest = open_store(args.store, check_source=not args.no_check)
    if args.json:
        print(json.dumps(manifest, indent=1))
        return 0
    print(_summary(args.store, manifest))
    stats = manifest["channel_stats"]
    print(f"  channel mean {[round(m, 4) for m in stats['mean']]}, std {[round(s, 4) for s in stats['std']]} "
          f"(of its {stats['split']} split)")
    print(f"  classes: {', '.join(manifest['classes'])}")
    for line in manifest["unreadable"][:10]:
        print(f"  left out: {line}")
    return 0


def _summary(store, manifest: dict) -> str:
    c, h, w = manifest["shape"]
    splits = ", ".join(f"{s} {info['n'] - info['unreadable']:,}" for s, info in manifest["splits"].items())
    n = sum(info["n"] for info in manifest["splits"].values())
    skipped = sum(info["unreadable"] for info in manifest["splits"].values())
    return (f"store {store}: {manifest['source']['name']} as {c}x{h}x{w} uint8 ({splits}; "
            f"{n * c * h * w / 2**20:,.1f} MiB; {len(manifest['classes'])} classes"
            f"{f'; {skipped} unreadable file(s) left out' if skipped else ''})")


def add_data_commands(sub) -> None:
    from ..config import RESIZES

    data = sub.add_parser("data", help="pack a data set into an on-disk store (decode once, stream from disk)")
    cmds = data.add_subparsers(dest="data_command", required=True)
    p = cmds.add_parser("pack", help="decode SOURCE once into a store folder",
                        description="Decodes every image of SOURCE in worker processes into uint8 files at one size, "
                                    "with the labels, classes and per-channel statistics; training then reads "
                                    "batches from disk (--data store:DIR) and memory stays flat however large the "
                                    "set. An interrupted pack resumes when run again.")
    p.add_argument("source", help="folder:PATH, mnist:PATH, fashion-mnist[:PATH], cifar10:PATH or digits")
    p.add_argument("--out", required=True, metavar="DIR", help="the store folder (new, or an unfinished pack)")
    p.add_argument("--img-size", type=int, default=0, help="folder: fit every image to N x N (0: their own size)")
    p.add_argument("--resize", default="center-crop", choices=RESIZES, help="folder: how an image is fitted")
    p.add_argument("--channels", type=int, default=0, choices=(0, 1, 3), help="folder: 1 or 3 (0: the majority's)")
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable files out (listed in the manifest)")
    p.add_argument("--test-split", type=float, default=0.2, help="digits: the fraction held out for testing")
    p.add_argument("--split-seed", type=int, default=0, help="digits: the seed of that split")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: one per CPU core)")
    p.add_argument("--overwrite", action="store_true", help="replace a store of another source at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pack)
    p = cmds.add_parser("info", help="what a store holds, after checking it is complete and current")
    p.add_argument("store", help="the store folder")
    p.add_argument("--json", action="store_true", help="print the whole manifest")
    p.add_argument("--no-check", action="store_true", help="do not compare it with its source")
    p.set_defaults(func=cmd_info)
