"""Commands baselines (baselines.py), sweep (packing.py), study (study.py) and bench (bench.py)."""
from __future__ import annotations

from pathlib import Path

from ..paper.config import PRESETS
from ..runs.config import ConfigError
from ._args import DATA_HELP, add_accept_change_arg, add_many_runs_args, add_set_arg, positive_int, set_overrides


def cmd_baselines(args) -> int:
    from ..lab.baselines import run_baselines
    written = run_baselines(args.preset, args.out, args.data, args.methods, args.figures, args.classifier,
                            args.limit, args.device, not args.no_progress, args.accept_change)
    for path in written:
        print(path)
    return 0


def cmd_sweep(args) -> int:
    from ..lab.packing import baselines_plan, expand, load_plan, sweep
    if args.plan and args.baselines:
        raise ConfigError("give a plan file or --baselines, not both")
    if args.plan:
        plan = load_plan(args.plan)
    elif args.baselines:
        plan = baselines_plan(args.methods)
    else:
        raise ConfigError("give a plan file (JSON) or --baselines; see `python -m colorlib sweep --help`")
    preset = args.preset or plan["preset"]
    seeds = list(range(args.seeds)) if args.seeds else list(plan["seeds"])
    out = args.out or plan.get("out") or f"runs/sweep-{preset}"
    if args.pack < 0 or (args.seeds is not None and args.seeds < 1):
        raise ConfigError("--pack must be 0 (all) or more, --seeds at least 1")
    common = {**plan["set"], **set_overrides(args.set)}
    for name in ("data", "device"):
        if getattr(args, name):
            common[name] = getattr(args, name)
    result = many_runs(out, lambda: sweep(expand(plan["methods"], seeds), preset, out, common, args.pack,
                                          not args.no_progress, args.time_budget, args.accept_change))
    for r in result["packs"]:
        print(f"{r['runs']} runs packed: {r['images']} images in {r['seconds']:.1f} s "
              f"({r['images_per_s']:.0f} images/s)")
    print(f"run directories: {out}/<method>/seed<k>")
    return 0


def cmd_study(args) -> int:
    from ..lab.study import run_study
    if args.seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    if args.time_budget is not None and args.time_budget <= 0:
        raise ConfigError("--time-budget must be a positive number of seconds")
    many_runs(args.out, lambda: run_study(args.preset, args.out, args.figures, args.seeds, args.methods, args.data,
                                          args.device, args.time_budget, set_overrides(args.set),
                                          progress=not args.no_progress, test_limit=args.test_limit,
                                          accept_changes=args.accept_change))
    return 0


def many_runs(out, work):
    """`work()` that trains many runs into OUT/<method>/seed<k>: stopped by Ctrl-C, SIGTERM or
    SIGHUP, every unfinished run has been saved where it stopped (packing.train_packed closes them
    all); stopped by the machine (a full disk, ...), the runs that saved a checkpoint keep it. Either
    way the same command continues them."""
    from ..engine.interrupts import TrainingInterrupted, signal_of
    try:
        return work()
    except KeyboardInterrupt as exc:
        raise TrainingInterrupted(f"interrupted: every unfinished run in {out} was saved where it stopped; run the "
                                  f"same command again to continue them", signal_of(exc)) from None
    except OSError as exc:
        kept = sorted(Path(out).glob("*/*/checkpoints/last.pt"))
        if not kept:
            raise
        from ._environment import PartialFailure
        from ._environment import os_error_line
        raise PartialFailure(f"{os_error_line(exc)}. {len(kept)} run(s) in {out} keep their checkpoints: once that "
                             f"is fixed, run the same command again to continue them") from exc


def cmd_bench(args) -> int:
    from ..lab.bench import format_profile, format_table, run_benchmark, run_profile
    overrides = set_overrides(args.set)
    if args.profile:
        result = run_profile(args.preset, args.data, args.device, min(args.train_size, 500), overrides)
        print(format_profile(result))
        return _write_result(result, args.out)
    also = [set_overrides(text.split(",")) for text in args.also]
    result = run_benchmark(args.preset, args.data, args.iters, args.device, args.train_size, overrides,
                           args.with_compile, also, matmul_size=args.matmul_size)
    print(format_table(result))
    return _write_result(result, args.out)


