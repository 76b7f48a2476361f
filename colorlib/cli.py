"""Command line: `python -m colorlib COMMAND ...`, for machines without Jupyter.

    python -m colorlib train --preset quick --data PATH --run-dir runs/quick
    python -m colorlib train --run-dir runs/quick --resume --epochs 10
    python -m colorlib figures --run-dir runs/quick --out figures/quick
    python -m colorlib pack --data PATH --out cifar10.pt
    python -m colorlib evaluate --run-dir runs/quick          (metrics.py)
    python -m colorlib compare runs/a runs/b --out DIR        (metrics.py)
    python -m colorlib train-classifier --out FILE.pt         (classifier.py, via metrics.py)
    python -m colorlib baselines --preset quick --out DIR     (baselines.py)
    python -m colorlib colorize PHOTOS... -o OUTDIR           (colorize.py)
    python -m colorlib sweep PLAN.json                        (packing.py: many runs at once)
    python -m colorlib study --preset paper --seeds 3         (study.py: the whole comparison)
    python -m colorlib bench --preset paper                   (bench.py)

Exit status: 0 success, 1 partial failure (some photos or figures could not be made, training
diverged), 2 bad input (nothing was written), 130 interrupted with Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import sys

# only light modules here: `colorlib` starts without importing PyTorch, so Ctrl-C while the
# heavy modules load is answered by main() like any other interruption
from .config import FIELD_NAMES, PRESETS, ConfigError, config_from_dict, make_config, parse_override

INTERRUPTED = "interrupted (Ctrl-C)"




def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help=f"run size: {', '.join(PRESETS)} (default quick)")
    p.add_argument("--data", help="data folder or pack (default: $COLORLIB_DATA, else download CIFAR-10)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override any config field, repeatable; fields: "
                        f"{', '.join(n for n in FIELD_NAMES if n != 'preset')} (the preset: --preset)")


def _config_overrides(args) -> dict:
    overrides = dict(parse_override(s) for s in args.set)
    for name in ("data", "epochs", "device", "seed"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return overrides


def cmd_train(args) -> int:
    import warnings

    from . import rundir
    from .training import TrainingInterrupted, train
    overrides = _config_overrides(args)
    run_dir = args.run_dir or f"runs/{args.preset}"
    if args.resume:  # the run's own config, with only what was asked for changed
        cfg = None
        if overrides and rundir.is_run_dir(run_dir):
            cfg = config_from_dict({**rundir.read_config(run_dir).to_dict(), **overrides})
    else:
        cfg = make_config(args.preset, **overrides)
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
            out = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress,
                        epoch_lines=args.no_progress)
    except TrainingInterrupted as exc:  # says what the run directory keeps
        print(str(exc), file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before training began: loading data, building the networks
        if rundir.is_run_dir(run_dir):
            print(f"interrupted before training began; continue the run in {run_dir} with --resume",
                  file=sys.stderr)
        else:
            print(INTERRUPTED, file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":
        print(f"run directory: {out}")
    return 0


def cmd_figures(args) -> int:
    import warnings

    from .plots import save_figures
    from .rundir import RunDirRepaired, RunDirWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunDirWarning)
        warnings.simplefilter("always", RunDirRepaired)
        written = save_figures(args.run_dir, args.out, args.sample_epochs)
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


def cmd_pack(args) -> int:
    from .data import pack_folder
    counts = pack_folder(args.data, args.out)
    print(f"packed {counts} images into {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a GAN colorizer into a run directory")
    _add_config_args(p)
    p.add_argument("--run-dir", help="where the run is written (default runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
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

    # commands that live with their concept's module register themselves here
    from . import baselines, bench, colorize, metrics, packing, study
    for module in (colorize, metrics, baselines, packing, study, bench):
        module.register_cli(sub)
    return parser


def main(argv=None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    try:
        from .data import DataError
        from .rundir import RunDirError
        from .training import TrainingDiverged
        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except (ConfigError, DataError, RunDirError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except TrainingDiverged as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:  # also while PyTorch is still being imported
        print(INTERRUPTED, file=sys.stderr)
        return 130
