"""TensorBoard event files in the run folder (``RUN/tensorboard/``), the tool ML users already keep open:
``tensorboard --logdir runs`` shows every run's per-step loss and learning rate, per-epoch metrics of every task
(the curves' data) and the final test metrics. PyTorch's own ``SummaryWriter`` writes them; it needs the
``tensorboard`` package (``pip install 'vitlab[tensorboard]'``): without it a run says so once and writes none.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

EVENTS_DIR = "tensorboard"


class Events:
    """Scalars for TensorBoard, or nothing (``enabled=False``, or tensorboard not installed). A resumed run
    purges the events past its checkpoint's step, so each step shows once."""

    def __init__(self, run_dir: Path, *, enabled: bool, purge_step: int | None = None):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: no event files (pip install 'vitlab[tensorboard]')")
            return
        self.writer = SummaryWriter(str(run_dir / EVENTS_DIR), purge_step=purge_step)

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train/loss_step", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        """``{"val_acc": 0.9, "train_loss": ...}`` -> ``val/acc``, ``train/loss`` (and ``prefix/name`` otherwise)."""
        if self.writer is None:
            return
        for key, value in values.items():
            split, _, name = key.partition("_")
            tag = f"{split}/{name}" if split in ("train", "val", "test") and name else f"{prefix or 'run'}/{key}"
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
