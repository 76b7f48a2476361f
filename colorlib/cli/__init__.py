"""Command line `python -m colorlib COMMAND ...`, for machines without Jupyter; `COMMAND --help` says more.

Exit status: 0 success, 1 partial failure (some of the work failed or the machine stopped the command after
some of it was saved: the message says what is kept), 2 bad input or a refusal by the machine (disk full,
read-only, permission, a path too long), 130 interrupted with Ctrl-C, 143 SIGTERM, 129 SIGHUP (128 + the
signal's number, as a shell reports it; training is saved at the iteration boundary).
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings

# only light modules here: the command line starts without importing PyTorch
from .. import __version__
from ..engine import interrupts
from . import colorize, evaluate, experiments, train, vividness
from ._environment import SHOWN, one_line_warning, os_error_line, say, silence_stdout

EXIT_PARTIAL, EXIT_BAD_INPUT = 1, 2

# (module, exception, exit status); looked up in sys.modules, so PyTorch is not loaded to rule one out
ERRORS = (
    ("colorlib.cli._environment", "PartialFailure", EXIT_PARTIAL),
    ("colorlib.engine.trainer", "TrainingDiverged", EXIT_PARTIAL),
    ("colorlib.lab.classifier", "ClassifierDiverged", EXIT_PARTIAL),
    ("colorlib.runs.config", "ConfigError", EXIT_BAD_INPUT),
    ("colorlib.runs.data", "DataError", EXIT_BAD_INPUT),
    ("colorlib.runs.rundir", "RunDirError", EXIT_BAD_INPUT),
    ("colorlib.variants.cifar_classifier", "ClassifierError", EXIT_BAD_INPUT),
    ("colorlib.lab.metrics", "MetricsError", EXIT_BAD_INPUT),
)


def exit_status(exc: BaseException):
    """(exit status, line for stderr) for an exception that ended a command; None for a bug."""
    if isinstance(exc, KeyboardInterrupt):
        signum = interrupts.signal_of(exc)
        return 128 + signum, str(exc) or f"interrupted ({interrupts.STOP_SIGNALS[signum]})"
    if isinstance(exc, OSError):  # the machine refused: a closed pipe (`| head`) only cut the listing short
        return (EXIT_PARTIAL if isinstance(exc, BrokenPipeError) else EXIT_BAD_INPUT), f"error: {os_error_line(exc)}"
    if isinstance(exc, UnicodeEncodeError):
        return EXIT_BAD_INPUT, f"error: {exc}; set PYTHONIOENCODING=utf-8 and run the command again"
    for module, name, status in ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return status, f"error: {exc}"
    return None


class Versions(argparse.Action):
    """--version: colorlib's and PyTorch's (PyTorch imported only when asked)."""

    def __call__(self, parser, *_):
        import torch
        with contextlib.suppress(BrokenPipeError):  # `| head -0` ends it quietly, as it does --help
            print(f"colorlib {__version__}, torch {torch.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=Versions, nargs=0, help="show colorlib's and PyTorch's versions")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (train, colorize, vividness, evaluate, experiments):  # the order of `--help`
        group.register(sub)
    return parser


def main(argv=None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")  # a file name the terminal cannot show never fails a command
    replaced = {}
    if threading.current_thread() is threading.main_thread():  # SIGTERM / SIGHUP unwind as Ctrl-C does
        for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signum and signal.getsignal(signum) is signal.SIG_DFL:  # an ignored SIGHUP (`nohup`) stays
                replaced[signum] = signal.signal(signum, interrupts.raise_as_interrupt)
    SHOWN.clear()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warning
            args = build_parser().parse_args(argv)
            status = args.func(args)
        sys.stdout.flush()  # a closed pipe is answered here, not at the interpreter's exit
        return status
    except SystemExit:  # --help or a usage error, said by argparse, even into a closed pipe
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        raise
    except (Exception, KeyboardInterrupt) as exc:
        outcome = exit_status(exc)
        if outcome is None:
            raise
        if isinstance(exc, BrokenPipeError):
            silence_stdout()
        say(outcome[1])
        return outcome[0]
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
