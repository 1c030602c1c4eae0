"""vitlab export / import: ONNX, HF and timm, with the preprocessing and class names carried along (vitlab/interop)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CLIError, no_extra


def cmd_export(args, rest: list[str]) -> int:
    from ..interop import export_model, export_onnx
    from ..train import load_model

    no_extra(rest)
    if not (args.onnx or args.hf or args.timm):
        raise CLIError("nothing to export: give --onnx FILE, --hf DIR and/or --timm FILE")
    for target in (args.onnx, args.hf, args.timm):
        if target and Path(target).exists() and not args.overwrite:
            raise CLIError(f"{target} already exists; pass --overwrite to replace it")
    model, meta = load_model(args.run)
    if args.onnx:
        path = export_onnx(model, args.onnx, opset=args.opset, meta=meta, pixels=args.pixels)
        print(f"onnx (opset {args.opset}, dynamic batch, checked with onnxruntime): {path}; input "
              f"{'pixels in [0, 1]' if args.pixels else 'standardised with the mean/std in its metadata'}")
    if args.hf:
        print(f"hf (ViTForImageClassification + ViTImageProcessor.from_pretrained): "
              f"{export_model(model, meta, args.hf, fmt='hf')}")
    if args.timm:
        path = export_model(model, meta, args.timm, fmt="timm")
        print(f"timm VisionTransformer state dict (its constructor arguments and preprocessing in "
              f"{'the metadata' if path.suffix == '.safetensors' else path.name + '.json'}): {path}")
    return 0


def cmd_import(args, rest: list[str]) -> int:
    from ..interop import import_model
    from ..train.artifacts import save_model

    no_extra(rest)
    out = Path(args.out)
    if out.is_dir():  # checked first: nothing is read, let alone written, before
        raise CLIError(f"--out {out} is a folder; expected a model file such as {out / 'model.safetensors'}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    model, meta = import_model(args.src, fmt=args.fmt, heads=args.heads, pool=args.pool, img_size=args.img_size,
                               antialias=args.antialias)
    save_model(out, model, meta)
    print(f"{out}: ViT {model.cfg.dim}x{model.cfg.depth} ({model.cfg.heads} heads, pool {model.cfg.pool}), "
          f"{model.cfg.img_size}px, {model.cfg.num_classes} classes, normalisation mean {meta['mean']} std "
          f"{meta['std']}; use it with vitlab eval/predict {out}")
    return 0


def add_interop_commands(sub) -> None:
    p = sub.add_parser("export", help="write a model as ONNX, an HF folder or a timm state dict, preprocessing included")
    p.add_argument("run", help="run folder (or model.safetensors)")
    p.add_argument("--onnx", metavar="FILE", help="ONNX file, input 'images' (B, C, H, W), dynamic batch; mean, std "
                                                  "and classes in its metadata")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18); refused if the written "
                                                         "file does not run in onnxruntime")
    p.add_argument("--pixels", action="store_true", help="ONNX: put the normalisation in the graph, so that it "
                                                         "takes images scaled to [0, 1]")
    p.add_argument("--hf", metavar="DIR", help="folder for transformers' ViTForImageClassification.from_pretrained "
                                               "(with preprocessor_config.json and id2label)")
    p.add_argument("--timm", metavar="FILE", help="timm VisionTransformer state dict (.safetensors or .pth)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="HF / timm / vitlab weights -> a vitlab model file, for vitlab eval and predict",
                       description="Writes one vitlab model file (weights + the JSON that rebuilds the model + the "
                                   "preprocessing: mean, std, class names) from an HF save_pretrained folder, a "
                                   "timm or HF state dict, or a vitlab file. Use the output with `vitlab predict "
                                   "OUT image.png` or `vitlab eval`.")
    p.add_argument("src", help="HF save_pretrained folder, or a .safetensors/.bin/.pth state dict")
    p.add_argument("--fmt", default="auto", help="auto | hf | timm | vitlab (default: from the key names)")
    p.add_argument("--out", required=True, help="vitlab model file to write, e.g. model.safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--heads", type=int, help="attention heads when there is no config (default: width / 64)")
    p.add_argument("--pool", choices=("token", "avg", "max"), help="pooling when there is no config (default: avg "
                                                                   "for timm fc_norm models or no class token, "
                                                                   "else token)")
    p.add_argument("--img-size", type=int, help="another input size: pos_embed is resampled to its grid")
    p.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=None,
                   help="antialiased resampling of pos_embed (default: on for timm weights, as timm does)")
    p.set_defaults(func=cmd_import)
