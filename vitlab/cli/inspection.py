"""vitlab predict / models / rf / analyse: using a trained model and looking inside it (ViT paper Figures 6-7)."""
from __future__ import annotations

from pathlib import Path

from .common import CLIError, no_extra


def cmd_predict(args, rest: list[str]) -> int:
    """Classes (top k) of image files for a classifier; a mask over each image for a segmentation run."""
    import json

    import torch

    from ..data import Normalize
    from ..data.images import describe_fit, image_header, load_image
    from ..train.artifacts import load_any

    no_extra(rest)
    if args.top_k < 1:
        raise CLIError(f"--top-k must be >= 1 (the number of classes to print per image), got {args.top_k}")
    model, meta = load_any(args.run)
    cfg = model.cfg
    normalize = Normalize(meta["mean"], meta["std"])
    resize = meta.get("resize", "center-crop")
    classes = meta.get("classes") or [str(i) for i in range(getattr(model, "num_classes", cfg.num_classes))]
    fitted = [describe_fit(image_header(p)[1], cfg.img_size, resize) for p in args.images]
    images = torch.stack([load_image(p, channels=cfg.in_chans, size=cfg.img_size, invert=args.invert, resize=resize)
                          for p in args.images])  # (B, C, H, W) uint8
    with torch.no_grad():
        probs = model(normalize(images)).softmax(1)  # (B, K) or, segmenting, (B, K, H, W)
    results = []
    if meta.get("task") == "segment" or probs.ndim == 4:
        masks = probs.argmax(1)  # (B, H, W)
        out = Path(args.out or "masks")
        out.mkdir(parents=True, exist_ok=True)
        for path, how, image, mask in zip(args.images, fitted, images, masks):
            share = torch.bincount(mask.flatten(), minlength=len(classes)).float() / mask.numel()
            target = out / f"{Path(path).stem}-mask.png"
            write_mask_overlay(image, mask, classes, target)
            results.append({"image": str(path), "fitted": how, "mask": str(target),
                            "pixels": {classes[i]: round(float(f), 4) for i, f in enumerate(share) if f > 0}})
    else:
        k = min(args.top_k, probs.shape[-1])  # clipped to the number of classes
        top_p, top_i = probs.topk(k, dim=-1)
        results = [{"image": str(path), "fitted": how,
                    "top": [{"class": classes[i], "p": round(p, 6)} for p, i in zip(ps, idx)]}
                   for path, how, ps, idx in zip(args.images, fitted, top_p.tolist(), top_i.tolist())]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            said = (", ".join(f"{c['class']} {c['p']:.4f}" for c in r["top"]) if "top" in r else
                    "mask " + r["mask"] + " (" + ", ".join(f"{c} {f:.1%}" for c, f in r["pixels"].items()) + ")")
            print(f"{r['image']} ({r['fitted']}): {said}")
    if args.attention:
        if "top" not in results[0]:
            raise CLIError("--attention draws a classifier's attention; this is a segmentation model")
        write_attention_figures(model, normalize, images, args.images, args.attention)
    return 0


def write_mask_overlay(image, mask, classes: list[str], path: Path) -> None:
    """The image and its predicted mask side by side, the mask's classes in a legend."""
    from ..analysis.plots import plot_mask

    plot_mask(image, mask, classes, path)


def cmd_models(args, rest: list[str]) -> int:
    from ..config import SIZES, size_config
    from ..flops import forward_flops
    from ..models import ViT, count_params

    no_extra(rest)
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
    from ..analysis import format_table, parse_spec, receptive_field, stem_specs
    from ..layers.stems import STEMS

    no_extra(rest)
    # a stem name (vitlab.layers.stems) stands for its layer stack at --patch-size
    specs = stem_specs(args.spec, args.patch_size) if args.spec in STEMS else parse_spec(args.spec)
    print(format_table(receptive_field(specs, input_size=args.input_size)))
    from ..analysis.receptive_field import LEGEND

    print(LEGEND if args.input_size else LEGEND.replace("; size: the output side", ""))
    return 0


def attention_paths(out: str, n: int) -> list[Path]:
    """One image: ``out`` itself; several: ``<stem>-<i><suffix>`` beside it, i counting from 0."""
    out = Path(out)
    return [out] if n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}") for i in range(n)]


def write_attention_figures(model, normalize, images, names: list[str], out: str) -> None:
    from ..analysis import attention_rollout, collect_attention, last_layer_attention
    from ..analysis.plots import plot_attention

    weights, grid = collect_attention(model, normalize(images))
    prefix = model.num_prefix_tokens
    rollout = attention_rollout(weights, grid, prefix)  # (B, rows, cols)
    heads = last_layer_attention(weights, grid, prefix)  # (B, H, rows, cols)
    for i, path in enumerate(attention_paths(out, len(names))):
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_attention(images[i], rollout[i], heads[i], path, title=Path(names[i]).name)
        print(f"attention: {path}")


def cmd_analyse(args, rest: list[str]) -> int:
    import torch

    from ..analysis import collect_attention, mean_attention_distance, patch_embed_components, pos_embed_similarity
    from ..analysis.plots import plot_attention_distance, plot_patch_embed_components, plot_pos_embed_similarity
    from ..data import Normalize, load_data
    from ..train import load_model, load_run_config

    no_extra(rest)
    if args.images < 1:
        raise CLIError(f"--images must be >= 1, got {args.images}")
    cfg = load_run_config(args.run)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)  # as in training: the run's thread count
    model, meta = load_model(args.run)
    images_set = load_data(cfg.data).val  # analysis reads the validation split; the test split stays for scoring
    normalize = Normalize(meta["mean"], meta["std"])
    out = Path(args.out) if args.out else Path(args.run) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    prefix, patch = model.num_prefix_tokens, model.cfg.patch_size

    # (a) mean attention distance over the first --images test images, in batches of 64
    images = images_set.images[:args.images]
    total, grid = None, None
    for start in range(0, len(images), 64):
        batch = images[start:start + 64]
        weights, grid = collect_attention(model, normalize(batch))
        d = mean_attention_distance(weights, grid, patch, prefix) * len(batch)  # (L, H), batch-weighted
        total = d if total is None else total + d
    distance = total / len(images)
    plot_attention_distance(distance, out / "attention_distance.png",
                            title=f"mean attention distance ({len(images)} validation images)")
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

    print(f"mean attention distance in pixels ({len(images)} validation images, patch {patch}, "
          f"grid {grid[0]}x{grid[1]}):")
    print("layer   mean    min    max")
    for layer, row in enumerate(distance.tolist(), start=1):
        print(f"{layer:>5} {sum(row) / len(row):6.2f} {min(row):6.2f} {max(row):6.2f}")
    print(f"figures: {out}")
    return 0
