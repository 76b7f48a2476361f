"""Process-wide torch settings a Trainer changes while it trains, and puts back when it closes."""
from __future__ import annotations

import torch


def _attribute(owner, name: str) -> tuple:
    return lambda: getattr(owner, name), lambda value: setattr(owner, name, value)


# the settings a Trainer may change, as (read, write) pairs
TORCH_SETTINGS = {"num_threads": (torch.get_num_threads, torch.set_num_threads),
                  "cudnn.benchmark": _attribute(torch.backends.cudnn, "benchmark"),
                  "cuda.matmul.allow_tf32": _attribute(torch.backends.cuda.matmul, "allow_tf32"),
                  "cudnn.allow_tf32": _attribute(torch.backends.cudnn, "allow_tf32")}


class TorchSettings:
    """The settings one trainer changed: `restore` puts back each one that still holds the value set
    (another trainer or the user may have changed it since)."""

    def __init__(self) -> None:
        self.changed: dict = {}  # name -> (value before, value set)

    def change(self, name: str, value) -> None:
        read, write = TORCH_SETTINGS[name]
        before = read()
        if before != value:
            write(value)
            self.changed.setdefault(name, (before, value))

    def restore(self) -> None:
        for name, (before, value) in self.changed.items():
            read, write = TORCH_SETTINGS[name]
            if read() == value:
                write(before)
        self.changed = {}
