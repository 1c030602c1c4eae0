"""The run folder ``out_dir/name``: one process owns it for the run's lifetime, and nothing in it is lost.

* The name is one plain folder name (RunConfig checks it): never ``..`` or a path, so no run can reach
  outside ``out_dir``.
* :class:`RunFolder` holds an exclusive lock (``flock`` on ``.lock``, released by the kernel when the
  process dies, SIGKILL included) from before its first write to the end of the run: a second ``vitlab
  train --name X`` or a ``--resume`` of a run still training is refused with the holder's pid.
* An existing folder is replaced only with ``overwrite``, only if it is a vitlab run folder, and only once
  every check of the new run has passed (the loop opens the folder after loading the data and building the
  model); the lock file itself stays, held throughout.
* Opening a folder clears the temporary files of writes a crash interrupted (vitlab.fileio).
* ``metrics.jsonl`` is appended one fsync'ed line an epoch; a torn last line (power loss, full disk) is
  dropped with a warning on resume: it always belongs to an epoch past the last checkpoint.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

from ..config import RunConfig
from ..configio import from_dict
from ..errors import RunFolderError
from ..fileio import atomic_copy, atomic_write_bytes, remove_stale_temporaries
from .checkpoint import BEST, CHECKPOINT, Progress, load_meta

log = logging.getLogger(__name__)

LOCK = ".lock"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
# What `--resume` may change: everything else is the saved run's configuration.
RESUMABLE_KEYS = ("optim.epochs", "progress", "device", "threads", "compile", "precision", "ckpt_every", "keep_last",
                  "dist_timeout_s", "tensorboard")
# Files a vitlab run folder is known by: the only folders --overwrite may empty.
RUN_MARKERS = (CONFIG, METRICS, CHECKPOINT, "model.safetensors")


class RunFolder:
    """An opened, locked run folder. ``path`` is the folder; ``close()`` (or the ``with`` block) releases it."""

    def __init__(self, path: Path, lock_fd: int):
        self.path, self._lock_fd = path, lock_fd

    @classmethod
    def open(cls, cfg: RunConfig, *, resume: bool, overwrite: bool) -> "RunFolder":
        """Create (or, for ``resume``, reopen) ``cfg.out_dir/cfg.name`` and lock it.

        Raises:
            RunFolderError: the folder is in use by another process; it exists and neither ``resume`` nor
                ``overwrite`` was asked; ``overwrite`` of a folder that is not a vitlab run; ``resume`` of a
                folder without a config.json.
        """
        path = Path(cfg.out_dir) / (cfg.name or time.strftime("%Y%m%d-%H%M%S"))
        existed = path.exists()
        if existed and not path.is_dir():
            raise RunFolderError(f"run folder {path} exists and is a file, not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"cannot create run folder {path}: {e.strerror}") from e
        folder = cls(path, _lock(path))
        try:
            folder._prepare(resume=resume, overwrite=overwrite, existed=existed)
        except BaseException:
            folder.close()
            raise
        return folder

    def _prepare(self, *, resume: bool, overwrite: bool, existed: bool) -> None:
        stale = remove_stale_temporaries(self.path)
        if stale:
            log.warning("removed %d temporary file(s) of writes an earlier crash interrupted in %s: %s", len(stale),
                        self.path, ", ".join(p.name for p in stale))
        contents = [p for p in self.path.iterdir() if p.name != LOCK]
        if resume:
            if not (self.path / CONFIG).is_file():
                raise RunFolderError(f"{self.path / CONFIG} not found: {self.path} is not a vitlab run folder")
            return
        if not contents:
            return
        if not overwrite:
            hint = ("" if (self.path / CHECKPOINT).exists() else
                    " (it has no checkpoint yet: --resume starts it again from step 0)")
            raise RunFolderError(f"run folder {self.path} already exists; pass --resume {self.path} to continue it"
                                 f"{hint} or --overwrite to replace it")
        if not any((self.path / m).exists() for m in RUN_MARKERS):
            raise RunFolderError(f"refusing to --overwrite {self.path}: it is not a vitlab run folder (it has none "
                                 f"of {', '.join(RUN_MARKERS)}); move or delete it yourself")
        for p in contents:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        log.info("--overwrite: emptied %s", self.path)

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lock(path: Path) -> int:
    """An exclusive, non-blocking flock on ``path/.lock``, with this process's pid written in it."""
    lock_path = path / LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunFolderError(f"run folder {path} is in use by another vitlab process (pid {holder}); wait for it "
                                 f"to finish, or stop it, before training or resuming this run") from e
        raise RunFolderError(f"cannot lock run folder {path}: {e.strerror}") from e
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# -- the run's configuration -------------------------------------------------------------------------------
def load_run_config(run_dir: str | Path) -> RunConfig:
    """The RunConfig a run folder was trained with (its config.json)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunFolderError(f"{path} not found: {run_dir} is not a vitlab run folder")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path} is not valid JSON: {e}") from e
    return from_dict(RunConfig, data)


def resumed_config(saved: RunConfig, asked: RunConfig, run_dir: Path) -> RunConfig:
    """The configuration a resumed run trains with: the ``saved`` one, in its own folder, taking from ``asked``
    only the RESUMABLE_KEYS (more epochs, the device, threads, progress bars, checkpoint cadence, timeout)."""
    return replace(saved, optim=replace(saved.optim, epochs=max(asked.optim.epochs, saved.optim.epochs)),
                   out_dir=str(run_dir.parent), name=run_dir.name,
                   **{key: getattr(asked, key) for key in RESUMABLE_KEYS if "." not in key})


# -- metrics.jsonl ---------------------------------------------------------------------------------------------
def append_row(path: Path, row: dict) -> None:
    """One epoch's metrics as one JSON line, flushed to disk before the checkpoint that counts it."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl. A torn last line is dropped with a warning; a bad line before it is an
    error naming the file and the line."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if number == len(lines):
                log.warning("%s: dropped its torn last line %d (%s); the epoch it belonged to is trained again",
                            path, number, e)
                break
            raise RunFolderError(f"{path} line {number} is not a JSON object ({e}); remove or repair that line "
                                 f"and resume again") from e
        rows.append(row)
    return rows


