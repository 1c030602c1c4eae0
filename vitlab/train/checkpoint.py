"""Checkpoints and model files: tensors in safetensors, everything else as JSON in its header. No pickle.

Every file is written to a temporary name and renamed over the old one (vitlab.fileio), so a crash leaves
either the previous file or the new one, never half of one. Every file vitlab writes also carries a
SHA-256 of its tensors (name, dtype, shape and bytes) in its header, checked on every load: flipped bits on
disk are an error naming the file, not a silently different model.

A training checkpoint (:func:`save_checkpoint`) holds the trained module's state dict (``model.*``; a MoCo
queue travels in it as the loss module's extra state), with ``optim.ema`` the weight average's (``ema.*``: the
model the run evaluates, so the one :func:`model_tensors` reads for use), the AdamW state (``optim.*``), the
random states of every process (``rng.<rank>.*``), inside an epoch the running sums of the epoch's metrics
(``loop.sum.*``),
and in the header the step, the epoch, the batches done, the best validation metric so far and the run
configuration. The learning rate is a pure function of the step and the data order of (seed, epoch), so
nothing else is needed to continue bit for bit.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..configio import to_dict
from ..errors import CheckpointError
from ..fileio import atomic_write
from .rng import RngState

__all__ = ["BEST", "CHECKPOINT", "CheckpointError", "Progress", "STEP_CHECKPOINT", "load_meta", "load_model_state",
           "load_state_dict_file", "load_tensors", "optimizer_from_tensors", "optimizer_to_tensors",
           "restore_checkpoint", "save_checkpoint", "save_tensors", "tensor_digest"]

META_KEY = "vitlab"
CHECKPOINT = "checkpoint.safetensors"  # the newest checkpoint; --resume reads it
BEST = "best.safetensors"  # the epoch checkpoint with the best validation metric (in its header)
STEP_CHECKPOINT = "checkpoint-step{step:06d}.safetensors"  # the last keep_last of them, when keep_last > 1


# -- the file format ------------------------------------------------------------------------------------------
def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order: independent of how the
    file lays them out, so it can be checked on the tensors as loaded."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` (plus the tensors' SHA-256) to one safetensors file,
    atomically."""
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {META_KEY: json.dumps({**meta, "sha256": tensor_digest(clean)})}

    def write(tmp: str) -> None:
        try:
            save_file(clean, tmp, metadata=header)
        except SafetensorError as e:  # the Rust writer's I/O errors (a full disk): as the OSError they are
            code = re.search(r"os error (\d+)", str(e))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from e

    atomic_write(path, write)


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by ``save_tensors`` (or any safetensors file) and check its SHA-256 when it
    carries one; a missing, truncated, corrupted or foreign file is a CheckpointError naming it."""
    tensors, meta = _read(path, with_tensors=True)
    expected = meta.pop("sha256", None)
    if expected is not None and tensor_digest(tensors) != expected:
        raise CheckpointError(f"checkpoint {path} fails its SHA-256 check: its tensor bytes changed after it was "
                              f"written (disk or copy corruption); use another checkpoint")
    if str(device) != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors, meta


def load_meta(path: str | Path) -> dict:
    """Only the JSON header of a file written by ``save_tensors`` (no tensor is read, nor checked)."""
    meta = _read(path, with_tensors=False)[1]
    meta.pop("sha256", None)
    return meta


def _read(path: str | Path, *, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted?): {e}") from e
    try:
        meta = json.loads(header.get(META_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path} has a corrupted metadata header: {e}") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has a metadata header that is not a JSON object")
    return tensors, meta


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names the file and every missing, unexpected or mis-shaped key.

    Extra state (``*._extra_state``, e.g. a MoCo queue that grows while it fills) has no fixed shape."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if k in state and not k.endswith("_extra_state") and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(shapes)}]")
        raise CheckpointError(f"weights in {source} do not fit the model: " + ", ".join(parts))
    model.load_state_dict(state)


# -- optimiser state as flat tensors + JSON -------------------------------------------------------------------
def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# -- training checkpoints ---------------------------------------------------------------------------------------
@dataclass
class Progress:
    """Where a run stands: ``epoch`` finished epochs, ``step`` optimiser steps, ``batch`` batches done of the
    next epoch (0 at an epoch end) with its running metric sums ``sums`` (each a tensor of every process's own
    sum, in rank order) and wall-clock
    ``elapsed`` seconds; the best validation value so far and its epoch."""

    epoch: int = 0
    step: int = 0
    batch: int = 0
    train_time_s: float = 0.0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    elapsed: float = 0.0
    best_value: float | None = None
    best_epoch: int | None = None


def save_checkpoint(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg, progress: Progress,
                    rng: list[RngState], extra: dict, average: torch.nn.Module | None = None) -> None:
    """One training checkpoint (module docstring); ``rng`` holds every process's random state in rank order,
    ``extra`` JSON-able metadata (normalisation statistics, class names, the epoch's validation metrics),
    ``average`` the weight average's module (``optim.ema``)."""
    tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
    if average is not None:
        tensors.update({f"ema.{k}": v for k, v in average.state_dict().items()})
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer)
    tensors.update(opt_tensors)
    rng_meta = []
    for rank, state in enumerate(rng):
        tensors.update({f"rng.{rank}.{k}": v for k, v in state.tensors().items()})
        rng_meta.append(state.json())
    tensors.update({f"loop.sum.{k}": torch.as_tensor(v) for k, v in progress.sums.items()} if progress.batch else {})
    meta = {"epoch": progress.epoch, "step": progress.step, "batch": progress.batch,
            "train_time_s": progress.train_time_s, "elapsed_s": progress.elapsed if progress.batch else 0.0,
            "best": {"value": progress.best_value, "epoch": progress.best_epoch}, "world_size": len(rng),
            # the data order is epoch_order(n, seed, epoch): (seed, epoch, batch) pin down where it stands
            "data_order": {"seed": cfg.seed, "epoch": progress.epoch, "batch": progress.batch},
            "config": to_dict(cfg), "optimizer": opt_meta, "rng": rng_meta, **extra}
    save_tensors(path, tensors, meta)


