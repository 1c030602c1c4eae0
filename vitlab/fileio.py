"""Writing files so that a crash, a kill or a full disk leaves the old file or the new one, never half of one.

Every file vitlab writes goes to a temporary name beside its target (``.<name>.<random>.tmp``), is flushed
to disk with ``fsync`` and then renamed over the target with ``os.replace``, which is atomic on POSIX file
systems. A write that fails removes its temporary file; one cut short by SIGKILL or power loss leaves it
behind, and :func:`remove_stale_temporaries` clears those when a run folder is next opened.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, and a written file should get the usual 0644


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, fsync it, rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` an independent copy of ``src`` (never a link: writing one must not change the other)."""
    def write(tmp: str) -> None:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 22):
                fout.write(chunk)

    atomic_write(dst, write)


def save_json(path: str | Path, obj) -> None:
    """``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.<name>.<random>.tmp``) that interrupted writes left in ``folder``;
    returns them. Call it only while no other process writes there (a run folder's lock held)."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
