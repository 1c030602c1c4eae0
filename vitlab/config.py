"""Configuration: frozen dataclasses, one per area, nested in a run config.

The model sizes are data (``SIZES``), not one function per size. The CLI and config
files map onto these classes through ``vitlab.configio``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .errors import ConfigError
from .layers.attention import IMPLS as ATTN_IMPLS
from .layers.init import INIT_SCHEMES as INITS
from .layers.norm import NORMS
from .layers.stems import STEMS
from .layers.upsample import METHODS as SEG_UPSAMPLES

# The building blocks' choice lists live beside the blocks (vitlab.layers) and are imported above; the
# lists below choose what only a configuration names: pooling in ViT.forward_head, the augmentation
# presets of vitlab.data.augment, the tasks of vitlab.train.tasks and the segmentation canvases.
POOLS = ("token", "avg", "max")
AUGMENTS = ("none", "digits", "flip", "crop-flip", "randaugment", "trivialaugment")  # vitlab.data.augment
TASKS = ("classify", "segment", "pretrain")  # vitlab.train.tasks
SEG_COMBINES = ("disjoint", "max")  # vitlab.data.segmentation
SEG_RESIZES = ("nearest", "bilinear")  # how a digit is enlarged onto a canvas
FLIPS = ("auto", "on", "off")  # pretraining views: auto flips colour (3-channel) images, never 1-channel digits
RESIZES = ("center-crop", "squash", "pad")  # vitlab.data.images.fit_image: an image whose size is not the model's
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS)
MAX_SEED = 2**32  # seeds are in [0, 2**32): numpy's limit, and what the data order is derived from
INIT_STATS = ("source", "data")  # init.stats: the normalisation of the weights' source, or of the new data
FREEZE = re.compile(r"none|encoder|all-but-last-([1-9][0-9]*)")  # init.freeze (vitlab.train.finetune)
SHA256 = re.compile(r"[0-9a-f]{64}")
# The ModelConfig fields a ViT's weights fix: initialising from weights (init.source) takes them from the weights,
# and a run whose model says otherwise is refused. pool and norm_eps are taken too, but may be set otherwise.
WEIGHT_KEYS = ("patch_size", "in_chans", "dim", "depth", "heads", "mlp_ratio", "qkv_bias", "class_token", "fc_norm",
               "stem", "stem_depth", "norm")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ModelConfig:
    """A Vision Transformer (Dosovitskiy et al. 2021), ViT-B/16 at 224×224 by default.

    ``dynamic_img_size`` lets the model take any image size divisible by the patch
    size, resampling the position embedding on the fly; without it a wrong
    resolution is an error. ``fc_norm`` moves the final norm after the pooling (MAE,
    BEiT and timm's average-pooled models do this), so ``forward_features`` returns the
    last block's tokens un-normalised.
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
    attn_impl: str = "auto"  # auto (sdpa on GPUs, explicit on CPUs) | sdpa | explicit
    dynamic_img_size: bool = False
    norm: str = "layer"  # layer | batch (BatchNorm over batch × tokens), for norm1, norm2 and the final norm
    fc_norm: bool = False  # the final norm after pooling instead of on every token (timm's global_pool='avg')
    stem: str = "patch"  # patch | conv+maxpool | conv+stride | conv+avgpool (conv stems need P a power of two)
    stem_depth: int = 1  # conv stems: 3x3 convolutions per down-sampling step (vitlab.layers.stems)

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
        if not _positive_int(value):
            raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
    if c.num_classes < 0:
        raise ConfigError(f"model.num_classes must be >= 0 (0 means no head), got {c.num_classes}")
    if c.img_size % c.patch_size:
        raise ConfigError(
            f"model.img_size={c.img_size} is not divisible by model.patch_size={c.patch_size}: "
            f"expected a multiple such as {c.img_size // c.patch_size * c.patch_size or c.patch_size}"
        )
    if c.dim % c.heads:
        raise ConfigError(
            f"model.dim={c.dim} is not divisible by model.heads={c.heads}: each head needs dim/heads features"
        )
    if not (_finite(c.mlp_ratio) and c.mlp_ratio > 0):
        raise ConfigError(f"model.mlp_ratio must be a finite number > 0, got {c.mlp_ratio}")
    if not (_finite(c.norm_eps) and c.norm_eps > 0):  # eps <= 0 or NaN divides by zero in every norm
        raise ConfigError(f"model.norm_eps must be a finite number > 0 (e.g. 1e-6), got {c.norm_eps}")
    for name in ("dropout", "attn_dropout", "drop_path"):
        value = getattr(c, name)
        if not 0.0 <= value < 1.0:  # written so that NaN fails too
            raise ConfigError(f"model.{name} must be in [0, 1), got {value}")
    if c.pool not in POOLS:
        raise ConfigError(f"model.pool={c.pool!r} is not one of {POOLS}")
    if c.pool == "token" and not c.class_token:
        raise ConfigError("model.pool='token' needs model.class_token=True; use pool='avg' or 'max' without it")
    if c.init not in INITS:
        raise ConfigError(f"model.init={c.init!r} is not one of {INITS}")
    if c.attn_impl not in ATTN_IMPLS:
        raise ConfigError(f"model.attn_impl={c.attn_impl!r} is not one of {ATTN_IMPLS}")
    if c.norm not in NORMS:
        raise ConfigError(f"model.norm={c.norm!r} is not one of {NORMS}")
    if c.stem not in STEMS:
        raise ConfigError(f"model.stem={c.stem!r} is not one of {STEMS}")
    if not _positive_int(c.stem_depth) or (c.stem == "patch" and c.stem_depth != 1):
        raise ConfigError(f"model.stem_depth must be a positive integer, and 1 for the patch stem (it has no 3x3 "
                          f"convolutions), got {c.stem_depth!r} with model.stem={c.stem!r}")
    if c.stem != "patch" and (c.patch_size < 2 or c.patch_size & (c.patch_size - 1)):
        raise ConfigError(f"model.stem={c.stem!r} halves the resolution log2(P) times, so model.patch_size "
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
    raise ConfigError(f"unknown model size {name!r}; expected one of {list(SIZES)} (or Ti, S, B, L, H)")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from, how they are split, and how a batch is augmented on the model's device.

    Every source yields three splits. The test split is the source's official one (MNIST's t10k files, a
    folder's ``test/``) or, for a source without one (digits, a plain folder), a fixed stratified
    ``test_split`` fraction of it. The validation split is a stratified ``val_split`` fraction of the rest,
    fixed by ``split_seed`` whatever the training seed: per-epoch metrics, the best checkpoint and every
    recipe choice are made on it, and the test split is evaluated once, at the end.
    """

    name: str = "digits"  # digits | mnist:PATH | fashion-mnist[:PATH] | cifar10:PATH | folder:PATH | store:PATH
    test_split: float = 0.2  # sources without an official test split: the fraction held out for testing
    val_split: float = 0.1  # the fraction of the training data held out for validation
    split_seed: int = 0  # both splits are stratified and fixed by this, independent of the training seed
    # another validation split of the same training images, the test split unchanged: 0 is the one split_seed
    # carves; k > 0 draws the k-th other, so a recipe can be chosen over several validation splits of a small set
    val_fold: int = 0
    img_size: int = 0  # folder: fit every image to img_size × img_size (by ``resize``); 0 keeps the size
    channels: int = 0  # folder: 1 (L) or 3 (RGB); 0 infers it from all images (the majority's; the rest converted)
    resize: str = "center-crop"  # center-crop | squash | pad: how an image of another size or shape is fitted
    max_pixels: int = DEFAULT_MAX_PIXELS  # folder: refuse a file with more pixels than this (decompression bombs)
    skip_bad: bool = False  # folder: skip unreadable images with a warning instead of failing
    check_source: bool = True  # store: refuse a store whose source files changed since it was packed
    classes: str = ""  # comma-separated class names, replacing a source's own (idx and CIFAR files have none)
    augment: str = "none"  # none | digits | flip | crop-flip | randaugment | trivialaugment (vitlab.data.augment)
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
            raise ConfigError(f"data.augment={self.augment!r} is not one of {AUGMENTS}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ConfigError(f"data.crop_padding must be an integer >= 0, got {self.crop_padding!r}")
        if not _positive_int(self.randaugment_n):
            raise ConfigError(f"data.randaugment_n must be an integer >= 1, got {self.randaugment_n!r}")
        if not 0 < self.randaugment_m < 30:
            raise ConfigError(f"data.randaugment_m must be in (0, 30), got {self.randaugment_m}")
        if not 0.0 <= self.random_erasing <= 1.0:  # written so that NaN fails too
            raise ConfigError(f"data.random_erasing must be a probability in [0, 1], got {self.random_erasing}")
        for name in ("mixup", "cutmix"):
            if not (_finite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"data.{name} must be a finite number >= 0 (a Beta alpha; 0 turns it off), "
                                  f"got {getattr(self, name)}")
        for name in ("test_split", "val_split"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"data.{name} must be a fraction in (0, 1), got {getattr(self, name)}")
        if not 0 <= self.split_seed < MAX_SEED:
            raise ConfigError(f"data.split_seed must be in [0, 2**32), got {self.split_seed}")
        if isinstance(self.val_fold, bool) or not isinstance(self.val_fold, int) or not 0 <= self.val_fold < MAX_SEED:
            raise ConfigError(f"data.val_fold must be an integer in [0, 2**32), got {self.val_fold!r}")
        if self.img_size < 0:
            raise ConfigError(f"data.img_size must be >= 0 (0 keeps the images' size), got {self.img_size}")
        if self.channels not in (0, 1, 3):
            raise ConfigError(f"data.channels must be 0 (infer), 1 (grey) or 3 (RGB), got {self.channels}")
        if self.resize not in RESIZES:
            raise ConfigError(f"data.resize={self.resize!r} is not one of {RESIZES}")
        if not _positive_int(self.max_pixels):
            raise ConfigError(f"data.max_pixels must be a positive integer, got {self.max_pixels!r}")
        if not (0.0 <= self.translate < 1.0 and 0.0 <= self.scale < 1.0):
            raise ConfigError(f"data.translate and data.scale must be fractions in [0, 1), got {self.translate} "
                              f"and {self.scale}")
        if not (_finite(self.rotate) and self.rotate >= 0):
            raise ConfigError(f"data.rotate must be a finite number of degrees >= 0, got {self.rotate}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, linear warm-up then cosine decay, label smoothing, gradient clipping, layer-wise lr decay."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 2.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # layer-wise lr decay (ELECTRA, Clark et al. 2020; BEiT, MAE and DeiT III fine-tune ViTs with it): layer l of a
    # depth-L encoder learns at lr * layer_decay ** (L + 1 - l) (embeddings l = 0, block i l = i + 1, final norm and
    # head l = L + 1; vitlab.train.optim); 1 = off
    layer_decay: float = 1.0
    # a training-time budget in seconds (0 = off): ``epochs`` becomes an upper bound, and after the first epoch the
    # run keeps the most whole epochs that fit the budget at that epoch's pace (vitlab.train.schedule.epochs_within),
    # so one recipe takes the same minutes on a slow host and a fast one; evaluation time is not counted
    time_budget_s: float = 0.0
    # > 0: the decay d of an exponential moving average of the weights (timm's and DeiT's model EMA), taken after
    # every step with TensorFlow's warm-up, min(d, (1 + t) / (10 + t)); the average is what the run evaluates, keeps
    # as best, tests and saves (vitlab.train.ema); 0 = off
    ema: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if not _positive_int(getattr(self, name)):
                raise ConfigError(f"optim.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (_finite(self.lr) and self.lr > 0):
            raise ConfigError(f"optim.lr must be a finite number > 0, got {self.lr}")
        if not (_finite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise ConfigError(f"optim.min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        for name in ("warmup_epochs", "weight_decay", "grad_clip", "time_budget_s"):
            value = getattr(self, name)
            if not (_finite(value) and value >= 0):
                raise ConfigError(f"optim.{name} must be a finite number >= 0, got {value}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (_finite(self.ema) and 0 <= self.ema < 1):
            raise ConfigError(f"optim.ema must be in [0, 1) (0 turns the weight average off; 0.99-0.9999 are usual), "
                              f"got {self.ema}")
        if not (_finite(self.layer_decay) and 0 < self.layer_decay <= 1):
            raise ConfigError(f"optim.layer_decay must be in (0, 1] (1 turns layer-wise decay off; fine-tuning "
                              f"typically uses 0.65-0.9), got {self.layer_decay}")


@dataclass(frozen=True)
class SegmentConfig:
    """``task='segment'``: the digit-canvas data (vitlab.data.segmentation) and the decoder
    (vitlab.models.segmenter) on top of the ``model`` encoder. The canvases of each split are drawn from
    that split's own digits (``data.test_split``, ``data.val_split``), so val and test show unseen digits."""

    upsample: str = "bilinear"  # nearest | bilinear | transposed | unpool: each of the log2(P) 2x steps
    width: int = 64  # decoder channels
    canvas: int = 32  # side of the canvas the digits are placed on (model.img_size must equal it)
    max_digits: int = 3  # 1..max_digits digits a canvas
    scale: int = 2  # each 8x8 digit is enlarged scale x (to 8*scale pixels a side)
    resize: str = "nearest"  # nearest | bilinear: how a digit is enlarged
    combine: str = "disjoint"  # disjoint: digits never overlap; max: they may, the image is the maximum
    threshold: float = 4.0  # a pixel of a digit (0..16 scale) above this is stroke, labelled class + 1
    train_images: int = 2000
    val_images: int = 500
    test_images: int = 500
    data_seed: int = 0  # the canvases are a pure function of this (and the data split settings)

    def __post_init__(self) -> None:
        if self.upsample not in SEG_UPSAMPLES:
            raise ConfigError(f"segment.upsample={self.upsample!r} is not one of {SEG_UPSAMPLES}")
        if self.resize not in SEG_RESIZES:
            raise ConfigError(f"segment.resize={self.resize!r} is not one of {SEG_RESIZES}")
        if self.combine not in SEG_COMBINES:
            raise ConfigError(f"segment.combine={self.combine!r} is not one of {SEG_COMBINES}")
        for name in ("width", "canvas", "max_digits", "scale", "train_images", "val_images", "test_images"):
            value = getattr(self, name)
            if not _positive_int(value):
                raise ConfigError(f"segment.{name} must be a positive integer, got {value!r}")
        if 8 * self.scale > self.canvas:
            raise ConfigError(f"segment.canvas={self.canvas} is smaller than one digit, 8 * segment.scale = "
                              f"{8 * self.scale} pixels")
        if not 0.0 <= self.threshold < 16.0:
            raise ConfigError(f"segment.threshold must be in [0, 16), got {self.threshold}")
        if not 0 <= self.data_seed < MAX_SEED:
            raise ConfigError(f"segment.data_seed must be in [0, 2**32), got {self.data_seed}")


@dataclass(frozen=True)
class PretrainConfig:
    """``task='pretrain'``: SimCLR-style contrastive pretraining (Chen et al. 2020): two views -> encoder ->
    g(·) -> InfoNCE(τ). The encoder is ``model`` without a head (``num_classes`` is set to 0).

    ``queue_size`` > 0 adds a MoCo queue of past embeddings as extra negatives (under torchrun: of the global
    batch). ``momentum`` > 0 switches from SimCLR to MoCo's momentum (key) encoder: each view's query
    g(f(x)) is matched with the other view's key from an exponential moving average of f and g (MoCo v2
    with a queue; with ``predictor_hidden`` > 0 an MLP q(·) on the queries, MoCo v3, Chen et al. 2021). A queue
    without a momentum encoder holds embeddings of an encoder that has since moved: on Fashion-MNIST it cost the
    probe 20 points (benchmarks/pretrain_levers.md); MoCo's key encoder is what keeps them consistent. The view
    augmentations (vitlab.data.views) are configured here too, since only pretraining uses them.
    """

    tau: float = 0.2  # InfoNCE temperature τ > 0 (`--tau`)
    proj_dim: int = 64  # output of the projection head g(·)
    proj_hidden: int = 256  # its hidden width
    proj_batch_norm: bool = True  # BatchNorm1d after the first Linear (SimCLR v1 used it)
    queue_size: int = 0
    momentum: float = 0.0  # > 0: the key encoder's EMA momentum m at step 0, rising to 1 on a half cosine; 0: SimCLR
    predictor_hidden: int = 0  # > 0: MoCo v3's predictor q(·), proj_dim -> this -> proj_dim (needs momentum > 0)
    knn_k: int = 20  # neighbours in the per-epoch kNN accuracy
    crop_scale: float = 0.6  # random resized crop keeps a fraction in [crop_scale, 1] of the area
    flip: str = "auto"  # auto | on | off
    translate: float = 0.125  # 1-channel images: ± fraction of the size
    jitter: float = 0.4  # 3-channel images: brightness/contrast/saturation strength (hue = jitter / 4)
    grayscale: float = 0.2  # 3-channel images: probability of a grey view
    grey_jitter: float = 0.0  # 1-channel images: brightness/contrast strength (p = 0.8), colour jitter's grey analogue

    def __post_init__(self) -> None:
        if not (_finite(self.tau) and self.tau > 0):
            raise ConfigError(f"pretrain.tau must be a finite number > 0, got {self.tau!r}")
        for name in ("proj_dim", "proj_hidden", "knn_k"):
            if not _positive_int(getattr(self, name)):
                raise ConfigError(f"pretrain.{name} must be a positive integer, got {getattr(self, name)!r}")
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or self.queue_size < 0:
            raise ConfigError(f"pretrain.queue_size must be an integer >= 0, got {self.queue_size!r}")
        if not (_finite(self.momentum) and 0.0 <= self.momentum < 1.0):
            raise ConfigError(f"pretrain.momentum must be in [0, 1) (0: no momentum encoder), got {self.momentum!r}")
        if isinstance(self.predictor_hidden, bool) or not isinstance(self.predictor_hidden, int) or \
                self.predictor_hidden < 0:
            raise ConfigError(f"pretrain.predictor_hidden must be an integer >= 0, got {self.predictor_hidden!r}")
        if self.predictor_hidden and not self.momentum:
            raise ConfigError(f"pretrain.predictor_hidden={self.predictor_hidden} needs a momentum encoder: set "
                              f"pretrain.momentum (e.g. 0.99, MoCo v3's)")
        if not 0.0 < self.crop_scale <= 1.0:
            raise ConfigError(f"pretrain.crop_scale must be in (0, 1], got {self.crop_scale}")
        if self.flip not in FLIPS:
            raise ConfigError(f"pretrain.flip={self.flip!r} is not one of {FLIPS}")
        if not 0.0 <= self.translate < 1.0:
            raise ConfigError(f"pretrain.translate must be in [0, 1), got {self.translate}")
        for name in ("jitter", "grayscale", "grey_jitter"):
            if not (_finite(getattr(self, name)) and 0.0 <= getattr(self, name) <= 1.0):
                raise ConfigError(f"pretrain.{name} must be in [0, 1], got {getattr(self, name)!r}")


@dataclass(frozen=True)
class InitConfig:
    """Where a run's initial weights come from (``vitlab train --init SRC``), instead of a random initialisation.

    SRC is a vitlab run folder or model file (a classification or pretraining run), an HF ``save_pretrained``
    folder, or a timm-layout state dict (vitlab.interop.files). The encoder is SRC's; the head is SRC's only when
    SRC's classes are the data's, else new; ``pos_embed`` is resampled to the run's grid. ``sha256`` is filled in
    when the run starts (the SHA-256 of SRC's weight file, recorded in config.json); set, it is checked. A resumed
    run continues from its own checkpoint and never reads SRC. See docs/finetune.md.
    """

    source: str = ""  # SRC; empty: random initialisation from the seed
    sha256: str = ""  # of SRC's weight file: recorded when the run starts, and checked whenever SRC is read again
    freeze: str = "none"  # none | encoder (only the head trains) | all-but-last-N (the last N blocks, norm, head)
    stats: str = "source"  # source | data: normalise with SRC's mean and std (if it says them), or the data's

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise ConfigError(f"init.source must be a path as a string, got {self.source!r}")
        if self.sha256 and not SHA256.fullmatch(self.sha256):
            raise ConfigError(f"init.sha256 must be 64 lower-case hex digits (a SHA-256), got {self.sha256!r}")
        if self.sha256 and not self.source:
            raise ConfigError("init.sha256 is the checksum of init.source, but init.source is empty")
        if not FREEZE.fullmatch(self.freeze):
            raise ConfigError(f"init.freeze={self.freeze!r} is not none, encoder or all-but-last-N with N a "
                              f"positive integer (e.g. all-but-last-2)")
        if self.stats not in INIT_STATS:
            raise ConfigError(f"init.stats={self.stats!r} is not one of {INIT_STATS}")

    @property
    def trained_blocks(self) -> int | None:
        """How many of the last blocks train (``all-but-last-N``: N; ``encoder``: 0); None when nothing is frozen."""
        if self.freeze == "none":
            return None
        n = FREEZE.fullmatch(self.freeze).group(1)
        return int(n) if n else 0


# A run name is one plain folder name under out_dir: no path separators, never '.' or '..'.
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,=+@-]{0,199}")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
COMPILE = ("auto", "on", "off")
PRECISION = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, for every task; written to ``runs/<name>/config.json``.

    ``task`` picks what is trained (vitlab.train.tasks): ``classify`` a ViT, ``segment`` a Segmenter on
    the digit canvases (section ``segment``), ``pretrain`` a ViT encoder contrastively (section
    ``pretrain``). One loop (vitlab.train.loop.fit) trains them all. Section ``init`` starts it from
    pretrained weights instead of random ones (fine-tuning).
    """

    task: str = "classify"  # classify | segment | pretrain
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    name: str = ""  # run folder name under out_dir, a plain folder name; empty means a time stamp
    out_dir: str = "runs"
    seed: int = 0  # in [0, 2**32): model initialisation, data order and augmentation
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # torch CPU threads; 0 leaves PyTorch's default
    # torch.compile the training step: auto = on CUDA, and on a CPU for a run of >= 2,000 steps, which repays the
    # 15-60 s of compiling (vitlab.train.loop.compile_step; the gain per step: benchmarks/step_speed.md)
    compile: str = "auto"  # auto | on | off
    # bf16 autocast of the forward passes: auto = on CUDA, and on a CPU for runs of >= 2,000 steps where a bf16 matmul
    # measures >= 1.25x fp32's (a step 1.9x faster on one AVX512-BF16 CPU, 1.3x slower on another, many times slower
    # without bf16 instructions; vitlab.train.loop.autocast_for); bf16 = on any device; fp32 = never
    precision: str = "auto"  # auto | fp32 | bf16
    progress: bool = True
    ckpt_every: int = 0  # also checkpoint every N optimiser steps inside an epoch; 0: only at epoch ends
    keep_last: int = 1  # checkpoints kept: 1 keeps checkpoint.safetensors only; K > 1 adds checkpoint-stepNNNNNN files
    dist_timeout_s: float = 300.0  # torchrun: how long a process waits for the others before it gives up
    tensorboard: bool = True  # also write TensorBoard event files to RUN/tensorboard (needs vitlab[tensorboard])

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task={self.task!r} is not one of {TASKS}")
        if self.name and (not RUN_NAME.fullmatch(self.name) or self.name in (".", "..")):
            raise ConfigError(f"name={self.name!r} is not a plain folder name: use letters, digits and _ . , = + @ -, "
                              f"starting with a letter, digit or _ (the run folder is out_dir/name)")
        if not self.out_dir:
            raise ConfigError("out_dir must name a folder, got ''")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not DEVICE.fullmatch(self.device):
            raise ConfigError(f"device={self.device!r} is not a device: expected auto, cpu, cuda, cuda:N or mps")
        if self.compile not in COMPILE:
            raise ConfigError(f"compile={self.compile!r} is not one of {COMPILE}")
        if self.precision not in PRECISION:
            raise ConfigError(f"precision={self.precision!r} is not one of {PRECISION}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"threads must be an integer >= 0 (0 keeps PyTorch's default), got {self.threads!r}")
        if isinstance(self.ckpt_every, bool) or not isinstance(self.ckpt_every, int) or self.ckpt_every < 0:
            raise ConfigError(f"ckpt_every must be an integer >= 0 (0 turns mid-epoch checkpoints off), "
                              f"got {self.ckpt_every!r}")
        if not _positive_int(self.keep_last):
            raise ConfigError(f"keep_last must be an integer >= 1, got {self.keep_last!r}")
        if not (_finite(self.dist_timeout_s) and self.dist_timeout_s > 0):
            raise ConfigError(f"dist_timeout_s must be a finite number of seconds > 0, got {self.dist_timeout_s}")
        if self.init.freeze != "none" and not self.init.source:
            raise ConfigError(f"init.freeze={self.init.freeze!r} would freeze randomly initialised weights: give the "
                              f"weights to start from with --init SRC (init.source)")
