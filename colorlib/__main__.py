import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C in the first moments of start-up
    print("interrupted (Ctrl-C)", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
