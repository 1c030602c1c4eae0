"""The ``vitlab`` command line: it builds configs and calls the library, nothing more.

    vitlab train [--recipe digits] [--config FILE] [--size S] [--model.depth 6 ...] [--resume RUN]
                 [--ckpt-every N] [--keep-last K]
    vitlab eval RUN
    vitlab predict RUN IMAGE... [--top-k 3] [--attention out.png]
    vitlab models [--img-size 224 --num-classes 1000 --in-chans 3]
    vitlab rf SPEC [--input-size N]
    vitlab analyse RUN [--out DIR] [--images 256]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("vitlab")

# Short flags for the most used keys; every other key is reachable as --section.key VALUE.
ALIASES = {"epochs": "optim.epochs", "batch_size": "optim.batch_size", "lr": "optim.lr", "data": "data.name",
           "val_split": "data.val_split"}


class CLIError(ValueError):
    pass


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """``['--model.depth', '6', '--optim.lr=3e-3', '--no-progress']`` -> dotted key/value pairs."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise CLIError(f"unexpected argument {tok!r}: configuration keys are given as --section.key VALUE")
        key, eq, value = tok[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if key.startswith("no_"):
                key, value = key[3:], "false"
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                value = tokens[i + 1]
                i += 1
            else:
                value = "true"
        out[ALIASES.get(key, key)] = value
        i += 1
    return out


def build_run_config(args, overrides: dict[str, str]):
    from .config import SIZES, size_config
    from .configio import apply_overrides, load_config_file, merge
    from .recipes import RECIPES

    if args.recipe not in RECIPES:
        raise CLIError(f"unknown recipe {args.recipe!r}; expected one of {sorted(RECIPES)}")
    cfg = RECIPES[args.recipe]()
    if args.config:
        cfg = merge(cfg, load_config_file(args.config))
    if args.size:
        from dataclasses import asdict

        size = size_config(args.size, **{k: v for k, v in asdict(cfg.model).items()
                                         if k not in next(iter(SIZES.values()))})
        cfg = merge(cfg, {"model": asdict(size)})
    return apply_overrides(cfg, overrides)


# -- subcommands ------------------------------------------------------------------------------------
def cmd_train(args, rest: list[str]) -> int:
    from .configio import apply_overrides
    from .train import RESUMABLE_KEYS, fit, load_run_config

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
    if _torchrun_rank() > 0 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CLIError("vitlab train runs in one process; under torchrun, W copies would write the same run "
                       "folder. Multi-process training is vitlab pretrain's (torchrun ... -m vitlab.cli pretrain)")
    if cfg.task == "segment":  # vitlab/train/segment.py
        return _train_segment(cfg, args)
    run_dir = fit(cfg, resume=args.resume, overwrite=args.overwrite, argv=args.argv)
    final = json.loads((run_dir / "metrics.json").read_text())
    print(f"run folder: {run_dir}")
    print(f"test accuracy {final['test_acc']:.4f} after {final['epochs']} epochs, "
          f"{final['train_time_s']:.1f} s of training, {final['params']:,} parameters")
    return 0


def cmd_eval(args, rest: list[str]) -> int:
    import numpy as np

    from .data import Normalize, load_data
    from .train import evaluate, load_model, load_run_config
    from .train.plots import plot_confusion

    _no_extra(rest)
    cfg = load_run_config(args.run)
    if cfg.task == "segment":
        return _eval_segment(cfg, args)
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


def _eval_segment(cfg, args) -> int:
    from .data import Normalize
    from .data.segmentation import load_segmentation
    from .train.plots import plot_confusion
    from .train.segment import evaluate_segmentation, iou_per_class, load_segmenter

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


def cmd_predict(args, rest: list[str]) -> int:
    import torch

    from .data import Normalize
    from .data.images import load_image
    from .train import load_model

    _no_extra(rest)
    model, meta = load_model(args.run)
    cfg = model.cfg
    normalize = Normalize(meta["mean"], meta["std"])
    classes = meta.get("classes") or [str(i) for i in range(cfg.num_classes)]
    images = torch.stack([load_image(p, channels=cfg.in_chans, size=cfg.img_size, invert=args.invert)
                          for p in args.images])  # (B, C, H, W) uint8
    with torch.no_grad():
        probs = model(normalize(images)).softmax(-1)
    k = min(args.top_k, probs.shape[-1])
    top_p, top_i = probs.topk(k, dim=-1)
    for path, ps, idx in zip(args.images, top_p.tolist(), top_i.tolist()):
        print(f"{path}: " + ", ".join(f"{classes[i]} {p:.4f}" for p, i in zip(ps, idx)))
    if args.attention:
        _write_attention_figures(model, normalize, images, args.images, args.attention)
    return 0


def cmd_models(args, rest: list[str]) -> int:
    from .config import SIZES, size_config
    from .flops import forward_flops
    from .models import ViT, count_params

    _no_extra(rest)
    import torch

    print(f"input {args.in_chans}x{args.img_size}x{args.img_size}, {args.num_classes} classes")
    print(f"{'model':<8} {'patch':>5} {'width':>5} {'depth':>5} {'heads':>5} {'mlp':>5} {'params':>13} "
          f"{'GFLOPs':>9} {'GMACs':>8}")
    for name, row in SIZES.items():
        patch = args.patch_size or row["patch_size"]
        img = args.img_size
        if img % patch:
            print(f"{name:<8} skipped: img size {img} is not divisible by patch {patch}")
            continue
        cfg = size_config(name, img_size=img, num_classes=args.num_classes, in_chans=args.in_chans,
                          patch_size=patch)
        with torch.device("meta"):
            params = count_params(ViT(cfg))
        flops = forward_flops(cfg)
        print(f"ViT-{name.split('/')[0]:<4} {patch:>5} {cfg.dim:>5} {cfg.depth:>5} {cfg.heads:>5} "
              f"{int(round(cfg.dim * cfg.mlp_ratio, 6)):>5} {params:>13,} {flops / 1e9:>9.2f} {flops / 2e9:>8.2f}")
    print("GFLOPs: forward, per image, 2 x multiply-accumulates (PyTorch FlopCounterMode).")
    return 0


def cmd_rf(args, rest: list[str]) -> int:
    from .analysis import format_table, parse_spec, receptive_field

    from .layers.stems import STEMS, stem_specs

    _no_extra(rest)
    # a stem name (vitlab.layers.stems) stands for its layer stack at --patch-size
    specs = stem_specs(args.spec, args.patch_size) if args.spec in STEMS else parse_spec(args.spec)
    print(format_table(receptive_field(specs, input_size=args.input_size)))
    return 0


# -- vitlab analyse and predict --attention: what the model attends to (ViT paper Figures 6-7) -------
def _attention_paths(out: str, n: int) -> list[Path]:
    """One image: ``out`` itself; several: ``<stem>-<i><suffix>`` beside it, i counting from 0."""
    out = Path(out)
    return [out] if n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}") for i in range(n)]


