"""Commands train and figures."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..runs.config import ConfigError, make_config
from ._args import add_accept_change_arg, add_config_args, config_overrides
from ._environment import PartialFailure, one_line_warning, os_error_line


def cmd_train(args) -> int:
    from ..engine.resume import run_config
    from ..engine.trainer import train
    from ..lab.validation import validator_for
    overrides = config_overrides(args)
    run_dir = args.run_dir or f"runs/{args.preset or 'quick'}"
    if args.accept_change and not args.resume:
        raise ConfigError("--accept-change is for --resume: a new run has nothing to change")
    if args.resume and args.preset:  # a preset given must be the run's own (resume.run_config refuses another)
        overrides["preset"] = args.preset
    try:  # a resumed run keeps its own config, with only what was asked for changed
        cfg = run_config(run_dir, overrides=overrides, resume=True)[0] if args.resume else \
            make_config(args.preset or "quick", **overrides)
        out = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress, epoch_lines=args.no_progress,
                    validator=validator_for, accept_changes=args.accept_change)
    except OSError as exc:  # the machine stopped it (disk full, ...): the last checkpoint is kept
        last = Path(run_dir) / "checkpoints" / "last.pt"
        if last.is_file():
            raise PartialFailure(f"{os_error_line(exc)}. {last} is kept: once that is fixed, continue with "
                                 f"--resume") from exc
        raise
    print(f"run directory: {out}")
    return 0


def cmd_figures(args) -> int:
    from ..lab.plots import save_figures
    out = Path(args.out)
    before = files_in(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            written = save_figures(args.run_dir, out, args.sample_epochs)
        except OSError as exc:  # a full disk after some figures: those are kept, exit 1 (none: exit 2)
            made = [name for name, stamp in files_in(out).items() if before.get(name) != stamp]
            if not made:
                raise
            raise PartialFailure(f"{os_error_line(exc)}. {len(made)} figure file(s) written to {out} before it "
                                 f"are kept; run the same command again to write them all") from exc
    for path in written:
        print(path)
    for w in caught:
        one_line_warning(w.message, w.category, w.filename, w.lineno)
    return 1 if any(w.category.__name__ == "RunDirWarning" for w in caught) else 0  # a damaged sample was left out


def files_in(out: Path) -> dict[str, tuple[int, int]]:
    """The files in `out` (not the hidden temporaries of atomic writes) with their (mtime_ns, size)."""
    try:
        return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()
                if p.is_file() and not p.name.startswith(".")}
    except OSError:
        return {}


def register(sub) -> None:
    p = sub.add_parser("train", help="train a GAN colorizer into a run directory")
    add_config_args(p)
    p.add_argument("--run-dir", help="where the run is written (default runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    add_accept_change_arg(p, "with --resume: continue although the training images (data) or the precision "
                             "differ from the run's; the run is then no longer exact, and run.json says so")
    p.add_argument("--no-progress", action="store_true", help="one log line per epoch instead of a progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("figures", help="the paper's figures from a run directory, without retraining",
                       description="The paper's figures from a run directory. Damaged sample images are named "
                                   "and left out (exit status 1); every file is written whole or not at all.")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="folder for the PNG figures and provenance.json")
    p.add_argument("--sample-epochs", type=int, nargs="+", metavar="EPOCH",
                   help="epochs of the sample grids (default: four spread over the run; the paper shows 10 34 61)")
    p.set_defaults(func=cmd_figures)
