"""The parser of every subcommand, and ``main``: a VitlabError is one line on stderr and exit status 2; anything
else is a bug and keeps its traceback (``-v`` shows the traceback of a VitlabError too)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from ..errors import ProcessGroupTimeout, VitlabError
from .claims import add_claims_commands
from .common import torchrun_rank
from .data import add_data_commands
from .inspection import cmd_analyse, cmd_models, cmd_predict, cmd_rf
from .interop import add_interop_commands
from .probe import add_probe_commands
from .train import add_train_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitlab", description="Vision Transformers end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    add_train_commands(sub)

    p = sub.add_parser("predict", help="top-k classes for image files, or a mask over each for a segmentation run",
                       description="Each image is fitted to the model's size as in training (data.resize: "
                                   "center-crop unless the run said otherwise); the output says how.")
    p.add_argument("run", help="run folder, or a model file (model.safetensors, or one `vitlab import` wrote)")
    p.add_argument("images", nargs="+", help="image files (any format PIL reads)")
    p.add_argument("--top-k", type=int, default=3, help="classes to print per image (clipped to the class count)")
    p.add_argument("--json", action="store_true", help="print the results as JSON, for scripts")
    p.add_argument("--out", metavar="DIR", help="segmentation: folder for the <image>-mask.png files (default: masks)")
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
    p.add_argument("--images", type=int, default=256, help="validation images averaged for attention distance")
    p.set_defaults(func=cmd_analyse)
    add_data_commands(sub)
    add_interop_commands(sub)
    add_probe_commands(sub)
    add_claims_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    args.argv = sys.argv if argv is None else ["vitlab", *argv]  # the command argv.json records
    level = logging.DEBUG if args.verbose else logging.INFO
    if torchrun_rank() > 0:  # under torchrun only rank 0 reports progress; the others say only what goes wrong
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    # Expected failures (bad input, a broken file, a diverged or out-of-memory run, a full disk) are one line on
    # stderr and exit status 2; docs/errors.md lists each with its test. Anything else keeps its traceback.
    try:
        return args.func(args, rest)
    except VitlabError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"vitlab {args.command}: error: {e}", file=sys.stderr)
        if isinstance(e, ProcessGroupTimeout):
            # The process group is broken: tearing it down (DDP's reducer joining gloo's threads, one of which
            # waits for the GIL) deadlocks in PyTorch now and then, and a hung process would keep torchrun
            # waiting for ever. Leave at once; the kernel releases the run folder's lock.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt as e:  # TrainingInterrupted: a checkpoint was saved and the message says how to resume
        if args.verbose:
            traceback.print_exc()
        print(f"vitlab {args.command}: {e or 'interrupted'}", file=sys.stderr)
        return 130