def restore_checkpoint(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       device: torch.device, average: torch.nn.Module | None = None
                       ) -> tuple[Progress, list[RngState], dict]:
    """Load a training checkpoint into ``module``, ``optimizer`` and the weight average's module ``average``;
    returns where the run stands, every process's random state (rank order) and the header."""
    tensors, meta = load_tensors(path)
    try:
        state = lambda prefix: {k[len(prefix):]: v.to(device) for k, v in tensors.items()  # noqa: E731
                                if k.startswith(prefix)}
        load_model_state(module, state("model."), str(path))
        if average is not None:
            if not any(k.startswith("ema.") for k in tensors):
                raise CheckpointError(f"checkpoint {path} holds no weight average (ema.*): it was written by a run "
                                      f"without optim.ema")
            load_model_state(average, state("ema."), f"{path} (its weight average)")
        optimizer_from_tensors(optimizer, {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")},
                               meta["optimizer"])
        rng = [RngState.from_checkpoint({k[len(f"rng.{r}."):]: v for k, v in tensors.items()
                                         if k.startswith(f"rng.{r}.")}, state) for r, state in enumerate(meta["rng"])]
        progress = Progress(epoch=int(meta["epoch"]), step=int(meta["step"]), batch=int(meta["batch"]),
                            train_time_s=float(meta["train_time_s"]), elapsed=float(meta["elapsed_s"]),
                            sums={k[len("loop.sum."):]: v.to(device) for k, v in tensors.items()
                                  if k.startswith("loop.sum.")},
                            best_value=meta["best"]["value"], best_epoch=meta["best"]["epoch"])
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} lacks {e}: not a vitlab training checkpoint (or one written by an "
                              f"older vitlab)") from e
    except (ValueError, TypeError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from e
    return progress, rng, meta


# -- weights from elsewhere: safetensors, or a torch.save'd state dict loaded without running code -------------
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's tensors of a vitlab training checkpoint (stored under ``model.``, beside the optimiser's; with
    ``optim.ema``, the weight average under ``ema.``: the model the run evaluated), or ``tensors`` as they are."""
    for prefix in ("ema.", "model."):
        if any(k.startswith(prefix) for k in tensors):
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return tensors


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict (name -> tensor) from a ``.safetensors`` file or a ``torch.save``'d one.

    Pickle files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) are opened with ``torch.load(weights_only=True)``,
    whose unpickler builds only tensors and plain containers; a file that needs any other class (that
    is, arbitrary code) to load is refused, never executed. A training checkpoint or a dict with a
    ``state_dict``/``model`` entry yields the model's tensors.

    Raises:
        CheckpointError: naming the file, when it is missing, unreadable, needs code to load, or holds
            something other than a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return model_tensors(load_tensors(path)[0])
    if path.suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(f"weights file {path}: unknown format {path.suffix!r}; expected .safetensors or "
                              f"a torch.save'd state dict ({', '.join(PICKLE_SUFFIXES)})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's restricted unpickler: "Unsupported global: GLOBAL os.system ..." when the file names a
        # class or function to run; other reasons ("Unsupported operand") mean the bytes are not a pickle
        reason = next((line.split("WeightsUnpickler error:", 1)[1].strip() for line in str(e).splitlines()
                       if "WeightsUnpickler error:" in line), str(e).splitlines()[0] if str(e) else "")
        if "Unsupported global" not in reason:
            raise CheckpointError(f"weights file {path} is unreadable (truncated or corrupted?): {reason}") from e
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary code to unpickle, which torch.load(weights_only=True) "
            f"does not run ({reason.split(' was not an allowed global')[0]}). Load it only if you trust it, "
            f"and convert it to a plain state dict or safetensors") from e
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"weights file {path} is unreadable (truncated or corrupted?): {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise CheckpointError(f"weights file {path} holds a {type(obj).__name__}, not a state dict of "
                              f"name -> tensor")
    return obj
