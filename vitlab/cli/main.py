"""The parser of every subcommand, and ``main``: expected failures are one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import logging
import sys

from .common import torchrun_rank
from .inspection import cmd_analyse, cmd_models, cmd_predict, cmd_rf
from .interop import add_interop_commands
from .pretrain import add_pretrain_commands
from .train import add_sweep_command, cmd_eval, cmd_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitlab", description="Vision Transformers end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model (default: the digits recipe)",
                       description="Any configuration key can be set as --section.key VALUE, e.g. "
                                   "--model.depth 6 --optim.lr 3e-3 --data.augment none. Short forms: "
                                   "--epochs, --batch-size, --lr, --data, --seed, --name, --device.")
    p.add_argument("--recipe", default="digits", help="starting configuration (default: digits)")
    p.add_argument("--config", help="JSON or TOML file with (part of) a run configuration")
    p.add_argument("--size", help="model size from the table: Ti, S, B, L, H (sets width/depth/heads/mlp/patch)")
    p.add_argument("--resume", metavar="RUN", help="continue the run folder RUN from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--ckpt-every", metavar="N", dest="ckpt_every", type=int,
                   help="also checkpoint every N optimiser steps (config key ckpt_every; 0: epoch ends only)")
    p.add_argument("--keep-last", metavar="K", dest="keep_last", type=int,
                   help="keep the last K checkpoints as checkpoint-stepNNNNNN.safetensors (config key keep_last)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="test accuracy (or, for a segmentation run, mIoU and per-class IoU) of a run "
                                    "and its confusion matrix")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="confusion-matrix PNG (default: RUN/confusion.png)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes for image files")
    p.add_argument("run", help="run folder (or model.safetensors)")
    p.add_argument("images", nargs="+", help="image files (any format PIL reads)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--invert", action="store_true", help="invert grey levels (dark ink on light paper)")
    p.add_argument("--attention", metavar="PNG", help="also draw attention rollout and last-layer heads; "
                                                       "several images write PNG's stem-<i>.png, one per image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="the size table with parameter counts and GFLOPs")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--patch-size", type=int, default=0, help="override every size's patch (0: the table's)")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("rf", help="receptive field, jump and start per layer of a convolution/pooling stack",
                       description="SPEC is a comma-separated stack, e.g. 'conv3s1p1,maxpool2s2,conv3s2p1d2' "
                                   "(k kernel, s stride, p padding, d dilation; defaults s1 p0 d1).")
    p.add_argument("spec", help="the stack, e.g. conv3p1,conv3p1,maxpool2s2 or conv16s16 (a ViT-B/16 patch), "
                                "or a tokeniser stem: patch, conv+maxpool, conv+stride, conv+avgpool")
    p.add_argument("--input-size", "--img-size", dest="input_size", type=int, default=None,
                   help="also print each layer's output size")
    p.add_argument("--patch-size", type=int, default=16, help="a stem's total down-sampling P (default 16)")
    p.set_defaults(func=cmd_rf)

    p = sub.add_parser("analyse", help="attention distance, position-embedding similarity, patch-filter PCA",
                       description="Writes the ViT paper's Figure 7 panels for a run as PNG files.")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="output folder (default: RUN/analysis)")
    p.add_argument("--images", type=int, default=256, help="test images averaged for attention distance")
    p.set_defaults(func=cmd_analyse)
    add_interop_commands(sub)
    add_sweep_command(sub)
    add_pretrain_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    args.argv = sys.argv if argv is None else ["vitlab", *argv]  # the command argv.json records
    level = logging.DEBUG if args.verbose else logging.INFO
    if torchrun_rank() > 0:  # under torchrun only rank 0 reports progress; the others say only what goes wrong
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    from ..train import CheckpointError, TrainingDiverged, TrainingInterrupted, TrainingOutOfMemory

    # Expected failures (bad input, a broken file, a diverged or out-of-memory run) are one line on
    # stderr and exit status 2, never a traceback; docs/errors.md lists each with its test.
    try:
        return args.func(args, rest)
    except (ValueError, FileNotFoundError, FileExistsError, CheckpointError, TrainingDiverged,
            TrainingOutOfMemory) as e:
        print(f"vitlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:  # a checkpoint was saved; the message says how to resume
        print(f"vitlab {args.command}: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"vitlab {args.command}: interrupted", file=sys.stderr)
        return 130
