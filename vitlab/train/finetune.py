"""Starting a run from pretrained weights (``init.source``, ``vitlab train --init SRC``): what comes from them, what
is new, and what trains.

Most ViTs in use are fine-tuned, not trained from scratch (ViT paper §3.2; timm's ``--pretrained``, HF's
``from_pretrained``). When a run starts from step 0 with ``init.source`` set, :func:`initialise` loads SRC (any
layout ``vitlab.interop.files`` reads) into the task's ViT encoder, after the task's model was built from the
seed, so what SRC does not hold keeps that seeded initialisation:

* the encoder (embeddings, blocks, final norm) is SRC's; its ``pos_embed`` is resampled bicubically to the run's
  grid when the image size differs (ViT paper §3.2; antialiased for timm-layout weights, as timm does);
* the head is SRC's only when SRC's classes are the data's: the same count, and the same names where SRC says
  its names. Otherwise (another data set, a pretraining run's encoder, a segmentation or pretraining run) the head
  is the new, seeded one, as are a Segmenter's decoder and a projection head;
* the architecture must be SRC's (``WEIGHT_KEYS``: ``vitlab train --init`` takes it from SRC); anything else is
  one line naming both values;
* the SHA-256 of SRC's weight file is recorded in ``init.sha256`` (config.json); whenever SRC is read again (a run
  without a checkpoint started again from step 0) a different file is refused.

A run that continues from a checkpoint never reads SRC: its weights and normalisation are in the checkpoint.
:func:`freeze` applies ``init.freeze`` (every time the model is built, resumed or not, so the optimiser's groups
match the checkpoint's).
"""
from __future__ import annotations

import hashlib
import logging
import types
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..config import WEIGHT_KEYS, InitConfig, ModelConfig, RunConfig
from ..errors import CheckpointError, ConfigError, MissingFileError
from .checkpoint import load_model_state
from .optim import layer_id

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (what ``sha256sum`` prints), read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def initialise(module: nn.Module, encoder: nn.Module, cfg: RunConfig,
               classes: list[str]) -> tuple[RunConfig, tuple[list[float], list[float]] | None]:
    """Load ``cfg.init.source`` into ``encoder`` (the ViT inside ``module``), in place (module docstring).

    Args:
        module: what the task trains (for the log line: which of its parts are new).
        encoder: the ViT inside it, built from the seed.
        cfg: the run; ``cfg.init.sha256``, when set, must be the SHA-256 of SRC's weight file.
        classes: the data's class names, compared with SRC's to decide whether SRC's head is kept.

    Returns:
        ``cfg`` with ``init.sha256`` recorded, and SRC's (mean, std) when ``init.stats='source'`` and SRC says
        them (else None: the data's statistics are used).

    Raises:
        MissingFileError: SRC does not exist. CheckpointError: SRC changed since ``init.sha256`` was recorded,
        or cannot be read. ConfigError: the run's model is not SRC's architecture.
    """
    from ..interop.files import import_source, weights_file  # here: interop/files.py imports train.checkpoint

    src = Path(cfg.init.source)
    if not src.exists():
        raise MissingFileError(f"init.source {src} does not exist: a run starting from step 0 reads its initial "
                               f"weights from it")
    file = weights_file(src)
    digest = file_sha256(file)
    if cfg.init.sha256 and digest != cfg.init.sha256:
        raise CheckpointError(f"refusing init.source {file}: its SHA-256 is {digest}, not the {cfg.init.sha256} "
                              f"recorded for this run (the file changed since); restore that file, or start a new "
                              f"run from this one")
    m = encoder.cfg
    with torch.random.fork_rng(devices=[]):  # building SRC's ViT must not draw from the run's random stream
        got = import_source(src, heads=m.heads, pool=m.pool, img_size=m.img_size)
    check_architecture(got.source_cfg, m, src)
    keep_head = keeps_head(got.preprocessing.get("classes"), got.source_cfg.num_classes, classes, m.num_classes)
    loaded = {k: v for k, v in got.model.state_dict().items() if keep_head or not k.startswith("head.")}
    own = encoder.state_dict()
    load_model_state(encoder, {**{k: v for k, v in own.items() if k.startswith("head.")}, **loaded}, str(file))
    stats = None
    if cfg.init.stats == "source" and "mean" in got.preprocessing and "std" in got.preprocessing:
        stats = (list(got.preprocessing["mean"]), list(got.preprocessing["std"]))
    log.info("init.source %s (%s weights, sha256 %s): %s", src, got.fmt, digest[:12],
             _summary(module, encoder, got, keep_head, len(loaded), classes, stats, cfg.init.stats))
    return replace(cfg, init=replace(cfg.init, sha256=digest)), stats


