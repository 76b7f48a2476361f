"""The one rule for continuing a run: its config.json wins; the caller may change only RESUMABLE_FIELDS."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..runs import rundir
from ..runs.config import RESUMABLE_FIELDS, Config, ConfigError


def run_config(run_dir, cfg: Config | None = None, overrides: dict | None = None,
               resume: bool | str = False) -> tuple[Config, bool]:
    """(the configuration a training into `run_dir` uses, whether it continues the run there).
    resume=False: a new run of `cfg` (with `overrides`) where no run, nor files of one, is. resume=True:
    the run in `run_dir` continues under its config.json; `cfg` and `overrides` may differ from it only
    in RESUMABLE_FIELDS, which they change; any other difference, the preset included, is a ConfigError
    naming it. resume="auto": True where `run_dir` holds a run, else False."""
    if resume not in (False, True, "auto"):
        raise ValueError(f"resume must be False, True or 'auto', not {resume!r}")
    run_dir, overrides = Path(run_dir), dict(overrides or {})
    exists = rundir.is_run_dir(run_dir)
    if resume == "auto":
        resume = exists
    if not resume:
        if cfg is None:
            raise ConfigError(f"a new run in {run_dir} needs a configuration (cfg)")
        if exists:
            raise rundir.RunDirError(f"{run_dir} already holds a run; pass --resume (resume=True) to continue it "
                                     f"(--epochs N to train it longer), or choose another run directory")
        if found := [name for name in rundir.RUN_FILES if (run_dir / name).is_file()]:
            raise rundir.RunDirError(f"{run_dir} holds files of a run ({', '.join(found)}) but no config.json; "
                                     f"choose another run directory")
        return dataclasses.replace(cfg, **overrides), False
    if not exists:
        raise rundir.RunDirError(f"cannot resume: {run_dir} holds no run (no config.json); start a new run "
                                 f"there without --resume")
    saved = rundir.read_config(run_dir)
    asked = {**(cfg.to_dict() if cfg is not None else {}), **overrides}
    changed = sorted(k for k, v in asked.items() if k not in RESUMABLE_FIELDS and v != getattr(saved, k))
    if "preset" in changed:  # the preset's other fields follow from it
        changed = ["preset"]
    if changed:
        differ = ", ".join(f"{k}={asked[k]!r} (the run has {getattr(saved, k)!r})" for k in changed)
        keep = " and ".join("the preset" if k == "preset" else k for k in changed)
        raise ConfigError(f"cannot continue {run_dir} with {differ}: only {', '.join(sorted(RESUMABLE_FIELDS))} "
                          f"may change; start a new run directory, or keep {keep} as the run has it")
    kept = {k: v for k, v in asked.items() if k in RESUMABLE_FIELDS}
    return dataclasses.replace(saved, **kept), True
