"""Argument types and the config options the commands share (no PyTorch here)."""
from __future__ import annotations

import argparse

from ..paper.config import PRESETS
from ..runs.config import ACCEPTABLE_CHANGES, FIELD_NAMES, parse_override

DATA_HELP = "data folder (default: $COLORLIB_DATA, else CIFAR-10)"


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help=f"run size: {', '.join(PRESETS)} (default quick; with --resume: the run's)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int)
    fields = ", ".join(n for n in FIELD_NAMES if n != "preset")
    add_set_arg(p, f"override any config field, repeatable; fields: {fields}")


def add_accept_change_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--accept-change", action="append", default=[], choices=ACCEPTABLE_CHANGES,
                   help=f"{help}; repeatable")


def add_set_arg(p: argparse.ArgumentParser, help: str = "override for every run") -> None:
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help=help)


def add_many_runs_args(p: argparse.ArgumentParser) -> None:
    """The options sweep and study share."""
    p.add_argument("--data", help=DATA_HELP)
    add_accept_change_arg(p, "runs in OUT continue though their images or precision changed (see train)")
    add_set_arg(p)
    p.add_argument("--no-progress", action="store_true")


def set_overrides(texts) -> dict:
    """{field: value} from --set FIELD=VALUE options (ConfigError for a bad one)."""
    return dict(parse_override(s) for s in texts)


def config_overrides(args) -> dict:
    """The config fields `add_config_args`' options ask for: --set first, the named options over it."""
    named = {name: getattr(args, name) for name in ("data", "epochs", "device", "seed")}
    return {**set_overrides(args.set), **{name: value for name, value in named.items() if value is not None}}
