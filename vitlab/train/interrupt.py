"""Ctrl-C (SIGINT) and SIGTERM become a request that the loop honours between steps.

SIGTERM is what Slurm, Kubernetes and torchrun send before they kill a job, so it is treated exactly like
Ctrl-C: the step in flight finishes, a checkpoint of that step is written, and the run stops with the
command that resumes it. The checkpoint therefore always holds a whole step, never a half-applied update.
Under torchrun the processes agree at every step (vitlab.train.distributed.agree), so all of them stop after
the same step even when only one was signalled.

A second signal in one process aborts at once, except under torchrun, whose agent forwards the Ctrl-C it
received to every worker (each then sees two): there the agent's own kill, 30 s later, is the hard stop.
"""
from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """``with StopRequest() as stop:`` ... ``if stop.requested:`` — installs the handlers for the block's
    duration (main thread only; elsewhere the signals keep their handlers)."""

    def __init__(self, *, abort_on_second: bool = True):
        self.requested = False
        self.signal_name = ""
        self.abort_on_second = abort_on_second
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if self.abort_on_second:
                self._restore()
                raise KeyboardInterrupt
            return
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s: stopping after this step and saving a checkpoint%s", self.signal_name,
                    " (Ctrl-C again to abort)" if self.abort_on_second else "")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __exit__(self, *exc) -> bool:
        self._restore()
        return False
