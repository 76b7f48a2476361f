"""Where computation runs: the device a run asks for, and its name for the records.

The ground floor of training, evaluation and colorize alike, so that running a trained generator
never needs the trainer. In what precision a run computes is precision.py's question.
"""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from .config import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but no CUDA GPU is available; use device=auto or cpu")
    return device


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model where the system says it (Linux: /proc/cpuinfo), else the
    processor family: what run.json, the study and the benchmark record as the machine."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


