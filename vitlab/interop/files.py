"""Weights on disk in other libraries' formats -> a vitlab ViT, and back.

Formats:
    ``vitlab``: a vitlab model file (``model.safetensors`` with the ModelConfig in its header) or a
        plain state dict with vitlab's names.
    ``hf``: HF transformers ``ViTForImageClassification``/``ViTModel``: a ``save_pretrained`` folder
        (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or a state-dict file.
    ``timm``: a timm ``VisionTransformer`` state dict (``.safetensors``, ``.pth``, ``.bin``).

Pickle files are read with ``torch.load(weights_only=True)`` (``load_state_dict_file``): nothing in
them is executed. When the target config's image size differs from the weights', ``pos_embed``
is resampled bicubically (``resample_pos_embed``), as in the ViT paper §3.2.
"""
from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

import torch

from ..config import ModelConfig
from ..configio import from_dict
from ..errors import InteropError
from ..layers import resample_pos_embed
from ..models import ViT
from ..train.checkpoint import CheckpointError, load_model_state, load_state_dict_file, load_tensors
from .hf import config_from_hf, from_hf, to_hf
from .timm import from_timm, to_timm

log = logging.getLogger(__name__)

FORMATS = ("auto", "hf", "timm", "vitlab")
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# ModelConfig fields every format here represents; any other field must keep its default to export
_EXPORTABLE = {"img_size", "patch_size", "in_chans", "num_classes", "dim", "depth", "heads", "mlp_ratio",
               "qkv_bias", "class_token", "pool", "dropout", "attn_dropout", "drop_path", "norm_eps", "init",
               "attn_impl", "dynamic_img_size"}


def detect_format(sd: dict[str, torch.Tensor]) -> str:
    """'vitlab', 'hf' or 'timm', from the key names; ValueError for anything else."""
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


def infer_config(sd: dict[str, torch.Tensor], *, heads: int | None = None, norm_eps: float = 1e-6) -> ModelConfig:
    """The ModelConfig of a vitlab-named state dict, from its tensor shapes.

    The number of heads leaves no trace in the shapes; without ``heads`` it is taken as
    ``dim // 64``, the head width of every size in the ViT paper's Table 1 (Ti to H).
    The grid is assumed square; the final norm's eps is not stored and comes from ``norm_eps``.
    """
    try:
        dim, in_chans, patch, _ = sd["to_patch_embedding.proj.weight"].shape  # (D, C, P, P)
        class_token = "cls_token" in sd
        n = sd["pos_embed"].shape[1] - int(class_token)
        hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as e:
        raise InteropError(f"cannot infer the model configuration: the weights have no {e.args[0]!r}") from e
    side = int(round(n**0.5))
    if side * side != n:
        raise InteropError(f"cannot infer the image size: {n} patch positions are not a square grid; pass a config")
    if heads is None:
        if dim % 64:
            raise InteropError(f"cannot infer the number of heads for width {dim}: pass heads or a config")
        heads = dim // 64
        log.warning("number of heads not stored in the weights; assuming %d (head width 64)", heads)
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    return ModelConfig(
        img_size=side * patch, patch_size=patch, in_chans=in_chans,
        num_classes=sd["head.weight"].shape[0] if "head.weight" in sd else 0, dim=dim, depth=depth,
        heads=heads, mlp_ratio=hidden / dim, qkv_bias="blocks.0.attn.to_qkv.bias" in sd,
        class_token=class_token, pool="token" if class_token else "avg", norm_eps=norm_eps,
    )


def _read(path: Path) -> tuple[dict[str, torch.Tensor], ModelConfig | None, str | None]:
    """(state dict, config found beside or inside the file, format that config implies)."""
    if path.is_dir():
        if (path / "config.json").is_file():
            weights = next((path / n for n in HF_WEIGHT_FILES if (path / n).is_file()), None)
            if weights is None:
                raise CheckpointError(f"{path} has a config.json but none of {list(HF_WEIGHT_FILES)}")
            return load_state_dict_file(weights), _hf_config_file(path / "config.json"), "hf"
        if (path / "model.safetensors").is_file():  # a vitlab run folder
            return _read(path / "model.safetensors")
        raise CheckpointError(f"{path} is a folder with neither config.json (HF) nor model.safetensors (vitlab)")
    if path.suffix == ".safetensors" and path.is_file():
        tensors, meta = load_tensors(path)
        if "model" in meta and not any(k.startswith("model.") for k in tensors):  # a vitlab model file
            return tensors, from_dict(ModelConfig, meta["model"]), "vitlab"
    sd = load_state_dict_file(path)
    beside = path.parent / "config.json"
    if beside.is_file():
        return sd, _hf_config_file(beside), "hf"
    return sd, None, None


def _hf_config_file(path: Path) -> ModelConfig:
    from transformers import ViTConfig

    raw = json.loads(path.read_text())
    if raw.get("model_type", "vit") != "vit":
        raise InteropError(f"{path}: model_type {raw.get('model_type')!r} is not 'vit'")
    return config_from_hf(ViTConfig.from_pretrained(str(path.parent)))


