"""Fine-tuning from pretrained weights (``vitlab train --init SRC``): the model is SRC's, the schedule gentler.

Pretrained weights fix the architecture, so :func:`from_source` (before ``fit_to_data``) takes every model key the
weights fix (``vitlab.config.WEIGHT_KEYS``: width, depth, heads, patch size, channels, MLP ratio, QKV bias, class
token, fc_norm, stem, norm), and pool and norm_eps, from SRC. What the person set is kept where it does not
contradict the weights (pool, norm_eps; the heads of a bare state dict, whose shapes do not say them); a
contradiction (``--model.dim 64`` with a dim-96 SRC) is one line naming both. Those keys then count as set, so
``fit_to_data`` fits only the image size and the class count to the data (``pos_embed`` is resampled and the head
is new where they differ), and never changes the patch size.

:func:`finetune_schedule` (after ``fit_to_data``): a step size chosen for random weights can undo in its first
updates what pretrained weights hold, while the new head is still random. So, unless the person set them, the
learning rate (and ``min_lr``) is the recipe's times 0.3 and the warm-up at most a tenth of the epochs; the
epochs stay the recipe's (or ``fit_to_data``'s). Why 0.3 and not the usual / 10 (benchmarks/finetune.md: MNIST
weights fine-tuned on a Fashion-MNIST folder, 8 epochs): the validation accuracy was 81.2% at lr / 10, 85.0% at
x 0.3 and 85.5% at x 1 from a supervised source, 76.2 / 81.4 / 82.2% from a contrastive one; x 0.3 keeps the
step below the from-scratch one, as a source much better than these (ImageNet weights) wants. One line says
what was chosen; choose on validation (``vitlab sweep optim.lr=... -- --init SRC``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import WEIGHT_KEYS, RunConfig
from ..errors import ConfigError, InteropError, MissingFileError

TAKEN = (*WEIGHT_KEYS, "pool", "norm_eps")  # from SRC; pool and norm_eps may be set otherwise
LR_FACTOR = 0.3  # fine-tuning lr = the recipe's x this (module docstring: measured)
WARMUP_FRACTION = 0.1  # fine-tuning warm-up: at most this fraction of the epochs


def from_source(cfg: RunConfig, explicit: set[str] | frozenset[str] = frozenset()) -> tuple[RunConfig, set[str], str]:
    """``cfg`` with the model SRC's (``cfg.init.source``; module docstring), the keys that now count as set, and
    the start of the line that says what was chosen. Reads SRC's configuration only (vitlab.interop.source_config:
    a header where the format has one)."""
    from ..interop.files import source_config  # here: the recipes are imported by every command

    src, m = cfg.init.source, cfg.model
    if not Path(src).exists():
        raise MissingFileError(f"init.source {src} does not exist: give a vitlab run folder or model file, an HF "
                               f"save_pretrained folder or a timm state dict")
    hints = {k: getattr(m, k) for k in ("heads", "pool") if f"model.{k}" in explicit}  # where shapes say nothing
    try:
        theirs, _, fmt = source_config(src, **hints)
    except InteropError as e:  # one line that names the file, whatever the reader found wrong
        if "number of heads" in str(e):
            raise InteropError(f"init.source {src} does not say its number of heads ({e}): set --model.heads") from e
        raise InteropError(str(e) if str(src) in str(e) else f"init.source {src}: {e}") from e
    for key in WEIGHT_KEYS:
        if f"model.{key}" in explicit and getattr(m, key) != getattr(theirs, key):
            raise ConfigError(f"model.{key}={getattr(m, key)!r} was set, but init.source {src} holds a ViT with "
                              f"model.{key}={getattr(theirs, key)!r}: its weights fit only its own architecture; "
                              f"leave model.{key} out (it comes from SRC)")
    changes = {k: getattr(theirs, k) for k in TAKEN if f"model.{k}" not in explicit}
    if cfg.task != "segment" and "model.img_size" not in explicit:  # fit_to_data fits it to the data next
        changes["img_size"] = theirs.img_size
    cfg = replace(cfg, model=replace(m, **changes))
    m = cfg.model
    note = (f"init {src}: the model is its {fmt} ViT (dim {m.dim}, depth {m.depth}, heads {m.heads}, patch "
            f"{m.patch_size}, {m.in_chans} channel(s), {m.pool} pooling)")
    return cfg, set(explicit) | {f"model.{k}" for k in TAKEN}, note


def finetune_schedule(cfg: RunConfig, explicit: set[str] | frozenset[str] = frozenset()) -> tuple[RunConfig, str]:
    """``cfg`` with a fine-tuning learning rate and warm-up where the person set neither (module docstring), and
    the end of the line that says so."""
    o, changes = cfg.optim, {}
    if "optim.lr" not in explicit:
        changes["lr"] = o.lr * LR_FACTOR
        if "optim.min_lr" not in explicit:
            changes["min_lr"] = o.min_lr * LR_FACTOR
    if "optim.warmup_epochs" not in explicit:
        changes["warmup_epochs"] = min(o.warmup_epochs, WARMUP_FRACTION * o.epochs)
    cfg = replace(cfg, optim=replace(o, **changes))
    said = []
    if "lr" in changes:
        said.append(f"lr {cfg.optim.lr:.3g} (the recipe's {o.lr:.3g} x {LR_FACTOR:g})")
    if "warmup_epochs" in changes:
        said.append(f"warm-up {cfg.optim.warmup_epochs:.3g} of the {o.epochs} epochs")
    if not said:
        return cfg, ""
    return cfg, (f"; fine-tuning schedule: {', '.join(said)} (defaults: benchmarks/finetune.md; set --lr or "
                 f"--optim.warmup_epochs to choose on validation)")
