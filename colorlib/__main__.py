import signal
import sys

try:
    from .engine import interrupts  # the standard library only: in place in the first milliseconds

    # SIGTERM and SIGHUP stop the command as Ctrl-C does while PyTorch is still being imported too
    for _signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if _signum and signal.getsignal(_signum) is signal.SIG_DFL:  # an ignored SIGHUP (`nohup`) stays
            signal.signal(_signum, interrupts.raise_as_interrupt)
    from .cli import main
except KeyboardInterrupt as exc:  # a stop signal in the first moments of start-up
    print(str(exc) or "interrupted (Ctrl-C)", file=sys.stderr)  # a SignalInterrupt names its signal
    sys.exit(128 + getattr(exc, "signum", signal.SIGINT))

sys.exit(main())
