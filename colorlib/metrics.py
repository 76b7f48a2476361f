"""Metrics for colorizations; the command-line entry points of the evaluation suite."""
from __future__ import annotations


def register_cli(sub) -> None:
    from .classifier import add_train_parser
    add_train_parser(sub)