def _write_attention_figures(model, normalize, images, names: list[str], out: str) -> None:
    from .analysis import attention_rollout, collect_attention, last_layer_attention
    from .analysis.plots import plot_attention

    weights, grid = collect_attention(model, normalize(images))
    prefix = model.num_prefix_tokens
    rollout = attention_rollout(weights, grid, prefix)  # (B, rows, cols)
    heads = last_layer_attention(weights, grid, prefix)  # (B, H, rows, cols)
    for i, path in enumerate(_attention_paths(out, len(names))):
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_attention(images[i], rollout[i], heads[i], path, title=Path(names[i]).name)
        print(f"attention: {path}")


def cmd_analyse(args, rest: list[str]) -> int:
    import torch

    from .analysis import collect_attention, mean_attention_distance, patch_embed_components, pos_embed_similarity
    from .analysis.plots import plot_attention_distance, plot_patch_embed_components, plot_pos_embed_similarity
    from .data import Normalize, load_data
    from .train import load_model, load_run_config

    _no_extra(rest)
    if args.images < 1:
        raise CLIError(f"--images must be >= 1, got {args.images}")
    cfg = load_run_config(args.run)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)  # as in training: the run's thread count
    model, meta = load_model(args.run)
    _, test = load_data(cfg.data)
    normalize = Normalize(meta["mean"], meta["std"])
    out = Path(args.out) if args.out else Path(args.run) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    prefix, patch = model.num_prefix_tokens, model.cfg.patch_size

    # (a) mean attention distance over the first --images test images, in batches of 64
    images = test.images[:args.images]
    total, grid = None, None
    for start in range(0, len(images), 64):
        batch = images[start:start + 64]
        weights, grid = collect_attention(model, normalize(batch))
        d = mean_attention_distance(weights, grid, patch, prefix) * len(batch)  # (L, H), batch-weighted
        total = d if total is None else total + d
    distance = total / len(images)
    plot_attention_distance(distance, out / "attention_distance.png",
                            title=f"mean attention distance ({len(images)} test images)")
    # (b) position-embedding similarity, (c) principal components of the patch-embedding filters
    g = model.cfg.grid_size
    plot_pos_embed_similarity(pos_embed_similarity(model.pos_embed, prefix), (g, g), out / "pos_embed_similarity.png")
    proj = getattr(model.to_patch_embedding, "proj", None)
    weight = getattr(proj, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.ndim == 4:
        comps, explained = patch_embed_components(weight)
        plot_patch_embed_components(comps, explained, out / "patch_embed_pca.png")
    else:
        print("patch-embedding filters: no (D, C, P, P) convolution weight, skipped")

    print(f"mean attention distance in pixels ({len(images)} test images, patch {patch}, grid {grid[0]}x{grid[1]}):")
    print("layer   mean    min    max")
    for layer, row in enumerate(distance.tolist(), start=1):
        print(f"{layer:>5} {sum(row) / len(row):6.2f} {min(row):6.2f} {max(row):6.2f}")
    print(f"figures: {out}")
    return 0


def _no_extra(rest: list[str]) -> None:
    if rest:
        raise CLIError(f"unexpected arguments {rest}")


# -- interop: export / import weights (vitlab/interop) -------------------------------------------------
def cmd_export(args, rest: list[str]) -> int:
    from .interop import export_onnx, export_weights
    from .train import load_model

    _no_extra(rest)
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

    from .interop import import_weights
    from .interop.files import preprocessing_meta
    from .train.artifacts import save_model

    _no_extra(rest)
    model = import_weights(args.src, fmt=args.fmt, heads=args.heads)
    if args.img_size and args.img_size != model.cfg.img_size:  # load again, resampling pos_embed
        model = import_weights(args.src, fmt=args.fmt, cfg=replace(model.cfg, img_size=args.img_size))
    meta = preprocessing_meta(args.src, model.cfg)
    save_model(args.out, model, meta)
    print(f"{args.out}: ViT {model.cfg.dim}x{model.cfg.depth} ({model.cfg.heads} heads), {model.cfg.img_size}px, "
          f"{model.cfg.num_classes} classes, normalisation mean {meta['mean']} std {meta['std']}")
    return 0


def _add_interop_commands(sub) -> None:
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
    p.add_argument("--heads", type=int, help="attention heads when there is no config (default: width / 64)")
    p.add_argument("--img-size", type=int, help="another input size: pos_embed is resampled to its grid")
    p.set_defaults(func=cmd_import)


# -- self-supervised pretraining: vitlab pretrain / probe / tau-report (vitlab/train/pretrain.py) ---------
PRETRAIN_ALIASES = {"tau": "pretrain.tau", "seed": "seed", "name": "name", "device": "device",
                    "threads": "threads"}


def cmd_pretrain(args, rest: list[str]) -> int:
    from .configio import apply_overrides, load_config_file, merge
    from .recipes import PRETRAIN_RECIPES
    from .train.pretrain import load_pretrain_config, pretrain

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
    if _torchrun_rank() > 0:  # rank 0 wrote the run folder and reports it
        return 0
    final = json.loads((run_dir / "metrics.json").read_text())
    print(f"run folder: {run_dir}")
    print(f"InfoNCE {final['loss']:.4f} (τ={final['tau']:g}), kNN test accuracy {final['knn_acc']:.4f} after "
          f"{final['epochs']} epochs, {final['train_time_s']:.1f} s; next: vitlab probe {run_dir}")
    return 0


def cmd_probe(args, rest: list[str]) -> int:
    from .train.probe import probe

    _no_extra(rest)
    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    r = probe(args.run, finetune_all=args.finetune, random=args.random, epochs=args.epochs, lr=args.lr,
              device=args.device, threads=args.threads)
    print(f"{r['mode']} probe: test accuracy {r['test_acc']:.4f} (train {r['train_acc']:.4f}, {r['epochs']} epochs); "
          f"written to {Path(args.run) / 'probe.json'}")
    return 0


def cmd_tau_report(args, rest: list[str]) -> int:
    from .analysis.tau import tau_report

    _no_extra(rest)
    out = Path(args.out) if args.out else Path(args.runs[0]).parent / "tau-report"
    table = tau_report(args.runs, out, images=args.images)
    print(f"{'tau':>6} {'align':>7} {'unif':>7} {'top1%':>7} {'top10':>7} {'knn':>7} {'probe':>7}  run")
    fmt = lambda v: f"{v:7.4f}" if isinstance(v, float) else f"{'-':>7}"  # noqa: E731
    for r in table:
        print(f"{r['tau']:6.3g} {fmt(r['alignment'])} {fmt(r['uniformity'])} {fmt(r['top1pct'])} {fmt(r['top10'])} "
              f"{fmt(r['knn_acc'])} {fmt(r['probe_acc'])}  {r['run']}")
    print(f"figures: {out}")
    return 0


def _add_pretrain_commands(sub) -> None:
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


# -- segmentation (vitlab train --task segment) and sweeps (vitlab sweep) --------------------------------
def _train_segment(cfg, args) -> int:
    from .train.segment import fit_segment

    run_dir = fit_segment(cfg, resume=args.resume, overwrite=args.overwrite, argv=args.argv)
    final = json.loads((run_dir / "metrics.json").read_text())
    print(f"run folder: {run_dir}")
    print(f"test mIoU {final['test_miou']:.4f}, pixel accuracy {final['test_pixel_acc']:.4f} after "
          f"{final['epochs']} epochs, {final['train_time_s']:.1f} s of training, {final['params']:,} parameters")
    return 0


def cmd_sweep(args, rest: list[str]) -> int:
    from .sweep import parse_grid, run_sweep

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


def _add_sweep_command(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of configurations x seeds; tabulate mean ± std",
                       usage="vitlab sweep KEY=V1,V2,... [KEY2=...] [--seeds N] [--out DIR] -- [train arguments]",
                       description="Any configuration key can be an axis. Everything after '--' is as for "
                                   "vitlab train (--recipe, --config, --size, --section.key VALUE). Writes "
                                   "sweep.md, sweep.csv and sweep.png into --out.")
    p.add_argument("--seeds", type=int, default=1, help="seeds per grid point: seed, seed + 1, ... (default 1)")
    p.add_argument("--out", help="sweep folder (default: OUT_DIR/sweep)")
    p.add_argument("--overwrite", action="store_true", help="replace existing run folders of the same names")
    p.set_defaults(func=cmd_sweep)


# -- entry point ------------------------------------------------------------------------------------
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
    _add_interop_commands(sub)
    _add_sweep_command(sub)
    _add_pretrain_commands(sub)
    return parser


def _torchrun_rank() -> int:
    """This process's rank under torchrun (its RANK variable); 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    args.argv = sys.argv if argv is None else ["vitlab", *argv]  # the command argv.json records
    level = logging.DEBUG if args.verbose else logging.INFO
    if _torchrun_rank() > 0:  # under torchrun only rank 0 reports progress; the others say only what goes wrong
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    from .train import CheckpointError, TrainingDiverged, TrainingInterrupted, TrainingOutOfMemory

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


if __name__ == "__main__":
    sys.exit(main())