def import_weights(path: str | Path, fmt: str = "auto", cfg: ModelConfig | None = None, *,
                   heads: int | None = None) -> ViT:
    """A vitlab ViT (eval mode) holding the weights at ``path``.

    Args:
        path: a vitlab model file or run folder, an HF ``save_pretrained`` folder, or a state-dict
            file (``.safetensors``, ``.pth``, ``.pt``, ``.bin``, ``.ckpt``) in any of the formats.
        fmt: 'auto' (from the key names), 'hf', 'timm' or 'vitlab'; a named format that the keys
            contradict is an error.
        cfg: the target configuration. Default: the one stored with the weights (vitlab header,
            HF ``config.json`` in the same folder), else inferred from the shapes (``infer_config``).
            An ``img_size`` other than the weights' resamples ``pos_embed`` to the new grid.
        heads: the number of heads when the config is inferred (default ``dim // 64``).

    Raises:
        ValueError: bad ``fmt``, weights that are not a ViT in a known format, or weights that do
            not fit ``cfg`` (a CheckpointError naming every missing, unexpected or mis-shaped key).
    """
    if fmt not in FORMATS:
        raise InteropError(f"unknown weights format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights {path} do not exist")
    sd, found_cfg, _ = _read(path)
    detected = detect_format(sd)
    if fmt != "auto" and fmt != detected:
        raise InteropError(f"{path} holds {detected}-format weights, not {fmt}: pass --fmt {detected} (or auto)")
    sd = _to_vitlab(sd, detected)
    source_cfg = found_cfg or infer_config(sd, heads=heads, norm_eps=1e-12 if detected == "hf" else 1e-6)
    cfg = cfg or source_cfg
    model = ViT(cfg)
    pe = sd.get("pos_embed")
    if pe is not None and pe.shape != model.pos_embed.shape and pe.shape[-1] == cfg.dim:
        g = cfg.grid_size
        log.info("resampling pos_embed %s -> %s", tuple(pe.shape), tuple(model.pos_embed.shape))
        sd["pos_embed"] = resample_pos_embed(pe, (g, g), num_prefix_tokens=model.num_prefix_tokens)
    load_model_state(model, sd, str(path))
    return model.eval()


def _check_exportable(cfg: ModelConfig, fmt: str) -> None:
    for f in fields(ModelConfig):
        if f.name not in _EXPORTABLE and getattr(cfg, f.name) != f.default:
            raise InteropError(f"cannot export to {fmt}: model.{f.name}={getattr(cfg, f.name)!r} has no "
                               f"counterpart there (only the default {f.default!r} does)")


def hf_config(cfg: ModelConfig):
    """The HF ``ViTConfig`` of a vitlab ModelConfig (class-token pooling only: HF has no other)."""
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
    hc.architectures = ["ViTForImageClassification"]
    return hc


def export_weights(model: ViT, path: str | Path, fmt: str) -> Path:
    """Write ``model``'s weights for another library.

    ``fmt='hf'``: ``path`` becomes a folder that ``ViTForImageClassification.from_pretrained(path)``
    loads (``config.json`` + ``model.safetensors``, the installed transformers' key layout).
    ``fmt='timm'``: ``path`` is a ``.safetensors`` (or ``.pth``/``.bin``) state dict for timm's
    ``VisionTransformer`` with the same sizes (``global_pool='token'``, or ``'avg'`` with
    ``fc_norm=False`` for an avg-pooled vitlab model). Weights are written as float32 on the CPU.
    """
    from safetensors.torch import save_file

    path = Path(path)
    sd = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    if fmt == "hf":
        hc = hf_config(model.cfg)
        out = to_hf(sd)
        if set(from_hf(out)) != set(sd):
            raise InteropError(f"cannot export to hf: unmapped weights {sorted(set(sd) - set(from_hf(out)))}")
        path.mkdir(parents=True, exist_ok=True)
        hc.save_pretrained(str(path))
        save_file(out, str(path / "model.safetensors"), metadata={"format": "pt"})
    elif fmt == "timm":
        _check_exportable(model.cfg, "timm")
        if model.cfg.pool == "max":
            raise InteropError("cannot export to timm: timm's VisionTransformer has no max pooling")
        out = to_timm(sd)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            save_file(out, str(path), metadata={"format": "pt"})
        elif path.suffix in (".pth", ".pt", ".bin"):
            torch.save(out, path)
        else:
            raise InteropError(f"timm weights go to a .safetensors, .pth, .pt or .bin file, got {path.name!r}")
    else:
        raise InteropError(f"unknown export format {fmt!r}; expected 'hf' or 'timm'")
    return path


def preprocessing_meta(path: str | Path, cfg: ModelConfig) -> dict:
    """``{"mean", "std", "classes"}`` for a vitlab model file made from the weights at ``path``.

    From the source where it says: a vitlab header, an HF ``preprocessor_config.json``
    (``image_mean``/``image_std``) and ``config.json`` (``id2label``) in the same folder.
    Otherwise mean = std = 0.5 per channel (HF ViT's and timm's AugReg default, inputs in [-1, 1])
    and classes '0'..'K-1'.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    meta = {"mean": [0.5] * cfg.in_chans, "std": [0.5] * cfg.in_chans,
            "classes": [str(i) for i in range(cfg.num_classes)]}
    vitlab_file = folder / "model.safetensors" if path.is_dir() else path
    if vitlab_file.suffix == ".safetensors" and vitlab_file.is_file():
        _, header = load_tensors(vitlab_file)
        meta |= {k: header[k] for k in ("mean", "std", "classes") if k in header}
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        raw = json.loads(pre.read_text())
        if "image_mean" in raw and "image_std" in raw:
            meta |= {"mean": list(raw["image_mean"]), "std": list(raw["image_std"])}
    conf = folder / "config.json"
    if conf.is_file():
        labels = json.loads(conf.read_text()).get("id2label") or {}
        if len(labels) == cfg.num_classes:
            meta["classes"] = [labels[str(i)] for i in range(cfg.num_classes)]
    return meta