def keep_rows(path: Path, epochs_done: int) -> list[dict]:
    """Rewrite metrics.jsonl with exactly the epochs a checkpoint has seen (so a resumed run logs each epoch
    once, and a torn line is gone); returns them."""
    rows = [r for r in read_rows(path) if r.get("epoch", 0) <= epochs_done]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return rows


# -- checkpoints kept with --keep-last, and going back to one ----------------------------------------------------
def step_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoint-stepNNNNNN.safetensors files of a run, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("checkpoint-step*.safetensors")
             if (m := re.fullmatch(r"checkpoint-step(\d+)\.safetensors", p.name))]
    return [p for _, p in sorted(found)]


def roll_back(run_dir: Path, source: Path, progress: Progress) -> None:
    """Make ``source`` (already loaded into ``progress``) the run's checkpoint, and set aside — never delete —
    what belongs to the abandoned later steps: newer step checkpoints, a newer best checkpoint and the metrics
    rows past ``source`` are renamed or written to ``abandoned-<time>-<name>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = lambda p: p.rename(run_dir / f"abandoned-{stamp}-{p.name}")  # noqa: E731
    if source.resolve() != (run_dir / CHECKPOINT).resolve():
        atomic_copy(source, run_dir / CHECKPOINT)
    newer = [p for p in step_checkpoints(run_dir) if int(p.name[len("checkpoint-step"):-len(".safetensors")])
             > progress.step]
    for p in newer:
        aside(p)
    best = run_dir / BEST
    if best.exists() and int(load_meta(best).get("step", 0)) > progress.step:
        aside(best)  # the best of the abandoned steps; the best up to source was overwritten by it
        progress.best_value, progress.best_epoch = None, None
        log.warning("%s was written after %s: set aside; the next epoch's checkpoint starts a new best", BEST,
                    source.name)
    rows = read_rows(run_dir / METRICS)
    later = [r for r in rows if r.get("epoch", 0) > progress.epoch]
    if later:
        atomic_write_bytes(run_dir / f"abandoned-{stamp}-{METRICS}",
                           "".join(json.dumps(r) + "\n" for r in later).encode())
    log.info("rolled %s back to %s (step %d): set aside %d step checkpoint(s) and %d metrics row(s) as "
             "abandoned-%s-*", run_dir, source.name, progress.step, len(newer), len(later), stamp)
