"""Where computation runs: the device a run asks for and its name for the records, the CPU threads
and the precision a training uses; below the engine, so that colorize never needs the trainer."""
from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from pathlib import Path
from typing import Optional

import torch

from .config import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but no CUDA GPU is available; use device=auto or cpu")
    return device


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model (Linux: /proc/cpuinfo), else the processor family."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def _cpuinfo(field: str) -> str:
    """The value of the first `field` line of /proc/cpuinfo (Linux); "" where there is none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(field) and ":" in line:
                return line.split(":", 1)[1].strip()
    return ""


def bf16_autocast(device: torch.device) -> tuple[bool, str]:
    """(whether training on `device` runs under bf16 autocast, why): on CUDA where the GPU has bf16;
    on a CPU only where it has bf16 arithmetic units (avx512_bf16 or amx_bf16 in /proc/cpuinfo),
    since elsewhere oneDNN emulates bf16, slower than float32; never on other devices."""
    if device.type == "cuda":
        return (True, "CUDA") if torch.cuda.is_bf16_supported() else (False, "a CUDA GPU without bf16")
    if device.type == "cpu":
        flags = _cpuinfo("flags").split()
        units = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
        return (True, f"a CPU with {units[0]}") if units else (False, "a CPU without bf16 units")
    return False, f"bf16 autocast is used on CUDA and CPUs only, not on {device.type}"


# How long the CPU's use is sampled to choose a thread count (threads=0): long enough to see a
# busy neighbour (a scheduler tick is 4-10 ms), short enough not to be noticed at start-up.
SAMPLE_SECONDS = 0.3


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's CPU set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu_times() -> Optional[tuple[float, float]]:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat), None where unknown."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = sum(fields[3:5])  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(seconds: float = SAMPLE_SECONDS) -> tuple[Optional[float], str]:
    """How many cores other processes keep busy now, and how that was measured: the machine's
    CPU use over `seconds` (Linux), less this process's own; elsewhere the 1-minute load average."""
    before, own = _cpu_times(), sum(os.times()[:2])  # this process's user + system seconds
    if before is not None:
        time.sleep(seconds)
        after, own = _cpu_times(), sum(os.times()[:2]) - own
        if after is not None and after[1] > before[1]:
            share = (after[0] - before[0]) / (after[1] - before[1])
            cores = os.cpu_count() or usable_cores()
            return max(0.0, share * cores - own / seconds), f"CPU use over {seconds:g} s"
    try:
        return float(os.getloadavg()[0]), "1-minute load average"
    except (AttributeError, OSError):
        return None, "no CPU-use reading on this system"


def choose_threads() -> tuple[int, str]:
    """The CPU thread count for threads=0, by measurement, and why. PyTorch's CPU operators split every
    convolution over all their OpenMP threads and wait for the slowest, so a thread sharing its core with
    another busy process makes every operation wait for it. Measured on a 2-core CPU: idle, 2 threads train
    the quick networks 1.5x faster than 1; beside one other busy process, 1 thread is 5-50x faster than 2.
    So: as many threads as there are cores nobody else is using (at least 1, at most PyTorch's default)."""
    cores = min(usable_cores(), torch.get_num_threads())
    busy, how = busy_cores()
    if busy is None:
        return cores, f"{cores} of {cores} cores ({how})"
    free = max(1, min(cores, math.floor(cores - busy + 0.25)))
    return free, f"{free} of {cores} cores: {busy:.1f} busy with other work ({how})"
