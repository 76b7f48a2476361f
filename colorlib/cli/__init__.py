"""Command line: `python -m colorlib COMMAND ...`, for machines without Jupyter.

    python -m colorlib train --preset quick --data PATH --run-dir runs/quick
    python -m colorlib train --run-dir runs/quick --resume --epochs 10
    python -m colorlib figures --run-dir runs/quick --out figures/quick
    python -m colorlib pack --data PATH --out cifar10.pt
    python -m colorlib evaluate --run-dir runs/quick          (metrics.py)
    python -m colorlib compare runs/a runs/b --out DIR        (metrics.py)
    python -m colorlib train-classifier --out FILE.pt         (classifier.py)
    python -m colorlib ship RUN_DIR --dry-run                 (ship.py: a new default generator?)
    python -m colorlib baselines --preset quick --out DIR     (baselines.py)
    python -m colorlib colorize PHOTOS... -o OUTDIR           (colorize.py; --vividness 0..1)
    python -m colorlib vividness-calibrate GENERATOR.pt       (vividness.py: the dial, on validation)
    python -m colorlib vividness-frontier --out DIR           (vividness.py: the dial, on test)
    python -m colorlib vividness-study STUDY --out DIR        (dial_study.py: the dial vs a study's methods)
    python -m colorlib sweep PLAN.json                        (packing.py: many runs at once)
    python -m colorlib study --preset paper --seeds 3         (study.py: the whole comparison)
    python -m colorlib bench --preset paper                   (bench.py)

Exit status: 0 success, 1 partial failure (some photos or figures could not be made, training
diverged, or the machine stopped a command after some of its work was saved: the message says
what is kept), 2 bad input or a refusal by the machine (disk full, read-only, permission, a path
too long: nothing was written), 130 interrupted with Ctrl-C; SIGTERM (143) and SIGHUP (129) stop a
command as Ctrl-C does, training saved at the iteration boundary (128 + the signal's number, as
a shell reports it).
"""
# The commands live in cli/train.py (train, figures, pack), cli/colorize.py, cli/vividness.py, cli/evaluate.py
# (evaluate, compare, train-classifier, ship) and cli/experiments.py (baselines, sweep, study, bench);
# the work itself in the library modules named above. A command returns its exit status (0, or 1
# for a partial failure it counted) or raises; `exit_status` below is the one place that turns an
# exception into a status and a one-line message.
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Optional

# only light modules here: `colorlib` starts without importing PyTorch, so Ctrl-C while the
# heavy modules load is answered by main() like any other interruption
from ..engine import interrupts
from . import colorize, evaluate, experiments, train, vividness
from ._environment import encode_error_line, os_error_line, say, silence_stdout, tolerant_stdout

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
INTERRUPTED = "interrupted (Ctrl-C)"


# (module, exception, exit status) for the errors a command may end with; the message is
# "error: <the exception's message>". Looked up in sys.modules: an exception whose module was
# never imported cannot have been raised, and PyTorch is not loaded just to rule it out.
ERRORS = (
    ("colorlib.cli._environment", "PartialFailure", EXIT_PARTIAL),  # e.g. a full disk after some epochs were saved
    ("colorlib.engine.trainer", "TrainingDiverged", EXIT_PARTIAL),  # the last good checkpoint is kept
    ("colorlib.lab.classifier", "ClassifierDiverged", EXIT_PARTIAL),
    ("colorlib.runs.config", "ConfigError", EXIT_BAD_INPUT),  # presets, --set fields, command options, plan files
    ("colorlib.runs.data", "DataError", EXIT_BAD_INPUT),
    ("colorlib.runs.rundir", "RunDirError", EXIT_BAD_INPUT),  # run directories and checkpoints
    ("colorlib.variants.cifar_classifier", "ClassifierError", EXIT_BAD_INPUT),
    ("colorlib.lab.metrics", "MetricsError", EXIT_BAD_INPUT),
    ("colorlib.inference.colorize", "OutputFolderError", EXIT_BAD_INPUT),
)


def exit_status(exc: BaseException) -> Optional[tuple[int, str]]:
    """(exit status, the line for stderr) for an exception that ended a command; None for any
    other exception, which is a bug and keeps its traceback. Ctrl-C is 130 with the message of
    the interruption where it has one (TrainingInterrupted, ColorizeInterrupted: what was kept);
    SIGTERM and SIGHUP 128 + their number. An OSError is the machine refusing something: 2 with
    the path and what to do (1 for a closed output pipe: the work is done, its listing cut short);
    so is text the terminal's encoding cannot show."""
    if isinstance(exc, KeyboardInterrupt):
        signum = getattr(exc, "signum", None) or (interrupts.received[-1] if interrupts.received else signal.SIGINT)
        default = INTERRUPTED if signum == signal.SIGINT else f"interrupted ({interrupts.signal_name(signum)})"
        return 128 + signum, str(exc) or default
    if isinstance(exc, OSError):
        return (EXIT_PARTIAL if isinstance(exc, BrokenPipeError) else EXIT_BAD_INPUT), f"error: {os_error_line(exc)}"
    if isinstance(exc, UnicodeEncodeError):
        return EXIT_BAD_INPUT, f"error: {encode_error_line(exc)}"
    for module, name, status in ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return status, f"error: {exc}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (train, colorize, vividness, evaluate, experiments):  # the order of `--help`
        group.register(sub)
    return parser


def main(argv=None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    tolerant_stdout()
    interrupts.received.clear()
    previous = stop_signals_interrupt()
    try:
        args = build_parser().parse_args(argv)  # also while PyTorch is still being imported
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe (`| head`) is answered here, not at the interpreter's exit
        return status
    except SystemExit:  # --help or a usage error: argparse said what it had to, even into a closed pipe
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        raise
    except (Exception, KeyboardInterrupt) as exc:
        outcome = exit_status(exc)
        if outcome is None:
            raise
        status, message = outcome
        if isinstance(exc, BrokenPipeError):
            silence_stdout()
        say(message)
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_signals_interrupt() -> dict:
    """SIGTERM and SIGHUP, where nothing else handles them, unwind a command as Ctrl-C does
    (interrupts.raise_as_interrupt): a training saves at its iteration boundary and every lock is
    released. Returns the handlers replaced (main thread only; an ignored SIGHUP, `nohup`, stays)."""
    replaced = {}
    if threading.current_thread() is threading.main_thread():
        for signum in interrupts.STOP_SIGNALS:
            if signum != signal.SIGINT and signal.getsignal(signum) is signal.SIG_DFL:
                replaced[signum] = signal.signal(signum, interrupts.raise_as_interrupt)
    return replaced