def check_architecture(source: ModelConfig, model: ModelConfig, src: Path) -> None:
    """The run's encoder must be SRC's architecture (``WEIGHT_KEYS``); one line naming both values if not."""
    for key in WEIGHT_KEYS:
        theirs, ours = getattr(source, key), getattr(model, key)
        if theirs == ours:
            continue
        if key == "in_chans":
            raise ConfigError(f"init.source {src} was trained on {theirs}-channel images but model.in_chans={ours}: "
                              f"fine-tuning needs {theirs}-channel data (a folder's images are converted with "
                              f"--data.channels {theirs})")
        raise ConfigError(f"init.source {src} has model.{key}={theirs!r} but this run's model.{key}={ours!r}: its "
                          f"weights fit only its own architecture (vitlab train --init takes it from SRC)")
    for key in ("pool", "norm_eps"):
        if getattr(source, key) != getattr(model, key):
            log.info("init.source %s has model.%s=%r; this run uses %r", src, key, getattr(source, key),
                     getattr(model, key))


def keeps_head(source_classes: list[str] | None, source_num: int, classes: list[str], num_classes: int) -> bool:
    """SRC's head is kept when it classifies the data's classes: the same count, and the same names in the same
    order where SRC says its names (HF's placeholders LABEL_i and a bare state dict say none)."""
    if num_classes == 0 or source_num != num_classes:
        return False
    return source_classes is None or list(source_classes) == list(classes)


def _summary(module: nn.Module, encoder: nn.Module, got, keep_head: bool, n_loaded: int, classes: list[str],
             stats, stats_key: str) -> str:
    """One line: what was loaded, what is new, whether pos_embed was resampled, which statistics normalise."""
    has_head = encoder.cfg.num_classes > 0
    new = [] if module is encoder else [name for name, child in module.named_children()
                                        if child is not encoder and any(True for _ in child.parameters())]
    if has_head and not keep_head:
        new.insert(0, "head")
    src_classes = got.preprocessing.get("classes")
    if not has_head:
        head = ""
    elif keep_head:
        head = " and its head (SRC's classes are the data's)"
    else:
        said = f" {_names(src_classes)}" if src_classes else ""
        head = f"; a new head: SRC has {got.source_cfg.num_classes} classes{said}, the data {len(classes)} " \
               f"{_names(classes)}"
    g0, g = got.source_cfg.grid_size, encoder.cfg.grid_size
    grid = f"pos_embed resampled {g0}x{g0} -> {g}x{g}" if got.resampled else f"pos_embed at its {g}x{g} grid"
    norm = ("SRC's mean/std" if stats is not None else
            "the data's mean/std" + (" (init.stats=data)" if stats_key == "data" else " (SRC says none)"))
    return (f"loaded {n_loaded} tensors, the encoder{head}; new: {', '.join(new) or 'nothing'}; {grid}; "
            f"normalised with {norm}")


def _names(classes: list[str]) -> str:
    shown = ", ".join(classes[:4])
    return f"[{shown}{', ...' if len(classes) > 4 else ''}]"


def freeze(encoder: nn.Module, init: InitConfig) -> list[str]:
    """Apply ``init.freeze`` to ``encoder`` (the ViT inside the trained module); returns the frozen names.

    ``encoder`` freezes every encoder parameter but the head (a linear probe trained end to end by the loop);
    ``all-but-last-N`` leaves the last N blocks, the final norm (and fc_norm) and the head trainable. Frozen
    parameters get ``requires_grad=False``, so the optimiser leaves them out and they stay bit-identical; what lies
    outside the encoder (a decoder, a projection head) always trains. A frozen BatchNorm (``model.norm='batch'``)
    also keeps its running statistics: it stays in eval mode, as timm's ``freeze_batch_norm_2d`` does.
    """
    trained_blocks = init.trained_blocks
    if trained_blocks is None:
        return []
    depth = encoder.cfg.depth
    if trained_blocks > depth:
        raise ConfigError(f"init.freeze={init.freeze!r} trains the last {trained_blocks} blocks, but the model has "
                          f"{depth} (model.depth)")
    frozen = []
    for name, p in encoder.named_parameters():
        # block i is layer i + 1, the final norm and fc_norm layer depth + 1: the last N blocks are layers > depth - N
        if not (name.startswith("head.") or (trained_blocks > 0 and layer_id(name, depth) > depth - trained_blocks)):
            p.requires_grad_(False)
            frozen.append(name)
    for module in encoder.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            module.train = types.MethodType(_stay_in_eval, module)
            module.eval()
    return frozen


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)
