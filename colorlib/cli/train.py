"""Commands train, figures and pack (training.py, plots.py, data.py)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..runs.config import ConfigError, make_config
from ._args import add_accept_change_arg, add_config_args, config_overrides


def cmd_train(args) -> int:
    import warnings

    from ..runs import rundir
    from ..engine.interrupts import TrainingInterrupted, signal_of
    from ..engine.resume import run_config
    from ..engine.trainer import train
    from ..lab.validation import validator_for
    overrides = config_overrides(args)
    run_dir = args.run_dir or f"runs/{args.preset}"
    if args.accept_change and not args.resume:
        raise ConfigError("--accept-change is for --resume: a new run has nothing to change")
    show = warnings.showwarning

    def note_repairs(message, category, *rest, **kwargs):  # a repaired file: one line, not a warning dump
        if issubclass(category, rundir.RunDirRepaired):
            print(f"note: {message}", file=sys.stderr)
        else:
            show(message, category, *rest, **kwargs)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", rundir.RunDirRepaired)
            warnings.showwarning = note_repairs
            if args.resume:  # the run's own config, with only what was asked for changed (resume.run_config)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rundir.RunDirRepaired)  # said once, by the Trainer
                    cfg, _ = run_config(run_dir, overrides=overrides, resume=True)
            else:
                cfg = make_config(args.preset, **overrides)
            out = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress,
                        epoch_lines=args.no_progress, validator=validator_for, accept_changes=args.accept_change)
    except KeyboardInterrupt as exc:  # TrainingInterrupted says what the run directory keeps
        if not isinstance(exc, TrainingInterrupted) and rundir.is_run_dir(run_dir):  # loading data, building
            raise TrainingInterrupted(f"interrupted before training began; continue the run in {run_dir} "
                                      f"with --resume", signal_of(exc)) from None
        raise
    except OSError as exc:  # the machine stopped it (disk full, ...): what the run keeps, if anything
        kept = kept_by_run(run_dir)
        if kept:
            from ._environment import PartialFailure
            from ._environment import os_error_line
            raise PartialFailure(f"{os_error_line(exc)}. {kept}") from exc
        raise
    if os.environ.get("RANK", "0") == "0":
        print(f"run directory: {out}")
    return 0


def kept_by_run(run_dir) -> str:
    """What a run directory keeps after training stopped on an error, from its run.json ("" where
    it holds no checkpoint)."""
    import json
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if not last.is_file():
        return ""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        info = {}
    held = f"{info.get('epochs_done', '?')} of {info.get('epochs', '?')} epochs"
    if info.get("iteration_in_epoch"):
        held += f" and {info['iteration_in_epoch']} iterations of epoch {info.get('epochs_done', 0) + 1}"
    return f"{last} keeps {held}: once that is fixed, continue with --resume"


def cmd_figures(args) -> int:
    import warnings

    from ..lab.plots import save_figures
    from ..runs.rundir import RunDirRepaired, RunDirWarning
    before = files_in(Path(args.out))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunDirWarning)
        warnings.simplefilter("always", RunDirRepaired)
        try:
            written = save_figures(args.run_dir, args.out, args.sample_epochs)
        except OSError as exc:  # a full disk after some figures: those are kept, exit 1 (none: exit 2)
            made = [name for name, stamp in files_in(Path(args.out)).items() if before.get(name) != stamp]
            if not made:
                raise
            from ._environment import PartialFailure, os_error_line
            raise PartialFailure(f"{os_error_line(exc)}. {len(made)} figure file(s) written to {args.out} before "
                                 f"it are kept; run the same command again to write them all") from exc
    for path in written:
        print(path)
    damaged = [w for w in caught if issubclass(w.category, RunDirWarning)]
    repaired = [w for w in caught if issubclass(w.category, RunDirRepaired)]
    for message in dict.fromkeys(str(w.message) for w in repaired):  # rebuilt from last.pt: nothing is lost
        print(f"note: {message}", file=sys.stderr)
    for w in caught:
        if w not in damaged and w not in repaired:  # anything else is shown as Python would have shown it
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for message in dict.fromkeys(str(w.message) for w in damaged):  # each damaged file once
        print(f"warning: {message}", file=sys.stderr)
    return 1 if damaged else 0


def files_in(out: Path) -> dict[str, tuple[int, int]]:
    """The files in `out` (not the hidden temporaries of atomic writes) and their (mtime_ns, size):
    what `figures` wrote is what differs between two of these."""
    try:
        return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()
                if p.is_file() and not p.name.startswith(".")}
    except OSError:
        return {}


def cmd_pack(args) -> int:
    from ..runs.data import pack_folder
    counts = pack_folder(args.data, args.out)
    print(f"packed {counts} images into {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a GAN colorizer into a run directory")
    add_config_args(p)
    p.add_argument("--run-dir", help="where the run is written (default runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    add_accept_change_arg(p, "with --resume: continue although the training images (data) or the precision "
                             "(bf16/float32) differ from those the run was trained with; the run is then no "
                             "longer exact, and run.json says so")
    p.add_argument("--no-progress", action="store_true", help="one log line per epoch instead of a progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("figures", help="the paper's figures from a run directory, without retraining",
                       description="The paper's figures from a run directory. Damaged sample images are "
                                   "named and left out (exit status 1); every file is written whole or not "
                                   "at all.")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="folder for the PNG figures and provenance.json")
    p.add_argument("--sample-epochs", type=int, nargs="+", metavar="EPOCH",
                   help="epochs of the sample grids (default: four spread over the run; the paper shows 10 34 61)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("pack", help="bundle a train/test image folder into one file")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_pack)
