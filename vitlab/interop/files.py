"""Weights on disk in other libraries' formats -> a vitlab ViT, and back, with what prediction needs.

Formats:
    ``vitlab``: a vitlab model file (``model.safetensors`` with the ModelConfig in its header), a run folder
        (its ``model.safetensors``; its ``config.json`` is a RunConfig, not an HF config) or a plain state dict
        with vitlab's names.
    ``hf``: HF transformers ``ViTForImageClassification``/``ViTModel``: a ``save_pretrained`` folder
        (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, and ``preprocessor_config.json``
        for the image processor) or a state-dict file.
    ``timm``: a timm ``VisionTransformer`` state dict (``.safetensors``, ``.pth``, ``.bin``).

A model is only half of a prediction: the other half is the preprocessing (input size, resampling, mean and
std) and the class names. :func:`export_model` writes them where each library looks (HF: the image
processor's ``preprocessor_config.json`` and ``id2label``; timm: the ``.safetensors`` metadata, or a
``<file>.json`` beside a ``.pth``, with the ``VisionTransformer`` arguments), and :func:`import_model`
reads them back, so that export -> import -> predict gives the same class and probabilities.
:func:`import_source` is the same read without the defaults, and :func:`source_config` the architecture alone,
from headers where the format has them (what `vitlab train --init SRC` needs before the data is loaded).

Pickle files are read with ``torch.load(weights_only=True)`` (``load_state_dict_file``): nothing in
them is executed. When the target config's image size differs from the weights', ``pos_embed``
is resampled bicubically (``resample_pos_embed``), as in the ViT paper §3.2; for timm-layout weights with
the antialiasing timm's ``resample_abs_pos_embed`` uses by default.
"""
from __future__ import annotations

import json
import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import NamedTuple

import torch

from ..config import ModelConfig
from ..configio import from_dict
from ..errors import InteropError
from ..extras import require
from ..layers import resample_pos_embed
from ..models import ViT
from ..train.checkpoint import (CheckpointError, load_meta, load_model_state, load_state_dict_file, load_tensors,
                                model_tensors)
from .hf import config_from_hf, from_hf, to_hf
from .timm import TIMM_NORM_EPS, config_from_timm_args, from_timm, timm_args, to_timm

log = logging.getLogger(__name__)

FORMATS = ("auto", "hf", "timm", "vitlab")
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
EXPORT_META_KEY = "vitlab_export"  # timm: preprocessing + VisionTransformer arguments, in the safetensors metadata
# ModelConfig fields every format here represents; any other field must keep its default to export
_EXPORTABLE = {"img_size", "patch_size", "in_chans", "num_classes", "dim", "depth", "heads", "mlp_ratio",
               "qkv_bias", "class_token", "pool", "dropout", "attn_dropout", "drop_path", "norm_eps", "init",
               "attn_impl", "dynamic_img_size"}
_EXPORTABLE_TIMM = _EXPORTABLE | {"fc_norm"}


def detect_format(sd: dict[str, torch.Tensor]) -> str:
    """'vitlab', 'hf' or 'timm', from the key names; InteropError for anything else."""
    keys = list(sd)
    if any(".attn.to_qkv." in k or k.startswith("to_patch_embedding.") for k in keys):
        return "vitlab"
    if any("embeddings.patch_embeddings.projection." in k for k in keys):
        return "hf"
    if any(k.startswith("patch_embed.proj.") or ".attn.qkv." in k for k in keys):
        return "timm"
    raise InteropError(f"not a ViT state dict in a known format (vitlab, hf, timm): keys start "
                       f"{sorted(keys)[:5]}")


def _to_vitlab(sd: dict[str, torch.Tensor], fmt: str) -> dict[str, torch.Tensor]:
    if fmt == "hf":
        return from_hf(sd)
    if fmt == "timm":
        return from_timm(sd)
    return dict(sd)


