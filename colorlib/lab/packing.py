"""Packed training: many runs at once on one device, each computing what it would alone.

At the paper's scale (batch 50, 32x32 images) one run leaves a modern GPU mostly idle: each
iteration is a chain of small kernels whose launch latency, not arithmetic, sets the pace.
Running several runs side by side fills the idle units. Three ways were open:

- several processes on one GPU: without NVIDIA MPS their contexts are time-sliced, so their
  kernels never overlap, and every process pays its own CUDA context and data copy;
- one model holding K stacked copies (torch.func.stack_module_state + vmap, or grouped
  convolutions): fast, but only for identical architectures, and batch-norm statistics and
  spectral norm do not vmap cleanly;
- one process, one CUDA stream per run, each run replaying its own CUDA graph (training.py
  captures one whole iteration as a graph): kernels of different runs overlap on the GPU,
  each run keeps its own configuration (method, seed, lambda, architecture), and the host
  issues one graph launch per run and iteration.

We use the third. `Trainer.iterate` yields after every iteration; `train_packed` steps each
run's iterator in turn, inside that run's stream, so the runs advance in lockstep while their
kernels overlap. The data are decoded and put on the device once for the whole pack
(`data_cache`). Every run writes its own ordinary run directory. On a CPU there are no
streams: the runs simply interleave, and each run computes bit for bit what it computes alone
(tests/test_packing.py). On a GPU the same holds up to the GPU's own run-to-run noise.

    python -m colorlib sweep PLAN.json                 # a plan file, see `load_plan`
    python -m colorlib sweep --baselines --seeds 3 --preset smoke --out runs/sweep
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..runs import rundir
from ..runs.config import ConfigError, make_config


@dataclass
class RunSpec:
    """One run of a sweep: a method's overrides on a preset, with a seed."""
    method: str
    seed: int
    overrides: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method}/seed{self.seed}"


def expand(methods: dict[str, dict], seeds: Sequence[int]) -> list[RunSpec]:
    return [RunSpec(m, s, dict(o)) for m, o in methods.items() for s in seeds]


def load_plan(path) -> dict:
    """A sweep plan, JSON:

        {"preset": "paper", "seeds": [0, 1, 2], "out": "runs/sweep",
         "set": {"epochs": 20},                                   # for every run (optional)
         "methods": {"paper": {}, "stable": {"lr": 1e-4}}}        # name -> config overrides

    A method given as a string names a method of the baselines table (baselines.METHODS).
    """
    from .baselines import METHODS
    try:
        plan = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"plan file {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"plan file {str(path)!r} is not readable JSON ({exc}); "
                          f"see `colorlib sweep --help`") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("methods"), (dict, list)):
        raise ConfigError(f"plan file {str(path)!r} needs a \"methods\" object (name -> config overrides)")
    methods = plan["methods"]
    if isinstance(methods, list):
        methods = {m: m for m in methods}
    resolved = {}
    for name, value in methods.items():
        if isinstance(value, str):
            if value not in METHODS:
                raise ConfigError(f"plan method {name!r} names {value!r}, not a baselines method "
                                  f"({', '.join(METHODS)})")
            value = METHODS[value]
        resolved[name] = dict(value)
    plan["methods"] = resolved
    plan.setdefault("seeds", [0])
    plan.setdefault("preset", "quick")
    plan.setdefault("set", {})
    return plan


