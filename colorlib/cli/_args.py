"""Argument helpers shared by the commands: argparse types and the config options.

Light on purpose: no PyTorch here (see colorlib.cli).
"""
from __future__ import annotations

import argparse
from typing import Optional

from ..runs.config import FIELD_NAMES, parse_override
from ..paper.config import PRESETS

DATA_HELP = "data folder or pack (default: $COLORLIB_DATA, else CIFAR-10)"


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
    """--preset, --data, --epochs, --device, --seed and --set: a run's configuration (see `config_overrides`)."""
    p.add_argument("--preset", default="quick", help=f"run size: {', '.join(PRESETS)} (default quick)")
    p.add_argument("--data", help="data folder or pack (default: $COLORLIB_DATA, else download CIFAR-10)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override any config field, repeatable; fields: "
                        f"{', '.join(n for n in FIELD_NAMES if n != 'preset')} (the preset: --preset)")


def add_accept_change_arg(p: argparse.ArgumentParser, help: str) -> None:
    """--accept-change data|precision, repeatable: what a resumed run may find changed (engine/run_files.py)."""
    p.add_argument("--accept-change", action="append", default=[], choices=("data", "precision"),
                   help=f"{help}; repeatable")


def add_set_arg(p: argparse.ArgumentParser, help: Optional[str] = "override for every run") -> None:
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help=help)


def add_many_runs_args(p: argparse.ArgumentParser) -> None:
    """--set for every run and --no-progress: the last options of the commands that train many runs."""
    add_set_arg(p)
    p.add_argument("--no-progress", action="store_true")


def set_overrides(texts) -> dict:
    """{field: value} from --set FIELD=VALUE options (ConfigError for a bad one)."""
    return dict(parse_override(s) for s in texts)


def config_overrides(args) -> dict:
    """The config fields asked for by `add_config_args`' options, --set first, the named options over it."""
    overrides = set_overrides(args.set)
    for name in ("data", "epochs", "device", "seed"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return overrides
