"""What every subcommand shares: ``--section.key VALUE`` overrides, building a run configuration, errors."""
from __future__ import annotations

import os

from ..errors import VitlabError

ALIASES = {"epochs": "optim.epochs", "batch_size": "optim.batch_size", "lr": "optim.lr", "data": "data.name",
           "val_split": "data.val_split", "test_split": "data.test_split", "tau": "pretrain.tau",
           "init": "init.source"}


class CLIError(VitlabError, ValueError):
    """A command line that does not fit the command (an unknown flag, a flag --resume may not change, ...)."""


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
    """Recipe (of ``--task``) -> ``--config`` file -> ``--size`` -> ``--section.key VALUE`` flags, each laid over
    the one before. Returns the configuration and the dotted keys the person set (file, size and flags): what
    ``vitlab.recipes.fit_to_data`` leaves alone."""
    from dataclasses import asdict, replace

    from ..config import SIZES, size_config
    from ..configio import apply_overrides, flatten, load_config_file, merge
    from ..recipes import recipe

    cfg = recipe(args.recipe, args.task)
    explicit = set(overrides)
    base_epochs, base_warmup = cfg.optim.epochs, cfg.optim.warmup_epochs
    if args.config:
        partial = load_config_file(args.config)
        cfg = merge(cfg, partial)
        explicit |= set(flatten(partial))
    if args.size:
        size = size_config(args.size, **{k: v for k, v in asdict(cfg.model).items()
                                         if k not in next(iter(SIZES.values()))})
        cfg = merge(cfg, {"model": asdict(size)})
        explicit |= {f"model.{k}" for k in next(iter(SIZES.values()))}
    if "data.name" in explicit and "model.patch_size" in overrides and "model.img_size" not in explicit:
        # another data set's image size is not known yet: a provisional side the new patch size divides, so that
        # the model's check passes now; fit_to_data replaces it with the data's (and checks that one)
        overrides = {**overrides, "model.img_size": overrides["model.patch_size"]}
    cfg = apply_overrides(cfg, overrides)
    if "optim.epochs" in explicit and "optim.warmup_epochs" not in explicit and cfg.optim.epochs < base_epochs:
        # a shorter run than the recipe's: its warm-up shrinks in proportion, so that the learning rate still
        # decays (the recipe's 3 warm-up epochs would be the whole of --epochs 2)
        cfg = replace(cfg, optim=replace(cfg.optim, warmup_epochs=base_warmup * cfg.optim.epochs / base_epochs))
    return cfg, explicit


def no_extra(rest: list[str]) -> None:
    if rest:
        raise CLIError(f"unexpected arguments {rest}")


def torchrun_rank() -> int:
    """This process's rank under torchrun (its RANK variable); 0 otherwise."""
    return int(os.environ.get("RANK", "0"))