def baselines_plan(methods: Optional[Sequence[str]] = None) -> dict:
    """The plan of the baselines table (baselines.METHODS, or the named subset): one seed, the quick preset."""
    from .baselines import METHODS
    names = list(methods or METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return {"methods": {m: METHODS[m] for m in names}, "seeds": [0], "preset": "quick", "set": {}}


def make_trainers(specs: Sequence[RunSpec], preset: str, out, common: Optional[dict] = None,
                  progress: bool = False, data_cache: Optional[dict] = None, log=None):
    """A Trainer per spec in OUT/<method>/seed<k>, each resumed if its directory holds a run,
    skipped if that run is finished. Returns (trainers, finished run directories).

    With `log`, a run that cannot start (a configuration error, say) is reported and left out,
    so one bad run does not cost the whole pack its device time."""
    from ..engine.trainer import Trainer
    from .validation import validator_for
    data_cache = {} if data_cache is None else data_cache
    trainers, finished = [], []
    for spec in specs:
        run_dir = Path(out) / spec.method / f"seed{spec.seed}"
        cfg = make_config(preset, **{**(common or {}), **spec.overrides, "seed": spec.seed})
        exists = rundir.is_run_dir(run_dir)
        if exists and rundir.read_run_info(run_dir).get("status") == "finished":
            finished.append(run_dir)
            continue
        try:  # a run already there continues with its own config.json (training.run_config)
            trainers.append(Trainer(cfg, run_dir, resume="auto", progress=progress, data_cache=data_cache,
                                    validator=validator_for))
        except Exception as exc:
            if log is None:
                raise
            log(f"   {spec.name}: cannot start ({type(exc).__name__}: {exc}); left out")
    return trainers, finished


def train_packed(trainers: Sequence, progress: bool = True, time_budget: Optional[float] = None,
                 fit_epochs: bool = False, log=None) -> dict:
    """Train `trainers` side by side until all finish.

    time_budget (seconds): with fit_epochs, once every run has finished its first epoch, the
    planned epochs of all runs are cut to what the budget holds at the measured pace (never
    raised; config.json follows, so each run says how long it really trained). Without
    fit_epochs, or if the pace drops, runs stop at the first epoch end past the budget.
    With `log`, a run that fails (diverges, say) is reported and dropped while the others go on;
    without it the failure propagates.
    Returns throughput figures: runs, images trained, seconds, images per second, epochs, failures.
    """
    if not trainers:
        return {"runs": 0, "images": 0, "seconds": 0.0, "images_per_s": 0.0}
    cuda = trainers[0].device.type == "cuda"
    streams = [torch.cuda.Stream(device=t.device) if cuda else None for t in trainers]
    iterators = [t.iterate() for t in trainers]
    active = list(range(len(trainers)))
    started = time.perf_counter()
    first_epochs = {t.run_dir: t.epoch for t in trainers}
    planned = {t.run_dir: t.cfg.epochs for t in trainers}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        total = sum((t.cfg.epochs - t.epoch) * t.iterations_per_epoch for t in trainers)
        bar = tqdm(total=total, unit="it", desc=f"{len(trainers)} runs packed", dynamic_ncols=True)
    images, steps, fitted, cut, epoch1_at = 0, 0, 0, False, 0.0
    failed: dict[str, str] = {}
    steady_from = None  # (time, images) once every run is past its first epoch: capture, warm-up excluded
    try:
        while active:
            for i in list(active):
                with torch.cuda.stream(streams[i]) if cuda else contextlib.nullcontext():
                    try:
                        next(iterators[i])
                    except StopIteration:
                        active.remove(i)
                        continue
                    except Exception as exc:
                        if log is None:
                            raise
                        why = failed[str(trainers[i].run_dir)] = f"{type(exc).__name__}: {exc}"
                        log(f"   {trainers[i].run_dir}: failed ({why[:300]}); the others go on")
                        active.remove(i)
                        continue
                images += trainers[i].cfg.batch_size
                steps += 1
            if steady_from is None and all(t.epoch > first_epochs[t.run_dir] for t in live(trainers, failed)):
                if cuda:
                    torch.cuda.synchronize()
                steady_from = (time.perf_counter(), images)
            if bar is not None and steps - bar.n >= 50 * len(trainers):
                bar.total = sum(t.cfg.epochs * t.iterations_per_epoch for t in trainers) - \
                    sum(first_epochs[t.run_dir] * t.iterations_per_epoch for t in trainers)
                bar.update(steps - bar.n)
            if time_budget is None:
                continue
            elapsed = time.perf_counter() - started
            runs = live(trainers, failed)
            done_epochs = min((t.epoch - first_epochs[t.run_dir] for t in runs), default=0)
            if fit_epochs and fitted < 2 and done_epochs > fitted:
                # after the first epoch (its pace includes the CUDA-graph captures, so it errs
                # short), then again after the second, at the steady pace, while no run has
                # started a learning-rate decay, so the changed plan is what each run follows
                if fitted == 0:
                    per_epoch = elapsed
                else:
                    per_epoch = elapsed - epoch1_at
                epoch1_at = elapsed
                fitted += 1
                if fitted == 1 or all(t.epoch <= t.cfg.epochs // 2 for t in runs):
                    for t in runs:
                        afford = t.epoch + int((0.95 * time_budget - elapsed) / per_epoch)  # 5% margin
                        t.set_epochs(max(min(afford, planned[t.run_dir]), t.epoch))
            if elapsed > time_budget and not cut:  # finish the epoch in flight, then stop
                cut = True
                for t in live(trainers, failed):
                    if t.epoch < t.cfg.epochs:
                        t.set_epochs(t.epoch + 1)
    finally:
        for it in iterators:
            it.close()
        if bar is not None:
            bar.close()
    if cuda:
        torch.cuda.synchronize()
    now = time.perf_counter()
    seconds = now - started
    steady = math.nan
    if steady_from is not None and images > steady_from[1]:
        steady = (images - steady_from[1]) / (now - steady_from[0])
    return {"runs": len(trainers), "images": images, "seconds": seconds,
            "images_per_s": images / seconds if seconds > 0 else math.nan,
            "steady_images_per_s": steady,
            "epochs": {str(t.run_dir): t.epoch for t in trainers},
            "planned_epochs": {str(k): v for k, v in planned.items()}, "cut_by_budget": cut, "failed": failed}


def live(trainers: Sequence, failed: dict) -> list:
    return [t for t in trainers if str(t.run_dir) not in failed]


def sweep(specs: Sequence[RunSpec], preset: str, out, common: Optional[dict] = None, pack: int = 0,
          progress: bool = True, time_budget: Optional[float] = None) -> dict:
    """Train every spec, `pack` at a time (0: all at once); returns per-pack throughput."""
    specs = list(specs)
    size = pack or len(specs)
    started = time.perf_counter()
    data_cache: dict = {}
    results = []
    for start in range(0, len(specs), size):
        trainers, _ = make_trainers(specs[start:start + size], preset, out, common, data_cache=data_cache)
        left = None if time_budget is None else max(time_budget - (time.perf_counter() - started), 0.0)
        results.append(train_packed(trainers, progress=progress, time_budget=left))
    return {"packs": results}
