"""Trained generators from checkpoint files: what evaluation, colorize and the notebooks load.

The file formats and their checks live in rundir.py (`load_checkpoint`); this module turns a
`generator.pt`, a `last.pt`, a `best.pt` or a run directory into a generator ready to run, without
the trainer.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..runs import rundir
from ..runs.config import config_from_dict
from ..variants import build_generator


def state_dict_mismatch(exc: Exception) -> str:
    """The informative lines of load_state_dict's error ("size mismatch for ...", "Missing key(s) ...")."""
    lines = [line.strip() for line in str(exc).splitlines()[1:3] if line.strip()]
    return "; ".join(lines)[:300] or rundir.first_line(exc)


def load_generator(path, device: str | torch.device = "cpu"):
    """A trained generator (eval mode) and its Config, from generator.pt, last.pt or a run directory."""
    path = Path(path)
    if path.is_dir():
        path = run_checkpoint(path, ("generator.pt", "last.pt"))
    return generator_from_checkpoint(rundir.load_checkpoint(path), path, device)


def run_checkpoint(run_dir: Path, names: tuple[str, ...]) -> Path:
    """The first of `names` that RUN/checkpoints holds; RunDirError naming them all when none."""
    for name in names:
        if (run_dir / "checkpoints" / name).exists():
            return run_dir / "checkpoints" / name
    raise rundir.RunDirError(f"{run_dir} holds no checkpoint (checkpoints/{' or '.join(names)})")


def generator_from_checkpoint(ckpt: dict, path, device: str | torch.device = "cpu"):
    """The generator (eval mode) and Config of a checkpoint already read by rundir.load_checkpoint
    (for callers that also want its other fields, such as the epoch of a best.pt)."""
    cfg = config_from_dict(ckpt["config"])
    G = build_generator(cfg)
    try:  # a training checkpoint of a run that kept an EMA generator: that one is the result
        G.load_state_dict(ckpt.get("generator_ema", ckpt["generator"]))
    except RuntimeError as exc:
        raise rundir.RunDirError(f"checkpoint {path} does not fit the generator its config describes "
                                 f"({state_dict_mismatch(exc)})") from None
    return G.to(device).eval(), cfg
