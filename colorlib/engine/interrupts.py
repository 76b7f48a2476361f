"""Ctrl-C, SIGTERM and SIGHUP during training: held until the iteration in progress is done, so the
run is saved there.

A stop signal is answered as Ctrl-C is: `kill PID` (SIGTERM: a batch scheduler's time limit, `docker
stop`, a shutdown) and a closed terminal (SIGHUP) save the run at the next iteration boundary and
release its lock, where the operating system's default would end the process on the spot. The
exception that ends the training, `TrainingInterrupted`, records the signal (`signum`); the command
line exits with 128 + its number, as a shell reports a process a signal ended: 130 for Ctrl-C, 143
for SIGTERM, 129 for SIGHUP.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Optional

# the signals that stop a training, and what messages call them
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):  # not on Windows
    STOP_SIGNALS[signal.SIGHUP] = "SIGHUP"


received: list[int] = []  # the stop signals this process was sent, in order (the command line reads it)


def signal_name(signum: int) -> str:
    return STOP_SIGNALS.get(signum, f"signal {signum}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP: `signum`) stopped training; the message says what the run
    directory keeps (see Trainer.iterate)."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT) -> None:
        if signum != signal.SIGINT and message.startswith("interrupted"):  # say which signal it was
            message = f"interrupted ({signal_name(signum)})" + message[len("interrupted"):]
        super().__init__(message)
        self.signum = signum


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived where no training holds it back (`raise_as_interrupt`): it ends
    the work like Ctrl-C, with `signum` recorded."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted ({signal_name(signum)})")
        self.signum = signum


def signal_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: its `signum`, else SIGINT (Ctrl-C)."""
    return getattr(exc, "signum", signal.SIGINT)


def raise_as_interrupt(signum, frame) -> None:
    """A signal handler turning SIGTERM / SIGHUP into a `SignalInterrupt`, so that they unwind the
    program as Ctrl-C does (finally blocks run, locks are released); the command line installs it."""
    received.append(signum)
    raise SignalInterrupt(signum)


def _takes_over(signum: int, handler) -> bool:
    """Whether DeferredInterrupt may hold `signum` back: only from Python's own default behaviour
    (or the command line's `raise_as_interrupt`), never from a handler someone else installed, nor
    from an ignored signal (`nohup` ignores SIGHUP)."""
    if signum == signal.SIGINT:
        return handler is signal.default_int_handler
    return handler is signal.SIG_DFL or handler is raise_as_interrupt


class DeferredInterrupt:
    """While active (a `with` block), Ctrl-C (SIGINT), SIGTERM and SIGHUP are noted instead of
    raised, so that the trainer stops at the next iteration boundary, where the run can be saved
    exactly; a second one raises KeyboardInterrupt at once. Active only in the main thread and only
    for the signals whose handler is Python's default (as in a terminal or a Jupyter cell);
    elsewhere it does nothing. `requested`: the signal number noted (None: none)."""

    def __init__(self) -> None:
        self.requested: Optional[int] = None
        self.broke = False  # a KeyboardInterrupt left a `with` block: its work may be half done
        self._previous: dict = {}

    @property
    def signum(self) -> int:
        """The signal that asked the training to stop (SIGINT where none was noted)."""
        return self.requested or signal.SIGINT

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if _takes_over(signum, handler):
                    self._previous[signum] = handler
                    signal.signal(signum, self._note)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.broke = self.broke or (kind is not None and issubclass(kind, KeyboardInterrupt))
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _note(self, signum, frame) -> None:
        received.append(signum)
        if self.requested:
            raise SignalInterrupt(signum) if signum != signal.SIGINT else KeyboardInterrupt
        self.requested = signum
        name = signal_name(signum)
        again = "Ctrl-C" if signum == signal.SIGINT else name
        print(f"colorlib: {'' if signum == signal.SIGINT else name + ': '}stopping after this iteration to "
              f"save the run there ({again} again to stop at once)", file=sys.stderr, flush=True)
