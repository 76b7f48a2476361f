"""Trained generators from checkpoint files (read weights only, never unpickled code).

A file is untrusted: its config is checked against its tensors' shapes on the meta device before the
generator is built, so a 100 KB file asking for g_width=100000 is refused instead of allocating terabytes.
NaN or infinite weights (a diverged run) would write black photos, so they are refused too.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from ..runs import rundir
from ..runs.config import config_from_dict
from ..variants import build_generator
from ..variants.cifar_classifier import shape_mismatch
from . import vividness

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "generator.pt"


def load_generator(path=None, device: str | torch.device = "cpu"):
    """(generator in eval mode, Config) from a checkpoint file or a run directory; None: the shipped one."""
    path = Path(DEFAULT_CHECKPOINT if path is None else path)
    if path.is_dir():
        path = run_checkpoint(path, ("generator.pt", "last.pt"))
    return generator_from_checkpoint(rundir.load_checkpoint(path), path, device)


load_model = load_generator  # the name colorize and the notebooks use


def run_checkpoint(run_dir: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (run_dir / "checkpoints" / name).exists():
            return run_dir / "checkpoints" / name
    raise rundir.RunDirError(f"{run_dir} holds no checkpoint (checkpoints/{' or '.join(names)})")


def generator_from_checkpoint(ckpt: dict, path, device: str | torch.device = "cpu"):
    """The generator (eval mode) and Config of a checkpoint already read by rundir.load_checkpoint."""
    cfg = config_from_dict(ckpt["config"])
    weights = ckpt.get("generator_ema", ckpt["generator"])  # a run that kept an EMA generator: that one
    with torch.device("meta"), warnings.catch_warnings():  # shapes only: nothing is allocated
        warnings.simplefilter("ignore")  # (FAN's classifier weights are copied into meta tensors: a no-op)
        problem = shape_mismatch(build_generator(cfg).state_dict(), weights)
    if problem:
        raise rundir.RunDirError(f"checkpoint {str(path)!r} does not fit the generator its config describes "
                                 f"({problem}); use another checkpoint or retrain")
    refuse_non_finite(weights, path)
    G = build_generator(cfg)
    G.load_state_dict(weights)
    stored = ckpt.get(vividness.CHECKPOINT_KEY)  # its dial's calibration, carried by the loaded generator
    calibration = None if stored is None else vividness.from_dict(stored, f"checkpoint {str(path)!r}")
    setattr(G, vividness.ATTRIBUTE, calibration)
    return G.to(device).eval(), cfg


def refuse_non_finite(weights: dict, path) -> None:
    """RunDirError when a floating-point tensor holds NaN, or infinity anywhere but in a batch norm's
    running variance: float16 makes +inf of a variance above 65,504 (the shipped generator has three
    such channels), and batch norm then maps that channel to its bias, a finite output."""
    bad = [name for name, value in weights.items() if value.is_floating_point()
           and not bool((value.isfinite() | ((value == math.inf) & name.endswith("running_var"))).all())]
    if bad:
        raise rundir.RunDirError(f"checkpoint {str(path)!r} holds non-finite weights (NaN or infinity) in {len(bad)} "
                                 f"tensors, first {bad[0]!r}: the run diverged; use another checkpoint or retrain")
