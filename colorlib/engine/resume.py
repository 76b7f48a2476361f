"""Which configuration a training into a run directory uses, and whether it continues the run there."""
from __future__ import annotations

from pathlib import Path

from ..runs import rundir
from ..runs.config import RESUMABLE_FIELDS, Config, ConfigError, config_from_dict


def run_config(run_dir, cfg: Config | None = None, overrides: dict | None = None,
               resume: bool | str = False, *, main_process: bool = True) -> tuple[Config, bool]:
    """The configuration a training into `run_dir` uses, and whether it continues the run there:
    (config, resuming). Every way in (`Trainer`, `train`, the command line's `train --resume`,
    `baselines.run_baselines`, `packing.make_trainers`) decides by these rules.

    resume=False, a new run: `cfg` (required) with `overrides` applied. A directory that already
    holds a run (RUN/config.json) is refused (`rundir.RunDirError`), nothing overwritten.

    resume=True, continue the run in `run_dir`: it must hold one (else `rundir.RunDirError`).
    The run's own config.json wins. Only the fields in RESUMABLE_FIELDS (length, device, speed
    and bookkeeping options, where the data are read from) may change, taken from `cfg` when
    given and then from `overrides`; any other field of theirs that differs from config.json
    (a maths field: lr, norm, seed, ...) is refused with a `ConfigError` naming it ("preset" is
    a label and is never compared). With neither, the run continues exactly as configured.

    resume="auto": as resume=True when `run_dir` holds a run, with `cfg` ignored (it describes
    only a new run): loops over many runs (baselines, sweeps) continue each as it was planned,
    including epochs a packed sweep fitted to its time budget; `overrides` still apply. As
    resume=False otherwise.

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
    if resume == "auto":
        resume, cfg = exists, (None if exists else cfg)
    if not resume:
        if cfg is None:
            raise ConfigError(f"a new run in {run_dir} needs a configuration (cfg)")
        if exists and main_process:
            info = rundir.read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
            raise rundir.RunDirError(
                f"{run_dir} already holds a run ({info.get('epochs_done', '?')} of "
                f"{info.get('epochs', '?')} epochs, status {info.get('status', 'unknown')}). Pass --resume "
                f"(resume=True) to continue it, or choose another run directory; nothing was overwritten.")
        return (config_from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg), False
    if not exists:
        raise rundir.RunDirError(f"cannot resume: {run_dir} holds no run (no config.json). "
                                 f"Start a new run there without --resume.")
    saved = rundir.read_config(run_dir)
    asked = {**(cfg.to_dict() if cfg is not None else {}), **overrides}
    changed = sorted(k for k, v in asked.items()
                     if k != "preset" and k not in RESUMABLE_FIELDS and v != getattr(saved, k))
    if changed:
        raise ConfigError(f"cannot resume {run_dir} with different {', '.join(changed)}: "
                          f"only {', '.join(sorted(RESUMABLE_FIELDS))} may change. "
                          f"Start a new run directory for a different configuration.")
    kept = {k: v for k, v in asked.items() if k in RESUMABLE_FIELDS}
    return (config_from_dict({**saved.to_dict(), **kept}) if kept else saved), True