def infer_config(sd: dict[str, torch.Tensor], *, heads: int | None = None, norm_eps: float = 1e-6,
                 pool: str | None = None) -> ModelConfig:
    """The ModelConfig of a vitlab-named state dict, from its tensor shapes.

    The number of heads leaves no trace in the shapes; without ``heads`` it is taken as ``dim // 64``, the
    head width of every size in the ViT paper's Table 1 (Ti to H). Nor does the pooling: without ``pool`` it
    is 'avg' when the final norm comes after the pooling (``fc_norm``, timm's average-pooled models) or there
    is no class token, else 'token'. The grid is assumed square; the final norm's eps is not stored and
    comes from ``norm_eps``.
    """
    try:
        dim, in_chans, patch, _ = sd["to_patch_embedding.proj.weight"].shape  # (D, C, P, P)
        class_token = "cls_token" in sd
        n = sd["pos_embed"].shape[1] - int(class_token)
        hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as e:
        raise InteropError(f"cannot infer the model configuration: the weights have no {e.args[0]!r}") from e
    side = int(round(n**0.5))
    if class_token and side * side != n and round((n + 1) ** 0.5) ** 2 == n + 1:
        raise InteropError(f"its position embedding has {n + 1} positions, one per patch and none for the class "
                           f"token (timm's no_embed_class=True), which vitlab's ViT has no counterpart for")
    if side * side != n:
        raise InteropError(f"cannot infer the image size: {n} patch positions are not a square grid; pass a config")
    if heads is None:
        if dim % 64:
            raise InteropError(f"cannot infer the number of heads for width {dim}: pass heads (--heads) or a config")
        heads = dim // 64
        log.warning("number of heads not stored in the weights; assuming %d (head width 64)", heads)
    fc_norm = "fc_norm.weight" in sd
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    return ModelConfig(
        img_size=side * patch, patch_size=patch, in_chans=in_chans,
        num_classes=sd["head.weight"].shape[0] if "head.weight" in sd else 0, dim=dim, depth=depth,
        heads=heads, mlp_ratio=hidden / dim, qkv_bias="blocks.0.attn.to_qkv.bias" in sd,
        class_token=class_token, pool=pool or ("avg" if fc_norm or not class_token else "token"), fc_norm=fc_norm,
        norm_eps=norm_eps,
    )


