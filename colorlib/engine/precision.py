"""In what precision a run computes: bf16 autocast where it pays, float32 elsewhere.

On CUDA, bf16 autocast always pays. On a CPU only where it has bf16 arithmetic units and they are
faster than float32 for these networks: AMX, yes; AVX512-BF16 without AMX, measured once per
process by a short calibration on the default networks; no bf16 units, never (it would be
emulated). `COLORLIB_CPU_BF16=1|0` pins the choice (any other value is a ConfigError). Training and
the benchmark use this; running a trained generator does not.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Optional

import torch

from ..runs import rundir
from ..runs.config import Config, ConfigError
from ..variants import build_discriminator, build_generator


CPU_BF16_ENV = "COLORLIB_CPU_BF16"  # 1 or 0 pins the CPU precision choice below, skipping the probe
PIN_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
CPU_BF16_MIN_SPEEDUP = 1.1  # what calibrated bf16 must gain over float32 to be worth its 8-bit mantissa
_cpu_bf16: Optional[tuple[bool, str]] = None  # the decision, made once per process


def cpu_has_bf16_units() -> bool:
    """Whether oneDNN has bf16 arithmetic on this CPU (AVX512-BF16 or AMX); elsewhere it emulates bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_amx() -> Optional[bool]:
    """Whether the CPU has AMX bf16 tiles (Intel Sapphire Rapids and later); None where neither
    PyTorch nor the OS can tell."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        try:
            found = caps()
            return bool(found.get("amx_bf16", found.get("amx_tile", False)))
        except RuntimeError:
            pass
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return None


def calibrate_cpu_bf16(rounds: int = 3, batch: int = 50) -> float:
    """bf16 autocast's speed-up over float32 on this CPU: one forward and backward pass of the
    default generator and discriminator on `batch` images, timed `rounds` times each way,
    interleaved, fastest against fastest (other work on a shared CPU only ever slows a pass
    down). One thread, whatever training uses: OpenMP threads that wait on each other under a
    busy CPU would measure the load, not the arithmetic. A few seconds; the RNG is left as it was."""
    threads = torch.get_num_threads()
    best = {False: math.inf, True: math.inf}
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            torch.manual_seed(0)
            cfg = Config()
            G, D = build_generator(cfg), build_discriminator(cfg)
            gray = torch.rand(batch, 1, 32, 32) * 2 - 1
            for r in range(rounds + 1):  # round 0 warms up: oneDNN builds its kernels
                for bf16 in ((True, False) if r % 2 else (False, True)):
                    start = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        fake = G(gray)
                        logits = D(gray, fake.float())
                    (logits.float().mean() + fake.float().mean()).backward()
                    if r:
                        best[bf16] = min(best[bf16], time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return best[False] / best[True]


def cpu_bf16_decision() -> tuple[bool, str]:
    """(whether bf16 autocast pays on this CPU, why), decided once per process.

    AMX: it does (on a 2-core Xeon with AMX, 2.27x the tutorial loop where float32 gave 1.11x;
    README). No bf16 units at all: oneDNN would emulate bf16, slower. AVX512-BF16 without AMX
    goes either way (on colorlib's networks bf16 cost a 2-core Xeon 23% and gained an AMD EPYC
    50%), so there a short calibration (`calibrate_cpu_bf16`) decides: bf16 where it is at least
    CPU_BF16_MIN_SPEEDUP times as fast. Under torchrun every process takes rank 0's choice.
    $COLORLIB_CPU_BF16=1 or 0 pins the choice (e.g. to resume a run bitwise in the precision it
    started in), read at every call; another value is a ConfigError."""
    global _cpu_bf16
    pinned = pinned_cpu_bf16()
    if pinned is not None:
        return pinned, f"pinned by ${CPU_BF16_ENV}={os.environ[CPU_BF16_ENV].strip()}"
    if _cpu_bf16 is None:
        decision = _decide_cpu_bf16()
        import torch.distributed as td
        if td.is_available() and td.is_initialized() and td.get_world_size() > 1:
            shared = [decision]
            td.broadcast_object_list(shared, src=0)
            decision = shared[0] if td.get_rank() == 0 else (shared[0][0], f"rank 0's choice: {shared[0][1]}")
        _cpu_bf16 = decision
    return _cpu_bf16


def pinned_cpu_bf16() -> Optional[bool]:
    """$COLORLIB_CPU_BF16 as a pinned choice: True (1, true, yes, on), False (0, false, no, off),
    None where it is unset or empty; any other value is a ConfigError, never silently ignored."""
    raw = os.environ.get(CPU_BF16_ENV, "")
    if not raw.strip():
        return None
    if raw.strip().lower() not in PIN_VALUES:
        raise ConfigError(f"${CPU_BF16_ENV}={raw!r} is not valid: use 1 (bf16 autocast on the CPU) or 0 "
                          f"(float32), or unset it to let colorlib decide")
    return PIN_VALUES[raw.strip().lower()]


def _decide_cpu_bf16() -> tuple[bool, str]:
    if not cpu_has_bf16_units():
        return False, "no bf16 units (AVX512-BF16 or AMX): bf16 would be emulated, slower than float32"
    amx = cpu_has_amx()
    if amx:
        return True, "AMX bf16 tiles"
    cpu = "AVX512-BF16 without AMX" if amx is False else "bf16 units, AMX unknown"
    started = time.perf_counter()
    try:
        speedup = calibrate_cpu_bf16()
    except Exception as exc:  # any failure of the probe: the precision that always works
        return False, f"{cpu}; calibration failed ({type(exc).__name__}: {rundir.first_line(exc)})"
    measured = (f"{cpu}; calibrated: bf16 {speedup:.2f}x float32's speed "
                f"({time.perf_counter() - started:.1f} s, 1 thread)")
    if speedup >= CPU_BF16_MIN_SPEEDUP:
        return True, measured
    return False, f"{measured}, below the {CPU_BF16_MIN_SPEEDUP}x that bf16 must gain"


def cpu_has_fast_bf16() -> bool:
    """Whether bf16 autocast pays on this CPU (see cpu_bf16_decision)."""
    return cpu_bf16_decision()[0]


class Autocast:
    """A factory of autocast contexts (`with factory():`) that says which precision it gives
    (`precision`: "bfloat16" or "float32") and why (`reason`)."""

    def __init__(self, device_type: Optional[str], reason: str, **options) -> None:
        self.device_type, self.reason, self.options = device_type, reason, options
        self.precision = "bfloat16" if device_type else "float32"

    def __call__(self):
        if self.device_type is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16, **self.options)

    def __repr__(self) -> str:
        return f"Autocast({self.precision}: {self.reason})"


def autocast_for(device: torch.device) -> Autocast:
    """A factory of bf16 autocast contexts for `device`, or of null contexts where it would not pay."""
    if device.type == "cuda":
        # cache_enabled=False: the weight-cast cache must not outlive a CUDA graph capture
        return Autocast("cuda", "CUDA", cache_enabled=False)
    if device.type == "cpu":
        bf16, reason = cpu_bf16_decision()
        return Autocast("cpu" if bf16 else None, reason)
    return Autocast(None, f"bf16 autocast is used on CUDA and CPUs only, not on {device.type}")


def discriminator_autocast(d_norm: str, autocast):
    """The discriminator's autocast: the run's, but float32 for a spectral-norm D. Spectral
    normalization estimates sigma by power iteration on every forward; under bf16 autocast its
    matrix-vector products round to 8 bits (and the D is small: about a tenth of an iteration's
    arithmetic)."""
    return contextlib.nullcontext if d_norm == "spectral" else autocast
