"""Ctrl-C during training: held until the iteration in progress is done, so the run is saved there."""
from __future__ import annotations

import signal
import sys
import threading


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the message says what the run directory keeps (see Trainer.iterate)."""


class DeferredInterrupt:
    """While active (a `with` block), Ctrl-C (SIGINT) is noted instead of raised, so that the
    trainer stops at the next iteration boundary, where the run can be saved exactly; a second
    Ctrl-C raises KeyboardInterrupt at once. Active only in the main thread and only where SIGINT
    has Python's default handler (as in a terminal or a Jupyter cell); elsewhere it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self.broke = False  # a KeyboardInterrupt left a `with` block: its work may be half done
        self._previous = None

    def __enter__(self) -> "DeferredInterrupt":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.broke = self.broke or (kind is not None and issubclass(kind, KeyboardInterrupt))
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _note(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("colorlib: stopping after this iteration to save the run there (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

