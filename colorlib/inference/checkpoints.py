"""Trained generators from checkpoint files: what evaluation, colorize and the notebooks load.

The file formats and their checks live in rundir.py (`load_checkpoint`); this module turns a
`generator.pt`, a `last.pt`, a `best.pt` or a run directory into a generator ready to run, without
the trainer. Every file is read through `rundir.load_weights_file`, which first checks the zip
records' CRC-32 that `torch.load` skips (`rundir.check_zip`: bytes flipped by a bad copy or disk are
named, not loaded as wrong weights; the same check covers last.pt on resume, the classifier and data
packs). One more check here: a generator with NaN or infinite weights (a diverged run) writes black
photos, so `generator_from_checkpoint` refuses it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..runs import rundir
from ..runs.config import config_from_dict
from ..variants import build_generator
from . import vividness


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
    weights = ckpt.get("generator_ema", ckpt["generator"])  # a run that kept an EMA generator: that one
    refuse_non_finite(weights, path)
    try:
        G.load_state_dict(weights)
    except RuntimeError as exc:
        raise rundir.RunDirError(f"checkpoint {path} does not fit the generator its config describes "
                                 f"({rundir.state_dict_mismatch(exc)})") from None
    vividness.attach(G, vividness.from_checkpoint(ckpt, path))  # its dial, so scores use the command's default
    return G.to(device).eval(), cfg


def refuse_non_finite(weights: dict, path) -> None:
    """RunDirError naming the file when a floating-point tensor of a state dict holds NaN, or
    infinity anywhere but in a batch norm's running variance (a run that diverged, or a damaged
    file: such a generator colours every photo black). A variance of +inf is what float16 makes of
    one above 65,504 (the shipped generator has three such channels); batch norm then maps that
    channel to its bias, a finite output, so it is kept."""
    bad = [name for name, value in weights.items() if isinstance(value, torch.Tensor)
           and value.is_floating_point() and not _finite_enough(name, value)]
    if bad:
        raise rundir.RunDirError(f"checkpoint {str(path)!r} holds non-finite weights (NaN or infinity) in "
                                 f"{len(bad)} of {len(weights)} tensors, first {bad[0]!r}: the run diverged or the "
                                 f"file is damaged. Use another checkpoint or retrain.")


def _finite_enough(name: str, value: torch.Tensor) -> bool:
    finite = value.isfinite()
    if bool(finite.all()):
        return True
    return name.endswith("running_var") and bool((value[~finite] == float("inf")).all())