def weights_file(path: str | Path) -> Path:
    """The file that holds the tensors of the weights at ``path``: an HF folder's model.safetensors (or
    pytorch_model.bin), a vitlab run folder's model.safetensors, or ``path`` itself."""
    path = Path(path)
    if not path.is_dir():
        return path
    if _is_vitlab_run(path) or not (path / "config.json").is_file():
        if (path / "model.safetensors").is_file():
            return path / "model.safetensors"
        if (path / "config.json").is_file():
            raise CheckpointError(f"{path} is a vitlab run folder without a model.safetensors: the run has not "
                                  f"finished (its final model is written at the end)")
        raise CheckpointError(f"{path} is a folder with neither config.json (HF) nor model.safetensors (vitlab)")
    weights = next((path / n for n in HF_WEIGHT_FILES if (path / n).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{path} has a config.json but none of {list(HF_WEIGHT_FILES)}")
    return weights


def _is_vitlab_run(folder: Path) -> bool:
    """A vitlab run folder: its config.json is a RunConfig (sections ``model`` and ``task``), not an HF config."""
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and "task" in raw and isinstance(raw.get("model"), dict)


def _shapes(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file's tensors as meta tensors of their shapes, from its header alone (no tensor data is
    read); any other file is read whole (a pickle has no header to read)."""
    if path.suffix != ".safetensors":
        return load_state_dict_file(path)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"weights file {path} is unreadable (truncated or corrupted?): {e}") from e
    return model_tensors(shapes)  # a vitlab training checkpoint's model, as load_state_dict_file reads it


def _read(path: Path, *, tensors: bool = True) -> tuple[dict[str, torch.Tensor], ModelConfig | None, dict]:
    """(state dict, the config found beside or inside the file, its preprocessing {"mean", "std", "classes"}
    where the file says). ``tensors=False``: only what the config needs (a safetensors file's shapes as meta
    tensors; a vitlab header or an HF config.json only)."""
    load = load_state_dict_file if tensors else _shapes
    if path.is_dir() and (path / "config.json").is_file() and not _is_vitlab_run(path):  # an HF folder
        cfg = _hf_config_file(path / "config.json")
        return load(weights_file(path)), cfg, _hf_preprocessing(path, cfg)
    path = weights_file(path)  # a vitlab run folder: its model.safetensors
    if path.suffix == ".safetensors" and path.is_file():
        meta = load_meta(path)
        if "segment" in meta:
            raise CheckpointError(f"{path} holds a segmentation model (a ViT encoder with a decoder), not a ViT")
        if "model" in meta:  # a vitlab model file
            sd = load_tensors(path)[0] if tensors else _shapes(path)
            if not any(k.startswith("model.") for k in sd):
                return sd, from_dict(ModelConfig, meta["model"]), {k: meta[k] for k in ("mean", "std", "classes",
                                                                                         "resize") if k in meta}
    sd = load(path)
    exported = _timm_export_meta(path)
    if exported is not None:
        cfg = config_from_timm_args(exported["timm_args"], norm_eps=exported.get("norm_eps", TIMM_NORM_EPS))
        return sd, cfg, {k: exported[k] for k in ("mean", "std", "classes", "resize") if k in exported}
    beside = path.parent / "config.json"
    if beside.is_file() and not _is_vitlab_run(path.parent) and detect_format(sd) == "hf":
        cfg = _hf_config_file(beside)
        return sd, cfg, _hf_preprocessing(path.parent, cfg)
    return sd, None, {}


def _hf_config_file(path: Path) -> ModelConfig:
    require("transformers", "hf", "reading an HF folder")
    from transformers import ViTConfig

    raw = json.loads(path.read_text())
    if raw.get("model_type", "vit") != "vit":
        raise InteropError(f"{path}: model_type {raw.get('model_type')!r} is not 'vit'")
    return config_from_hf(ViTConfig.from_pretrained(str(path.parent)))


def _hf_preprocessing(folder: Path, cfg: ModelConfig) -> dict:
    """Mean/std from the image processor's preprocessor_config.json, class names from config.json's id2label
    (unless they are HF's placeholders LABEL_i)."""
    out: dict = {}
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        raw = json.loads(pre.read_text())
        if "image_mean" in raw and "image_std" in raw:
            out |= {"mean": _per_channel(raw["image_mean"], cfg), "std": _per_channel(raw["image_std"], cfg)}
        out["resize"] = "center-crop" if raw.get("do_center_crop") else "squash"
    labels = json.loads((folder / "config.json").read_text()).get("id2label") or {}
    names = [labels.get(str(i), labels.get(i)) for i in range(cfg.num_classes)]
    if cfg.num_classes and all(names) and names != [f"LABEL_{i}" for i in range(cfg.num_classes)]:
        out["classes"] = names
    return out


def _per_channel(values, cfg: ModelConfig) -> list[float]:
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    return values * cfg.in_chans if len(values) == 1 else values


def _timm_export_meta(path: Path) -> dict | None:
    """The preprocessing and VisionTransformer arguments vitlab wrote with timm weights: in the .safetensors
    metadata, or in ``<file>.json`` beside a .pth/.pt/.bin."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(EXPORT_META_KEY)
        return json.loads(raw) if raw else None
    sidecar = path.with_name(path.name + ".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None


def import_weights(path: str | Path, fmt: str = "auto", cfg: ModelConfig | None = None, *,
                   heads: int | None = None, pool: str | None = None, antialias: bool | None = None) -> ViT:
    """A vitlab ViT (eval mode) holding the weights at ``path`` (:func:`import_model` without the preprocessing)."""
    return import_model(path, fmt, cfg, heads=heads, pool=pool, antialias=antialias)[0]


def import_model(path: str | Path, fmt: str = "auto", cfg: ModelConfig | None = None, *, heads: int | None = None,
                 pool: str | None = None, img_size: int | None = None,
                 antialias: bool | None = None) -> tuple[ViT, dict]:
    """A vitlab ViT (eval mode) holding the weights at ``path``, and its preprocessing ``{"mean", "std",
    "classes"}``.

    Args:
        path: a vitlab model file or run folder, an HF ``save_pretrained`` folder, or a state-dict
            file (``.safetensors``, ``.pth``, ``.pt``, ``.bin``, ``.ckpt``) in any of the formats.
        fmt: 'auto' (from the key names), 'hf', 'timm' or 'vitlab'; a named format that the keys
            contradict is an error.
        cfg: the target configuration. Default: the one stored with the weights (vitlab header,
            HF ``config.json``, the timm arguments vitlab wrote), else inferred from the shapes (``infer_config``).
        heads: the number of heads when the config is inferred (default ``dim // 64``).
        pool: the pooling when the config is inferred (default: see ``infer_config``).
        img_size: another input size: ``pos_embed`` is resampled to its grid.
        antialias: resample with antialiasing (default: for timm-layout weights, as timm's
            ``resample_abs_pos_embed`` does; see ``resample_pos_embed``).

    The preprocessing comes from the source where it says (a vitlab header, HF's preprocessor_config.json and
    id2label, the metadata vitlab writes with timm weights); otherwise mean = std = 0.5 per channel (HF ViT's and
    timm's AugReg default, inputs in [-1, 1]) and classes '0'..'K-1', with a warning.

    Raises:
        InteropError: bad ``fmt``, weights that are not a ViT in a known format.
        CheckpointError: weights that do not fit ``cfg``, naming every missing, unexpected or mis-shaped key.
    """
    model, preprocessing, *_ = import_source(path, fmt, cfg, heads=heads, pool=pool, img_size=img_size,
                                             antialias=antialias)
    missing = [k for k in ("mean", "std", "classes") if k not in preprocessing]
    if missing:
        log.warning("%s does not say its %s: using %s", path, " and ".join(missing),
                    "mean = std = 0.5 per channel" if "mean" in missing else "class names 0..K-1")
    c = model.cfg
    meta = {"mean": [0.5] * c.in_chans, "std": [0.5] * c.in_chans, "classes": [str(i) for i in range(c.num_classes)],
            **preprocessing}
    return model, meta


class Imported(NamedTuple):
    """What :func:`import_source` read: the model, and only what the source itself says."""

    model: ViT  # eval mode, at the asked image size
    preprocessing: dict  # mean, std, classes, resize: those the source says, nothing filled in
    source_cfg: ModelConfig  # the configuration stored with the weights, or inferred from their shapes
    fmt: str  # the weights' layout: vitlab | hf | timm
    resampled: bool  # pos_embed was resampled to another grid


def import_source(path: str | Path, fmt: str = "auto", cfg: ModelConfig | None = None, *, heads: int | None = None,
                  pool: str | None = None, img_size: int | None = None, antialias: bool | None = None) -> Imported:
    """:func:`import_model` without the defaults it fills in: for a caller that has its own (a fine-tuning run
    normalises with the data's statistics where the source says none), and wants to know what was read."""
    sd, source_cfg, preprocessing, detected = _source(path, fmt, heads=heads, pool=pool, tensors=True)
    cfg = cfg or source_cfg
    if img_size and img_size != cfg.img_size:
        cfg = replace(cfg, img_size=img_size)
    model = ViT(cfg)
    pe = sd.get("pos_embed")
    resampled = pe is not None and pe.shape != model.pos_embed.shape and pe.shape[-1] == cfg.dim
    if resampled:
        g = cfg.grid_size
        smooth = detected == "timm" if antialias is None else antialias
        log.info("resampling pos_embed %s -> %s%s", tuple(pe.shape), tuple(model.pos_embed.shape),
                 " (antialiased)" if smooth else "")
        sd["pos_embed"] = resample_pos_embed(pe, (g, g), num_prefix_tokens=model.num_prefix_tokens, antialias=smooth)
    load_model_state(model, sd, str(path))
    return Imported(model.eval(), preprocessing, source_cfg, detected, resampled)


def source_config(path: str | Path, fmt: str = "auto", *, heads: int | None = None,
                  pool: str | None = None) -> tuple[ModelConfig, dict, str]:
    """The ModelConfig of the weights at ``path``, the preprocessing the source says and the weights' layout
    (vitlab | hf | timm), reading no tensor data where the format allows: a vitlab header, an HF config.json, the
    shapes in a safetensors header. A pickle file (.pth, .bin, ...) has no header and is read whole."""
    _, source_cfg, preprocessing, detected = _source(path, fmt, heads=heads, pool=pool, tensors=False)
    return source_cfg, preprocessing, detected


def _source(path: str | Path, fmt: str, *, heads: int | None, pool: str | None,
            tensors: bool) -> tuple[dict[str, torch.Tensor], ModelConfig, dict, str]:
    """(vitlab-named state dict, source config, preprocessing as the source says, detected layout)."""
    if fmt not in FORMATS:
        raise InteropError(f"unknown weights format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights {path} do not exist")
    sd, found_cfg, preprocessing = _read(path, tensors=tensors)
    try:
        detected = detect_format(sd)
    except InteropError as e:
        raise InteropError(f"{path}: {e}") from e
    if fmt != "auto" and fmt != detected:
        raise InteropError(f"{path} holds {detected}-format weights, not {fmt}: pass --fmt {detected} (or auto)")
    sd = _to_vitlab(sd, detected)
    source_cfg = found_cfg or infer_config(sd, heads=heads, pool=pool,
                                           norm_eps=1e-12 if detected == "hf" else TIMM_NORM_EPS)
    return sd, source_cfg, preprocessing, detected


def _check_exportable(cfg: ModelConfig, fmt: str) -> None:
    allowed = _EXPORTABLE_TIMM if fmt == "timm" else _EXPORTABLE
    for f in fields(ModelConfig):
        if f.name not in allowed and getattr(cfg, f.name) != f.default:
            raise InteropError(f"cannot export to {fmt}: model.{f.name}={getattr(cfg, f.name)!r} has no "
                               f"counterpart there (only the default {f.default!r} does)")


def hf_config(cfg: ModelConfig, classes: list[str] | None = None):
    """The HF ``ViTConfig`` of a vitlab ModelConfig (class-token pooling only: HF has no other), with
    ``id2label`` / ``label2id`` from ``classes``."""
    require("transformers", "hf", "an HF export")
    from transformers import ViTConfig

    _check_exportable(cfg, "hf")
    if not cfg.class_token or cfg.pool != "token":
        raise InteropError(f"cannot export to hf: ViTForImageClassification pools the class token, this model "
                           f"has class_token={cfg.class_token}, pool={cfg.pool!r}")
    hc = ViTConfig(image_size=cfg.img_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans,
                   hidden_size=cfg.dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads,
                   intermediate_size=int(round(cfg.dim * cfg.mlp_ratio, 6)), qkv_bias=cfg.qkv_bias,
                   layer_norm_eps=cfg.norm_eps, hidden_act="gelu", hidden_dropout_prob=cfg.dropout,
                   attention_probs_dropout_prob=cfg.attn_dropout, num_labels=cfg.num_classes)
    if classes is not None and len(classes) == cfg.num_classes:
        hc.id2label = dict(enumerate(classes))
        hc.label2id = {name: i for i, name in enumerate(classes)}
    hc.architectures = ["ViTForImageClassification"]
    return hc


def hf_image_processor(cfg: ModelConfig, mean: list[float], std: list[float], resize: str = "center-crop"):
    """The HF image processor that prepares an image as vitlab does (checked against HF's own in the tests): fit to
    img_size × img_size by ``resize`` with bicubic resampling, scale to [0, 1], standardise with the run's mean and
    std. center-crop is HF's ``BitImageProcessor`` (shortest edge, then the centre crop), squash its
    ``ViTImageProcessor``; HF has no centred padding, so ``pad`` exports the squash with a warning."""
    require("transformers", "hf", "an HF export")
    import transformers
    from PIL import Image

    common = dict(do_resize=True, resample=Image.Resampling.BICUBIC, do_rescale=True, rescale_factor=1 / 255,
                  do_normalize=True, image_mean=list(mean), image_std=list(std))
    if resize == "center-crop":
        cls = getattr(transformers, "BitImageProcessorPil", None) or transformers.BitImageProcessor
        return cls(size={"shortest_edge": cfg.img_size}, do_center_crop=True,
                   crop_size={"height": cfg.img_size, "width": cfg.img_size}, do_convert_rgb=False, **common)
    if resize == "pad":
        log.warning("HF's image processors have no centred padding: the HF export squashes images to %dx%d, where "
                    "vitlab pads them (data.resize=pad)", cfg.img_size, cfg.img_size)
    cls = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    return cls(size={"height": cfg.img_size, "width": cfg.img_size}, **common)


def export_weights(model: ViT, path: str | Path, fmt: str) -> Path:
    """Write ``model``'s weights for another library (:func:`export_model` without the preprocessing: mean and
    std 0.5, classes 0..K-1)."""
    cfg = model.cfg
    return export_model(model, {"mean": [0.5] * cfg.in_chans, "std": [0.5] * cfg.in_chans,
                                "classes": [str(i) for i in range(cfg.num_classes)]}, path, fmt)


def export_model(model: ViT, meta: dict, path: str | Path, fmt: str) -> Path:
    """Write ``model`` and its preprocessing (``meta``: mean, std, classes) for another library.

    ``fmt='hf'``: ``path`` becomes a folder that ``ViTForImageClassification.from_pretrained(path)`` and
    ``ViTImageProcessor.from_pretrained(path)`` load (``config.json`` with ``id2label``, ``model.safetensors``
    in the installed transformers' key layout, ``preprocessor_config.json``).
    ``fmt='timm'``: ``path`` is a ``.safetensors`` (or ``.pth``/``.bin``) state dict for timm's
    ``VisionTransformer``; the arguments that build it (``global_pool``, ``fc_norm``, ...) and the preprocessing
    go into the safetensors metadata, or into ``<path>.json`` beside a .pth. Weights are written as float32.
    """
    from safetensors.torch import save_file

    path = Path(path)
    cfg = model.cfg
    sd = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    if fmt == "hf":
        hc = hf_config(cfg, meta.get("classes"))
        out = to_hf(sd)
        if set(from_hf(out)) != set(sd):
            raise InteropError(f"cannot export to hf: unmapped weights {sorted(set(sd) - set(from_hf(out)))}")
        path.mkdir(parents=True, exist_ok=True)
        hc.save_pretrained(str(path))
        hf_image_processor(cfg, meta["mean"], meta["std"], meta.get("resize", "center-crop")).save_pretrained(str(path))
        save_file(out, str(path / "model.safetensors"), metadata={"format": "pt"})
    elif fmt == "timm":
        _check_exportable(cfg, "timm")
        if cfg.norm_eps != TIMM_NORM_EPS:
            log.warning("timm's VisionTransformer uses LayerNorm eps=%g; this model's norm_eps=%g is written in the "
                        "metadata (vitlab import restores it) but build the timm model with norm_layer="
                        "partial(nn.LayerNorm, eps=%g) to match", TIMM_NORM_EPS, cfg.norm_eps, cfg.norm_eps)
        out = to_timm(sd)
        exported = {"timm_args": timm_args(cfg), "norm_eps": cfg.norm_eps,
                    **{k: meta[k] for k in ("mean", "std", "classes", "resize") if k in meta}}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            save_file(out, str(path), metadata={"format": "pt", EXPORT_META_KEY: json.dumps(exported)})
        elif path.suffix in (".pth", ".pt", ".bin"):
            torch.save(out, path)
            path.with_name(path.name + ".json").write_text(json.dumps(exported, indent=1) + "\n")
        else:
            raise InteropError(f"timm weights go to a .safetensors, .pth, .pt or .bin file, got {path.name!r}")
    else:
        raise InteropError(f"unknown export format {fmt!r}; expected 'hf' or 'timm'")
    return path
