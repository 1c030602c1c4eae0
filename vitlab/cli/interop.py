"""vitlab export / import: ONNX, HF and timm weights (vitlab/interop)."""
from __future__ import annotations

from pathlib import Path

from .common import CLIError, no_extra


def cmd_export(args, rest: list[str]) -> int:
    from ..interop import export_onnx, export_weights
    from ..train import load_model

    no_extra(rest)
    if not (args.onnx or args.hf or args.timm):
        raise CLIError("nothing to export: give --onnx FILE, --hf DIR and/or --timm FILE")
    model, _ = load_model(args.run)
    if args.onnx:
        print(f"onnx (opset {args.opset}, dynamic batch): {export_onnx(model, args.onnx, opset=args.opset)}")
    if args.hf:
        print(f"hf (ViTForImageClassification.from_pretrained): {export_weights(model, args.hf, fmt='hf')}")
    if args.timm:
        print(f"timm state dict: {export_weights(model, args.timm, fmt='timm')}")
    return 0


def cmd_import(args, rest: list[str]) -> int:
    from dataclasses import replace

    from ..interop import import_weights
    from ..interop.files import preprocessing_meta
    from ..train.artifacts import save_model

    no_extra(rest)
    out = Path(args.out)
    if out.is_dir():  # checked first: nothing is read, let alone written, before
        raise CLIError(f"--out {out} is a folder; expected a model file such as {out / 'model.safetensors'}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    model = import_weights(args.src, fmt=args.fmt, heads=args.heads)
    if args.img_size and args.img_size != model.cfg.img_size:  # load again, resampling pos_embed
        model = import_weights(args.src, fmt=args.fmt, cfg=replace(model.cfg, img_size=args.img_size))
    meta = preprocessing_meta(args.src, model.cfg)
    save_model(args.out, model, meta)
    print(f"{args.out}: ViT {model.cfg.dim}x{model.cfg.depth} ({model.cfg.heads} heads), {model.cfg.img_size}px, "
          f"{model.cfg.num_classes} classes, normalisation mean {meta['mean']} std {meta['std']}")
    return 0


def add_interop_commands(sub) -> None:
    p = sub.add_parser("export", help="write a model as ONNX, an HF folder or a timm state dict")
    p.add_argument("run", help="run folder (or model.safetensors)")
    p.add_argument("--onnx", metavar="FILE", help="ONNX file, input 'images' (B, C, H, W), dynamic batch")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    p.add_argument("--hf", metavar="DIR", help="folder for transformers' ViTForImageClassification.from_pretrained")
    p.add_argument("--timm", metavar="FILE", help="timm VisionTransformer state dict (.safetensors or .pth)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="HF / timm weights -> a vitlab model file (for eval, predict)")
    p.add_argument("src", help="HF save_pretrained folder, or a .safetensors/.bin/.pth state dict")
    p.add_argument("--fmt", default="auto", help="auto | hf | timm | vitlab (default: from the key names)")
    p.add_argument("--out", required=True, help="vitlab model file to write, e.g. model.safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--heads", type=int, help="attention heads when there is no config (default: width / 64)")
    p.add_argument("--img-size", type=int, help="another input size: pos_embed is resampled to its grid")
    p.set_defaults(func=cmd_import)