def _write_result(result: dict, out) -> int:
    """The benchmark's or the profile's JSON at `out`, then the line saying where."""
    import json
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def register(sub) -> None:
    from ..lab.baselines import METHODS
    p = sub.add_parser("baselines", help="every baseline and ablation, one seed each (study: several seeds)")
    p.add_argument("--preset", default="quick", help=f"the budget every method gets: {', '.join(PRESETS)}")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--out", required=True, help="folder for one run directory per method")
    p.add_argument("--figures", help="where the table and chart go (default: --out)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), help="a subset (default: all)")
    p.add_argument("--classifier", help="classifier checkpoint (default: the one that ships)")
    p.add_argument("--limit", type=int, help="score a seeded subset of the test split")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    add_accept_change_arg(p, "runs in OUT continue though their images or precision changed (see train)")
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("sweep", help="train many runs at once on one device (methods x seeds)",
                       description="Train several runs side by side on one device. Give a plan file "
                                   "(JSON, see colorlib.lab.packing.load_plan) or --baselines.")
    p.add_argument("plan", nargs="?", help="plan file (JSON)")
    p.add_argument("--baselines", action="store_true", help="the baselines table's methods")
    p.add_argument("--methods", nargs="+", help="with --baselines: a subset")
    p.add_argument("--preset", help=f"budget for every run: {', '.join(PRESETS)} (default: the plan's, else quick)")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 for every method (default: the plan's, else 1)")
    p.add_argument("--out", help="folder of run directories, OUT/<method>/seed<k> (default: the plan's)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--pack", type=int, default=0, help="runs trained at once (default: all)")
    p.add_argument("--time-budget", type=float, help="seconds; runs stop at the first epoch end past it")
    add_accept_change_arg(p, "runs in OUT continue though their images or precision changed (see train)")
    add_many_runs_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("study", help="every method x seeds packed on one device, scored and aggregated")
    p.add_argument("--preset", default="paper", help=f"budget for every run: {', '.join(PRESETS)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="+", choices=list(METHODS), help="a subset (default: all)")
    p.add_argument("--out", default="runs/study", help="run directories, OUT/<method>/seed<k>")
    p.add_argument("--figures", default="figures/study", help="metrics.json, metrics.md, frontier.png, ...")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--device", default="auto")
    p.add_argument("--time-budget", type=float, help="seconds for the whole study; epochs are fitted to it")
    p.add_argument("--test-limit", type=int, help="score a seeded subset of the test split (rehearsals)")
    add_accept_change_arg(p, "runs in OUT continue though their images or precision changed (see train)")
    add_many_runs_args(p)
    p.set_defaults(func=cmd_study)

    register_bench(sub)


def register_bench(sub) -> None:
    p = sub.add_parser("bench", help="training/inference speed of colorlib vs a tutorial-style loop")
    p.add_argument("--preset", default="paper", help=f"whose networks to time: {', '.join(PRESETS)}")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--iters", type=positive_int, help="timed iterations per loop (default 300 on GPU, 20 on CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--train-size", type=positive_int, default=5000, help="training images held in memory")
    add_set_arg(p, help=None)
    p.add_argument("--also", action="append", default=[], metavar="FIELD=VALUE[,FIELD=VALUE]",
                   help="also time the trainer with these settings, side by side (e.g. amp=false, threads=1)")
    p.add_argument("--with-compile", action="store_true",
                   help="also time the trainer with torch.compile (compilation takes a minute or so)")
    p.add_argument("--matmul-size", type=positive_int, metavar="N",
                   help="side of the square matrices whose product gives the device's bf16 and float32 "
                        "TFLOP/s ceiling (default 4096 on a GPU, 2048 otherwise)")
    p.add_argument("--profile", action="store_true",
                   help="instead of the timing: where one training iteration goes (torch.profiler's top "
                        "operators, and each convolution layer's time and GFLOP/s through oneDNN and as matmuls)")
    p.add_argument("--out", default="bench.json", help="where the results go, as JSON (default: bench.json)")
    p.set_defaults(func=cmd_bench)
