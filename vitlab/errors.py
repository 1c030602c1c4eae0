"""The one family of expected failures: bad input, a broken file, a run that cannot go on.

The ``vitlab`` command prints a :class:`VitlabError` as one line, ``vitlab <command>: error: <message>``,
and exits with status 2; any other exception is a bug and keeps its traceback (``vitlab -v`` shows the
traceback of a VitlabError too). Every message names the value, key or file at fault and what was
expected.

Each subclass also derives from the built-in exception a Python caller would reach for (a bad value
is a ``ValueError``, a missing file a ``FileNotFoundError``), so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class VitlabError(Exception):
    """An expected failure, reported in one line (see the module docstring)."""


class ConfigError(VitlabError, ValueError):
    """A configuration key or value that does not fit the dataclasses or their invariants."""


class DataError(VitlabError, ValueError):
    """Data that cannot be read, or does not fit the model it is given to."""


class MissingFileError(VitlabError, FileNotFoundError):
    """A file or folder named in the input does not exist."""


class CheckpointError(VitlabError, ValueError):
    """A checkpoint or weights file that cannot be read, fails its checksum or does not fit the model."""


class MissingDependencyError(VitlabError, ImportError):
    """An optional package a command needs is not installed; the message names the pip command."""


class InteropError(VitlabError, ValueError):
    """Weights or a model that cannot come from, or go to, another format (HF, timm, ONNX) as asked."""


class RunFolderError(VitlabError, OSError):
    """A run folder that cannot be used: it exists, another process holds it, it is not a run, or the disk
    is full."""


class TrainingError(VitlabError, RuntimeError):
    """A run that cannot go on: the last good checkpoint is kept and the message says where."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or Inf; the update was skipped and the last good checkpoint is kept."""


class TrainingOutOfMemory(TrainingError):
    """The device ran out of memory in a training step; the message suggests a smaller batch."""


class ProcessGroupTimeout(TrainingError):
    """Under torchrun, the other processes did not answer within ``dist_timeout_s``."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during training: a checkpoint of the current step was saved, and the
    message says how to resume. A KeyboardInterrupt, so the CLI exits 130 rather than 2."""
