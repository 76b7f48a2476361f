import signal
import sys

try:
    from .engine import interrupts  # the standard library only: in place in the first milliseconds

    # SIGTERM and SIGHUP stop the command as Ctrl-C does from the start, while the command line and
    # PyTorch are still being imported, not only once main() runs (an ignored SIGHUP, `nohup`, stays)
    for _signum in interrupts.STOP_SIGNALS:
        if _signum != signal.SIGINT and signal.getsignal(_signum) is signal.SIG_DFL:
            signal.signal(_signum, interrupts.raise_as_interrupt)
    from .cli import main
except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP in the first moments of start-up
    _signum = getattr(exc, "signum", signal.SIGINT)
    print("interrupted (Ctrl-C)" if _signum == signal.SIGINT else f"interrupted ({signal.Signals(_signum).name})",
          file=sys.stderr)
    sys.exit(128 + _signum)

sys.exit(main())
