"""Checkpoints: tensors in safetensors, everything else as JSON in its header. No pickle.

Files are written to a temporary file in the same folder and renamed over the old one,
so a crash leaves either the previous checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

META_KEY = "vitlab"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` to one safetensors file, atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(clean, tmp, metadata={META_KEY: json.dumps(meta)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by ``save_tensors``; a missing, truncated or foreign file is a CheckpointError."""
    return _read(path, device, with_tensors=True)


def load_meta(path: str | Path) -> dict:
    """Only the JSON header of a file written by ``save_tensors`` (no tensor is read)."""
    return _read(path, "cpu", with_tensors=False)[1]


def _read(path: str | Path, device, *, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted?): {e}") from e
    try:
        meta = json.loads(header.get(META_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path} has a corrupted metadata header: {e}") from e
    return tensors, meta


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names the file and every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
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


# -- optimiser state as flat tensors + JSON ---------------------------------------------------
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


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` hold the bytes of ``src``, atomically: a hard link where the file system allows
    one (no second copy on disk), otherwise a copy; either way through a temporary name and a rename."""
    src, dst = Path(src), Path(dst)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- weights from elsewhere: safetensors, or a torch.save'd state dict loaded without running code ----
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


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
        tensors, _ = load_tensors(path)
        if any(k.startswith("model.") for k in tensors):  # a vitlab training checkpoint
            tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        return tensors
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
