"""Configuration: frozen dataclasses, one per area, nested in a run config.

The model sizes are data (``SIZES``), not one function per size. The CLI and config
files map onto these classes through ``vitlab.configio``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

POOLS = ("token", "avg", "max")
INITS = ("trunc_normal", "kaiming_fan_out")
ATTN_IMPLS = ("sdpa", "explicit")
NORMS = ("layer", "batch")  # vitlab.layers.norm
STEMS = ("patch", "conv+maxpool", "conv+stride", "conv+avgpool")  # vitlab.layers.stems
AUGMENTS = ("none", "digits", "crop-flip", "randaugment", "trivialaugment")  # vitlab.data.augment


@dataclass(frozen=True)
class ModelConfig:
    """A Vision Transformer (Dosovitskiy et al. 2021), ViT-B/16 at 224×224 by default.

    ``dynamic_img_size`` lets the model take any image size divisible by the patch
    size, resampling the position embedding on the fly; without it a wrong
    resolution is an error.
    """

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    pool: str = "token"  # token | avg | max
    dropout: float = 0.0  # after the position embedding and in the MLP / attention output
    attn_dropout: float = 0.0
    drop_path: float = 0.0  # stochastic depth, the largest rate (reached by the last block)
    norm_eps: float = 1e-6
    init: str = "trunc_normal"  # trunc_normal | kaiming_fan_out
    attn_impl: str = "sdpa"  # sdpa | explicit
    dynamic_img_size: bool = False
    norm: str = "layer"  # layer | batch (BatchNorm over batch × tokens), for norm1, norm2 and the final norm
    stem: str = "patch"  # patch | conv+maxpool | conv+stride | conv+avgpool (conv stems need P a power of two)

    def __post_init__(self) -> None:
        _check_model(self)

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


def _check_model(c: ModelConfig) -> None:
    for name in ("img_size", "patch_size", "in_chans", "dim", "depth", "heads"):
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
    if c.num_classes < 0:
        raise ValueError(f"model.num_classes must be >= 0 (0 means no head), got {c.num_classes}")
    if c.img_size % c.patch_size:
        raise ValueError(
            f"model.img_size={c.img_size} is not divisible by model.patch_size={c.patch_size}: "
            f"expected a multiple such as {c.img_size // c.patch_size * c.patch_size or c.patch_size}"
        )
    if c.dim % c.heads:
        raise ValueError(
            f"model.dim={c.dim} is not divisible by model.heads={c.heads}: each head needs dim/heads features"
        )
    if not c.mlp_ratio > 0:  # written so that NaN fails too
        raise ValueError(f"model.mlp_ratio must be > 0, got {c.mlp_ratio}")
    for name in ("dropout", "attn_dropout", "drop_path"):
        value = getattr(c, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"model.{name} must be in [0, 1), got {value}")
    if c.pool not in POOLS:
        raise ValueError(f"model.pool={c.pool!r} is not one of {POOLS}")
    if c.pool == "token" and not c.class_token:
        raise ValueError("model.pool='token' needs model.class_token=True; use pool='avg' or 'max' without it")
    if c.init not in INITS:
        raise ValueError(f"model.init={c.init!r} is not one of {INITS}")
    if c.attn_impl not in ATTN_IMPLS:
        raise ValueError(f"model.attn_impl={c.attn_impl!r} is not one of {ATTN_IMPLS}")
    if c.norm not in NORMS:
        raise ValueError(f"model.norm={c.norm!r} is not one of {NORMS}")
    if c.stem not in STEMS:
        raise ValueError(f"model.stem={c.stem!r} is not one of {STEMS}")
    if c.stem != "patch" and (c.patch_size < 2 or c.patch_size & (c.patch_size - 1)):
        raise ValueError(f"model.stem={c.stem!r} halves the resolution log2(P) times, so model.patch_size "
                         f"must be a power of two >= 2, got model.patch_size={c.patch_size}")


# ViT paper (Dosovitskiy et al. 2021) Table 1 gives B, L, H; DeiT (Touvron et al. 2021)
# Table 1 adds Ti and S. Parameter counts at 224×224×3 with a 1000-class head are
# checked exactly in tests/test_vit.py.
SIZES: dict[str, dict] = {
    "Ti/16": dict(dim=192, depth=12, heads=3, mlp_ratio=4.0, patch_size=16),  # 5,717,416 params
    "S/16": dict(dim=384, depth=12, heads=6, mlp_ratio=4.0, patch_size=16),  # 22,050,664
    "B/16": dict(dim=768, depth=12, heads=12, mlp_ratio=4.0, patch_size=16),  # 86,567,656
    "L/16": dict(dim=1024, depth=24, heads=16, mlp_ratio=4.0, patch_size=16),  # 304,326,632
    "H/14": dict(dim=1280, depth=32, heads=16, mlp_ratio=4.0, patch_size=14),  # 632,045,800
}


def size_config(name: str, **overrides) -> ModelConfig:
    """ModelConfig for a named size ('S/16', or just 'S'), with any field overridden."""
    key = _size_key(name)
    return ModelConfig(**{**SIZES[key], **overrides})


def _size_key(name: str) -> str:
    wanted = name.strip().upper().removeprefix("VIT-").removeprefix("VIT_")
    for key in SIZES:
        if wanted in (key.upper(), key.split("/")[0].upper()):
            return key
    raise ValueError(f"unknown model size {name!r}; expected one of {list(SIZES)} (or Ti, S, B, L, H)")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how a batch is augmented on the model's device."""

    name: str = "digits"  # digits | mnist:PATH | fashion-mnist[:PATH] | cifar10:PATH | folder:PATH
    val_split: float = 0.2  # sources without a fixed test split (digits, a folder without test/): held-out fraction
    split_seed: int = 0  # that split is stratified and fixed, independent of the training seed
    img_size: int = 0  # folder: resize every image to img_size × img_size; 0 keeps the size (all must agree)
    channels: int = 0  # folder: 1 (L) or 3 (RGB); 0 infers it from the first image (L -> 1, else 3)
    skip_bad: bool = False  # folder: skip unreadable images with a warning instead of failing
    augment: str = "none"  # none | digits | crop-flip | randaugment | trivialaugment (vitlab.data.augment)
    translate: float = 0.125  # digits: fraction of the image size
    rotate: float = 10.0  # digits: degrees
    scale: float = 0.1  # digits: ± fraction
    crop_padding: int = 4  # crop-flip / randaugment / trivialaugment: zero padding (px) before the random crop
    randaugment_n: int = 2  # randaugment: operations per image
    randaugment_m: int = 9  # randaugment: magnitude, in (0, 30) as kornia counts it
    random_erasing: float = 0.0  # probability of erasing a random box (to 0) per image, after the preset; 0 = off
    mixup: float = 0.0  # MixUp Beta(alpha, alpha); 0 = off. With cutmix also > 0, one of the two per batch
    cutmix: float = 0.0  # CutMix Beta(alpha, alpha); 0 = off. Mixing trains on soft targets

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ValueError(f"data.augment={self.augment!r} is not one of {AUGMENTS}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"data.crop_padding must be an integer >= 0, got {self.crop_padding!r}")
        if not (isinstance(self.randaugment_n, int) and self.randaugment_n >= 1):
            raise ValueError(f"data.randaugment_n must be an integer >= 1, got {self.randaugment_n!r}")
        if not 0 < self.randaugment_m < 30:
            raise ValueError(f"data.randaugment_m must be in (0, 30), got {self.randaugment_m}")
        if not 0.0 <= self.random_erasing <= 1.0:  # written so that NaN fails too
            raise ValueError(f"data.random_erasing must be a probability in [0, 1], got {self.random_erasing}")
        for name in ("mixup", "cutmix"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"data.{name} must be >= 0 (a Beta alpha; 0 turns it off), got {getattr(self, name)}")
        if not 0.0 < self.val_split < 1.0:
            raise ValueError(f"data.val_split must be in (0, 1), got {self.val_split}")
        if self.img_size < 0:
            raise ValueError(f"data.img_size must be >= 0 (0 keeps the images' size), got {self.img_size}")
        if self.channels not in (0, 1, 3):
            raise ValueError(f"data.channels must be 0 (infer), 1 (grey) or 3 (RGB), got {self.channels}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, linear warm-up then cosine decay, label smoothing, gradient clipping."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 2.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"optim.epochs must be > 0, got {self.epochs}")
        if self.batch_size <= 0:
            raise ValueError(f"optim.batch_size must be > 0, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # NaN and inf fail too
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"optim.min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if not self.warmup_epochs >= 0:
            raise ValueError(f"optim.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not self.weight_decay >= 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.grad_clip >= 0:
            raise ValueError(f"optim.grad_clip must be >= 0, got {self.grad_clip}")


TASKS = ("classify", "segment")
SEG_UPSAMPLES = ("nearest", "bilinear", "transposed", "unpool")  # vitlab.layers.upsample.METHODS
SEG_COMBINES = ("disjoint", "max")  # vitlab.data.segmentation


@dataclass(frozen=True)
class SegmentConfig:
    """``task='segment'``: the digit-canvas data (vitlab.data.segmentation) and the decoder
    (vitlab.models.segmenter) on top of the ``model`` encoder."""

    upsample: str = "bilinear"  # nearest | bilinear | transposed | unpool: each of the log2(P) 2x steps
    width: int = 64  # decoder channels
    canvas: int = 32  # side of the canvas the digits are placed on (model.img_size must equal it)
    max_digits: int = 3  # 1..max_digits digits a canvas
    scale: int = 2  # each 8x8 digit is enlarged scale x (to 8*scale pixels a side)
    resize: str = "nearest"  # nearest | bilinear: how a digit is enlarged
    combine: str = "disjoint"  # disjoint: digits never overlap; max: they may, the image is the maximum
    threshold: float = 4.0  # a pixel of a digit (0..16 scale) above this is stroke, labelled class + 1
    train_images: int = 2000
    test_images: int = 500
    data_seed: int = 0  # the canvases are a pure function of this (and data.split_seed, data.val_split)

    def __post_init__(self) -> None:
        if self.upsample not in SEG_UPSAMPLES:
            raise ValueError(f"segment.upsample={self.upsample!r} is not one of {SEG_UPSAMPLES}")
        if self.resize not in ("nearest", "bilinear"):
            raise ValueError(f"segment.resize={self.resize!r} is not one of ('nearest', 'bilinear')")
        if self.combine not in SEG_COMBINES:
            raise ValueError(f"segment.combine={self.combine!r} is not one of {SEG_COMBINES}")
        for name in ("width", "canvas", "max_digits", "scale", "train_images", "test_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"segment.{name} must be a positive integer, got {value!r}")
        if 8 * self.scale > self.canvas:
            raise ValueError(f"segment.canvas={self.canvas} is smaller than one digit, 8 * segment.scale = "
                             f"{8 * self.scale} pixels")
        if not 0.0 <= self.threshold < 16.0:
            raise ValueError(f"segment.threshold must be in [0, 16), got {self.threshold}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; written to ``runs/<name>/config.json``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    name: str = ""  # run folder name under out_dir; empty means a time stamp
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 leaves PyTorch's default
    progress: bool = True
    ckpt_every: int = 0  # also checkpoint every N optimiser steps inside an epoch; 0: only at epoch ends
    keep_last: int = 1  # checkpoints kept: 1 keeps checkpoint.safetensors only; K > 1 adds checkpoint-stepNNNNNN files
    task: str = "classify"  # classify | segment (the digit-canvas segmentation set; see segment)
    segment: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.ckpt_every, bool) or not isinstance(self.ckpt_every, int) or self.ckpt_every < 0:
            raise ValueError(f"ckpt_every must be an integer >= 0 (0 turns mid-epoch checkpoints off), "
                             f"got {self.ckpt_every!r}")
        if isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int) or self.keep_last < 1:
            raise ValueError(f"keep_last must be an integer >= 1, got {self.keep_last!r}")
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} is not one of {TASKS}")


def with_changes(cfg, **changes):
    """dataclasses.replace, exported so callers need not import dataclasses."""
    return replace(cfg, **changes)


# -- self-supervised pretraining (vitlab pretrain / probe / tau-report) -------------------------------
FLIPS = ("auto", "on", "off")  # auto: flip colour (3-channel) images, never 1-channel digits


@dataclass(frozen=True)
class PretrainConfig:
    """SimCLR-style contrastive pretraining (Chen et al. 2020): two views -> encoder -> g(·) -> InfoNCE(τ).

    ``queue_size`` > 0 adds a MoCo queue of past embeddings as extra negatives (under torchrun: of the global batch).
    The view augmentations (vitlab.data.views) are configured here too, since only pretraining uses them.
    """

    tau: float = 0.2  # InfoNCE temperature τ > 0 (`--tau`)
    proj_dim: int = 64  # output of the projection head g(·)
    proj_hidden: int = 256  # its hidden width
    proj_batch_norm: bool = True  # BatchNorm1d after the first Linear (SimCLR v1 used it)
    queue_size: int = 0
    knn_k: int = 20  # neighbours in the per-epoch kNN accuracy
    crop_scale: float = 0.6  # random resized crop keeps a fraction in [crop_scale, 1] of the area
    flip: str = "auto"  # auto | on | off
    translate: float = 0.125  # 1-channel images: ± fraction of the size
    jitter: float = 0.4  # 3-channel images: brightness/contrast/saturation strength (hue = jitter / 4)
    grayscale: float = 0.2  # 3-channel images: probability of a grey view

    def __post_init__(self) -> None:
        if not (isinstance(self.tau, (int, float)) and math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"pretrain.tau must be a finite number > 0, got {self.tau!r}")
        for name in ("proj_dim", "proj_hidden", "knn_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"pretrain.{name} must be a positive integer, got {value!r}")
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or self.queue_size < 0:
            raise ValueError(f"pretrain.queue_size must be an integer >= 0, got {self.queue_size!r}")
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(f"pretrain.crop_scale must be in (0, 1], got {self.crop_scale}")
        if self.flip not in FLIPS:
            raise ValueError(f"pretrain.flip={self.flip!r} is not one of {FLIPS}")
        if not 0.0 <= self.translate < 1.0:
            raise ValueError(f"pretrain.translate must be in [0, 1), got {self.translate}")
        if not 0.0 <= self.jitter <= 1.0 or not 0.0 <= self.grayscale <= 1.0:
            raise ValueError(f"pretrain.jitter and pretrain.grayscale must be in [0, 1], got "
                             f"{self.jitter} and {self.grayscale}")


@dataclass(frozen=True)
class PretrainRunConfig:
    """One pretraining run: the encoder (``model``, saved with ``num_classes=0``: no head), data, optimiser and
    the contrastive settings; written to ``runs/<name>/config.json`` and read back by ``vitlab probe``."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(num_classes=0))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(label_smoothing=0.0))
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    name: str = ""
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    progress: bool = True
