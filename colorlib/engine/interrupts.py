"""Ctrl-C, SIGTERM and SIGHUP: a training stops at the next iteration boundary and saves there; the
command line exits with 128 + the signal's number, as a shell reports it (130, 143, 129). Standard
library only: `python -m colorlib` installs `raise_as_interrupt` before PyTorch is imported.
"""
from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):  # not on Windows
    STOP_SIGNALS[signal.SIGHUP] = "SIGHUP"


class TrainingInterrupted(KeyboardInterrupt):
    """A stop signal (`signum`) ended training; the message says what the run directory keeps."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT) -> None:
        if signum != signal.SIGINT and message.startswith("interrupted:"):  # say which signal it was
            message = f"interrupted ({STOP_SIGNALS[signum]}):" + message[len("interrupted:"):]
        super().__init__(message)
        self.signum = signum

    def _render_traceback_(self) -> list[str]:  # a notebook shows the message, not a traceback
        return [str(self)]


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM or SIGHUP unwinding the program as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted ({STOP_SIGNALS[signum]})")
        self.signum = signum


def signal_of(exc: BaseException) -> int:
    return getattr(exc, "signum", signal.SIGINT)


def raise_as_interrupt(signum, frame) -> None:
    """A handler for SIGTERM / SIGHUP: finally blocks run and locks are released, as for Ctrl-C."""
    raise SignalInterrupt(signum)


class StopRequests:
    """While active (`with`), a stop signal is noted in `signum` instead of raised, for the trainer
    to stop at its next iteration boundary; a second one raises at once. Main thread only, and only
    for signals left to Python's default (or to raise_as_interrupt): never a handler someone else
    installed, nor an ignored SIGHUP (`nohup`)."""

    def __init__(self) -> None:
        self.signum = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if handler in (signal.default_int_handler, raise_as_interrupt) or \
                        (handler is signal.SIG_DFL and signum != signal.SIGINT):
                    self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _note(self, signum, frame) -> None:
        if self.signum is not None:
            raise SignalInterrupt(signum) if signum != signal.SIGINT else KeyboardInterrupt()
        self.signum = signum
        print(f"colorlib: {STOP_SIGNALS[signum]}: stopping after this iteration to save the run there "
              f"({STOP_SIGNALS[signum]} again to stop at once)", file=sys.stderr, flush=True)
