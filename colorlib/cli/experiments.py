"""Commands sweep and study (study.py), bench (bench.py)."""
from __future__ import annotations

import json
from pathlib import Path

from ..paper.config import PRESETS
from ..runs.config import ConfigError, make_config, refuse_existing
from ._args import DATA_HELP, add_many_runs_args, add_set_arg, positive_int, set_overrides


def cmd_sweep(args) -> int:
    from ..lab.study import baselines_methods, load_plan, train_runs
    if bool(args.plan) == bool(args.baselines):
        raise ConfigError("give a plan file (JSON) or --baselines, one of them; see `python -m colorlib sweep --help`")
    plan = load_plan(args.plan) if args.plan else {"methods": baselines_methods(args.methods), "seeds": [0],
                                                   "preset": "quick", "set": {}}
    preset = args.preset or plan["preset"]
    seeds = range(args.seeds) if args.seeds else plan["seeds"]
    out = args.out or plan.get("out") or f"runs/sweep-{preset}"
    common = {**plan["set"], **set_overrides(args.set),
              **{k: getattr(args, k) for k in ("data", "device") if getattr(args, k)}}
    failed = many_runs(out, lambda: train_runs(plan["methods"], seeds, preset, out, common, not args.no_progress,
                                               accept_changes=args.accept_change))
    print(f"run directories: {out}/<method>/seed<k>" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 0


def cmd_study(args) -> int:
    from ..lab.study import load_plan, run_study
    if args.plan and args.methods:
        raise ConfigError("give a plan file or --methods, not both")
    plan = load_plan(args.plan) if args.plan else {"methods": args.methods, "set": {}, "preset": "paper", "seeds": 3}
    preset, seeds = args.preset or plan["preset"], args.seeds or plan["seeds"]  # as sweep: an option wins
    out = args.out or plan.get("out") or "runs/study"
    many_runs(out, lambda: run_study(preset, out, args.figures, seeds, plan["methods"], args.data, args.device,
                                     {**plan["set"], **set_overrides(args.set)}, progress=not args.no_progress,
                                     test_limit=args.test_limit, accept_changes=args.accept_change))
    return 0


def many_runs(out, work):
    """`work()` that trains runs into OUT/<method>/seed<k>: stopped by a signal or by the machine (a full disk,
    ...), the runs keep what they saved, and the same command continues them."""
    from ..engine.interrupts import TrainingInterrupted, signal_of
    try:
        return work()
    except KeyboardInterrupt as exc:
        raise TrainingInterrupted(f"interrupted: the runs in {out} keep what they trained; run the same command "
                                  f"again to continue", signal_of(exc)) from None
    except OSError as exc:
        kept = sorted(Path(out).glob("*/*/checkpoints/last.pt"))
        if not kept:
            raise
        from ._environment import PartialFailure, os_error_line
        raise PartialFailure(f"{os_error_line(exc)}. {len(kept)} run(s) in {out} keep their checkpoints: once that "
                             f"is fixed, run the same command again to continue them") from exc


def cmd_bench(args) -> int:
    from ..lab.bench import format_table, run_benchmark, run_profile
    from ..runs import rundir
    from ..runs.data import DataError, resolve_source
    if args.out:  # before minutes of timing: earlier results are never replaced
        refuse_existing(args.out)
    cfg = make_config(args.preset, data=args.data, device=args.device, train_size=args.train_size,
                      **set_overrides(args.set))
    if resolve_source(cfg.data) == "cifar10" and not (Path(cfg.data_root) / "cifar-10-batches-py").is_dir():
        raise DataError(f"bench reads CIFAR-10 from {cfg.data_root!r} without downloading it, and it is not there: "
                        f"point --data at a local copy, or download it once with `python -m colorlib train`")
    if args.profile:
        table, result = run_profile(cfg)
        print(table)
    else:
        result = run_benchmark(cfg, args.iters)
        print(format_table(result))
    if args.out:
        rundir.atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def register(sub) -> None:
    from ..lab.baselines import METHODS
    p = sub.add_parser("sweep", help="train many runs, one after another (methods x seeds)",
                       description="Train methods x seeds into OUT/<method>/seed<k>. Give a plan file "
                                   "(JSON, see colorlib.lab.study.load_plan) or --baselines.")
    p.add_argument("plan", nargs="?", help="plan file (JSON)")
    p.add_argument("--baselines", action="store_true", help="the baselines table's methods")
    p.add_argument("--methods", nargs="+", help="with --baselines: a subset")
    p.add_argument("--preset", help=f"budget for every run: {', '.join(PRESETS)} (default: the plan's, else quick)")
    p.add_argument("--seeds", type=positive_int, help="seeds 0..N-1 for every method (default: the plan's, else 1)")
    p.add_argument("--out", help="folder of run directories, OUT/<method>/seed<k> (default: the plan's)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    add_many_runs_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("study", help="every method x seeds trained, scored and aggregated")
    p.add_argument("plan", nargs="?", help="a plan file (JSON, as for sweep): its methods, seeds, preset and out "
                                           "instead of the baselines table's")
    p.add_argument("--preset", help=f"budget for every run: {', '.join(PRESETS)} (default: the plan's, quick "
                                    "if it names none; without a plan, paper)")
    p.add_argument("--seeds", type=positive_int, help="seeds 0..N-1 (default: the plan's, seed 0 if it names "
                                                           "none; without a plan, 3)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), help="a subset (default: all)")
    p.add_argument("--out", help="run directories, OUT/<method>/seed<k> (default: the plan's, else runs/study)")
    p.add_argument("--figures", default="figures/study", help="metrics.json, metrics.md, frontier.png, collapse.png")
    p.add_argument("--device", default="auto")
    p.add_argument("--test-limit", type=int, help="score a seeded subset of the test split (rehearsals)")
    add_many_runs_args(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("bench", help="training speed of colorlib vs a tutorial-style loop")
    p.add_argument("--preset", default="paper", help=f"whose networks to time: {', '.join(PRESETS)}")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--iters", type=positive_int, help="timed iterations per loop (default 300 on GPU, 20 on CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--train-size", type=positive_int, default=5000, help="training images held in memory")
    add_set_arg(p, help=None)
    p.add_argument("--profile", action="store_true", help="instead: torch.profiler's table of a few iterations")
    p.add_argument("--out", help="also write the results as JSON here (never over an existing file)")
    p.set_defaults(func=cmd_bench)
