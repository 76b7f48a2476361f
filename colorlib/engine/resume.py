"""Which configuration a training into a run directory uses, and whether it continues the run there."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..runs import rundir
from ..runs.config import RESUMABLE_FIELDS, Config, ConfigError, config_from_dict


def run_config(run_dir, cfg: Config | None = None, overrides: dict | None = None,
               resume: bool | str = False, *, main_process: bool = True) -> tuple[Config, bool]:
    """The configuration a training into `run_dir` uses, and whether it continues the run there:
    (config, resuming). Every way in (`Trainer`, `train`, the command line's `train --resume`,
    `baselines.run_baselines`, `packing.make_trainers`) decides by these rules.

    resume=False, a new run: `cfg` (required) with `overrides` applied. A directory that already
    holds a run (RUN/config.json) is refused (`rundir.RunDirError`), nothing overwritten; so is
    one that holds files of a run without its config.json (`rundir.run_files_found`: last.pt,
    history.csv, samples, ...), which a new run would overwrite.

    resume=True, continue the run in `run_dir`: it must hold one (else `rundir.RunDirError`).
    The run's own config.json wins; where config.json is missing but checkpoints/last.pt is
    there, the configuration last.pt holds is used (and written back to config.json when training
    starts), with a `rundir.RunDirRepaired` warning. Only the fields in RESUMABLE_FIELDS (length,
    device, speed and bookkeeping options, where the data are read from) may change, taken from
    `cfg` when given and then from `overrides`; any other field of theirs that differs from
    config.json (a maths field: lr, norm, seed, ...) is refused with a `ConfigError` naming it
    ("preset" is a label and is never compared). With neither, the run continues exactly as configured.

    resume="auto": as resume=True when `run_dir` holds a run (or a last.pt to restore its config
    from), with `cfg` ignored (it describes only a new run): loops over many runs (baselines,
    sweeps) continue each as it was planned, including epochs a packed sweep fitted to its time
    budget; `overrides` still apply. As resume=False otherwise.

    A run stopped before its first checkpoint has a config.json but no last.pt: resuming it
    starts it over from its first iteration with that configuration. What the checkpoint holds
    is checked by the Trainer when it loads it: a missing last.pt that run.json says was written
    is an error, and `epochs` cannot be planned below what the checkpoint already holds.

    main_process=False (the other ranks of a torchrun job) skips the refusal of an existing
    directory for a new run: rank 0 may already have written it."""
    if resume not in (False, True, "auto"):
        raise ValueError(f"resume must be False, True or 'auto', not {resume!r}")
    run_dir = Path(run_dir)
    overrides = dict(overrides or {})
    exists = rundir.is_run_dir(run_dir)
    found = [] if exists else rundir.run_files_found(run_dir)
    if resume == "auto":
        resume = exists or "checkpoints/last.pt" in found
        cfg = None if resume else cfg
    if not resume:
        if cfg is None:
            raise ConfigError(f"a new run in {run_dir} needs a configuration (cfg)")
        if main_process:
            refuse_a_new_run(run_dir, exists, found)
        return (config_from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg), False
    saved = saved_config(run_dir) if exists else config_from_checkpoint(run_dir, found)
    asked = {**(cfg.to_dict() if cfg is not None else {}), **overrides}
    changed = sorted(k for k, v in asked.items()
                     if k != "preset" and k not in RESUMABLE_FIELDS and v != getattr(saved, k))
    if changed:
        raise ConfigError(f"cannot resume {run_dir} with different {', '.join(changed)}: "
                          f"only {', '.join(sorted(RESUMABLE_FIELDS))} may change. "
                          f"Start a new run directory for a different configuration.")
    kept = {k: v for k, v in asked.items() if k in RESUMABLE_FIELDS}
    return (config_from_dict({**saved.to_dict(), **kept}) if kept else saved), True


def refuse_a_new_run(run_dir: Path, exists: bool, found: list[str]) -> None:
    """A new run never overwrites a run: a RunDirError for a directory that holds one, or holds
    files of one without its config.json, saying what to do instead."""
    if exists:
        info = rundir.read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
        longer = (" (to train it longer: --resume --epochs N)" if info.get("status") == "finished" else "")
        raise rundir.RunDirError(
            f"{run_dir} already holds a run ({info.get('epochs_done', '?')} of "
            f"{info.get('epochs', '?')} epochs, status {info.get('status', 'unknown')}). Pass --resume "
            f"(resume=True) to continue it{longer}, or choose another run directory; nothing was overwritten.")
    if found:
        what = ("To continue that run, pass --resume (resume=True): its configuration is restored from "
                "checkpoints/last.pt. To start a new run, choose another run directory."
                if "checkpoints/last.pt" in found else
                "Choose another run directory, or move those files out of this one first.")
        raise rundir.RunDirError(f"{run_dir} holds files of a run ({describe(found)}) but no config.json: a "
                                 f"new run there would overwrite them, so nothing was written. {what}")


def saved_config(run_dir: Path) -> Config:
    """RUN/config.json; where it is damaged (not JSON, or not a valid configuration) and the run has
    a last.pt, the configuration last.pt holds (training keeps the damaged file: keep_damaged_config)."""
    try:
        return rundir.read_config(run_dir)
    except (rundir.RunDirError, ConfigError) as exc:
        damaged = exc
    found = rundir.run_files_found(run_dir)
    if "checkpoints/last.pt" not in found:
        raise rundir.RunDirError(f"cannot resume {run_dir}: {rundir.first_line(damaged).rstrip('.')}, and there is "
                                 f"no checkpoints/last.pt to restore the configuration from. Start a new run in "
                                 f"another run directory; nothing was changed here.") from None
    return config_from_checkpoint(run_dir, found, why="was damaged")


def keep_damaged_config(run_dir: Path) -> None:
    """Before a resumed run writes config.json anew: a damaged one is moved aside to
    config.json.damaged (or .damaged.N), kept for a look, never overwritten."""
    path = run_dir / "config.json"
    try:
        rundir.read_config(run_dir)
        return
    except (rundir.RunDirError, ConfigError):
        if not path.is_file():
            return
    keep, n = run_dir / "config.json.damaged", 1
    while keep.exists():
        keep, n = run_dir / f"config.json.damaged.{n}", n + 1
    path.rename(keep)


def config_from_checkpoint(run_dir: Path, found: list[str], why: str = "was missing") -> Config:
    """The configuration of a run whose config.json is missing, from the last.pt it holds (with a
    RunDirRepaired warning); a RunDirError saying what to do where there is no usable last.pt."""
    if not found:
        raise rundir.RunDirError(f"cannot resume: {run_dir} holds no run (no config.json). "
                                 f"Start a new run there without --resume.")
    last = run_dir / "checkpoints" / "last.pt"
    if "checkpoints/last.pt" not in found:
        raise rundir.RunDirError(
            f"cannot resume {run_dir}: it holds files of a run ({describe(found)}) but neither config.json nor "
            f"checkpoints/last.pt, so there is nothing to continue from. Start a new run in another run "
            f"directory; nothing was changed here.")
    try:
        ckpt = rundir.load_checkpoint(last, (rundir.CHECKPOINT_FORMAT,))
    except rundir.RunDirError as exc:
        reason = str(exc).split(" Use another checkpoint")[0].rstrip(".")
        raise rundir.RunDirError(f"cannot resume {run_dir}: its config.json {why} and {last} cannot "
                                 f"restore it ({reason}). Start a new run in another run directory; nothing "
                                 f"was changed here.") from None
    kept = " (training keeps the damaged file beside it, as config.json.damaged)" if why == "was damaged" else ""
    warnings.warn(f"{run_dir / 'config.json'} {why}; the run's configuration is restored from {last}{kept}",
                  rundir.RunDirRepaired, stacklevel=3)
    return config_from_dict(ckpt["config"])


def describe(found: list[str], shown: int = 4) -> str:
    names = ", ".join(found[:shown])
    return names + (f" and {len(found) - shown} more" if len(found) > shown else "")
