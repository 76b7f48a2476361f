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

    A method given as a string names a method of the baselines table (baselines.METHODS). A method's
    name is the folder its runs go in (OUT/<method>/seed<k>): a plain name, never a path. Anything
    else of the wrong kind is a ConfigError naming it.
    """
    try:
        plan = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"plan file {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"plan file {str(path)!r} is not readable JSON ({exc}); "
                          f"see `colorlib sweep --help`") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("methods"), (dict, list)):
        raise ConfigError(f"plan file {str(path)!r} needs a \"methods\" object (name -> config overrides)")
    where = f"plan file {str(path)!r}"
    plan["methods"] = _plan_methods(plan["methods"], where)
    plan.setdefault("seeds", [0])
    plan.setdefault("preset", "quick")
    plan.setdefault("set", {})
    checks = {"seeds": (lambda v: isinstance(v, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                                              for s in v), "a list of whole numbers, e.g. [0, 1, 2]"),
              "preset": (lambda v: isinstance(v, str), "a preset's name, e.g. \"quick\""),
              "set": (lambda v: isinstance(v, dict), "an object of config overrides, e.g. {\"epochs\": 20}"),
              "out": (lambda v: isinstance(v, str) and v != "", "a folder, e.g. \"runs/sweep\"")}
    for key, (ok, expected) in checks.items():
        if key in plan and not ok(plan[key]):
            raise ConfigError(f"{where}: \"{key}\" must be {expected}, not {json.dumps(plan[key])}")
    return plan


def _plan_methods(methods, where: str) -> dict[str, dict]:
    """A plan's "methods" as {name: config overrides}: each name a plain folder name, each value an
    object of overrides or the name of a baselines method."""
    from .baselines import METHODS
    if isinstance(methods, list):
        if not all(isinstance(m, str) for m in methods):
            raise ConfigError(f"{where}: a \"methods\" list must hold baselines method names "
                              f"({', '.join(METHODS)})")
        methods = {m: m for m in methods}
    resolved = {}
    for name, value in methods.items():
        check_run_name(name, where)
        if isinstance(value, str):
            if value not in METHODS:
                raise ConfigError(f"plan method {name!r} names {value!r}, not a baselines method "
                                  f"({', '.join(METHODS)})")
            value = METHODS[value]
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: method {name!r} must be an object of config overrides (e.g. "
                              f"{{\"lr\": 1e-4}}) or the name of a baselines method, not {json.dumps(value)}")
        resolved[name] = dict(value)
    return resolved


def check_run_name(name: str, where: str = "a sweep") -> None:
    """A method's name becomes a folder, OUT/<method>: a ConfigError unless it is one plain name
    (no path separator, not '.' or '..', not empty), so that no run is written outside OUT."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"{where}: method name {name!r} must be a plain folder name (letters, digits, '-', "
                          f"'_', '.'): its runs go in OUT/<method>/seed<k>, never outside OUT")


def baselines_plan(methods: Optional[Sequence[str]] = None) -> dict:
    """The plan of the baselines table (baselines.METHODS, or the named subset): one seed, the quick preset."""
    from .baselines import METHODS
    names = list(methods or METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return {"methods": {m: METHODS[m] for m in names}, "seeds": [0], "preset": "quick", "set": {}}


def make_trainers(specs: Sequence[RunSpec], preset: str, out, common: Optional[dict] = None,
                  progress: bool = False, data_cache: Optional[dict] = None, log=None, accept_changes=()):
    """A Trainer per spec in OUT/<method>/seed<k>, each resumed if its directory holds a run,
    skipped if that run is finished. Returns (trainers, finished run directories).
    accept_changes: what a resumed run may find changed (Trainer's; "data", "precision").

    With `log`, a run that cannot start (a configuration error, say) is reported and left out,
    so one bad run does not cost the whole pack its device time."""
    from ..engine.trainer import Trainer
    from .validation import validator_for
    data_cache = {} if data_cache is None else data_cache
    trainers, finished = [], []
    for spec in specs:
        check_run_name(spec.method)
        run_dir = Path(out) / spec.method / f"seed{spec.seed}"
        cfg = make_config(preset, **{**(common or {}), **spec.overrides, "seed": spec.seed})
        exists = rundir.is_run_dir(run_dir)
        if exists and rundir.read_run_info(run_dir).get("status") == "finished":
            finished.append(run_dir)
            continue
        try:  # a run already there continues with its own config.json (training.run_config)
            trainers.append(Trainer(cfg, run_dir, resume="auto", progress=progress, data_cache=data_cache,
                                    accept_changes=accept_changes,
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
    pack = _Pack(trainers, log)
    bar = _pack_progress_bar(trainers) if progress else None
    try:
        while pack.active:
            pack.step_each()
            pack.note_steady_start()
            if bar is not None and pack.steps - bar.n >= 50 * len(trainers):
                _advance_progress_bar(bar, pack)
            if time_budget is not None:
                pack.keep_to_budget(time_budget, fit_epochs)
    finally:
        pack.close()
        if bar is not None:
            bar.close()
    return pack.throughput()


class _Pack:
    """The state of one packed training (train_packed): each run's iterator and CUDA stream, the
    images trained, the runs that failed, and what the time budget has done to the plan."""

    def __init__(self, trainers: Sequence, log) -> None:
        self.trainers, self.log = trainers, log
        self.cuda = trainers[0].device.type == "cuda"
        self.streams = [torch.cuda.Stream(device=t.device) if self.cuda else None for t in trainers]
        self.iterators = [t.iterate() for t in trainers]
        self.active = list(range(len(trainers)))
        self.started = time.perf_counter()
        self.first_epochs = {t.run_dir: t.epoch for t in trainers}
        self.planned = {t.run_dir: t.cfg.epochs for t in trainers}
        self.images, self.steps, self.fitted, self.cut, self.epoch1_at = 0, 0, 0, False, 0.0
        self.failed: dict[str, str] = {}
        # (time, images) once every run is past its first epoch: capture, warm-up excluded
        self.steady_from: Optional[tuple[float, int]] = None

    def step_each(self) -> None:
        """One iteration of every active run, each in its own stream so the runs' kernels overlap;
        a run that ends leaves the pack, and so does one that fails when there is a log to say so."""
        for i in list(self.active):
            with torch.cuda.stream(self.streams[i]) if self.cuda else contextlib.nullcontext():
                try:
                    next(self.iterators[i])
                except StopIteration:
                    self.active.remove(i)
                    continue
                except Exception as exc:
                    if self.log is None:
                        raise
                    why = self.failed[str(self.trainers[i].run_dir)] = f"{type(exc).__name__}: {exc}"
                    self.log(f"   {self.trainers[i].run_dir}: failed ({why[:300]}); the others go on")
                    self.active.remove(i)
                    continue
            self.images += self.trainers[i].cfg.batch_size
            self.steps += 1

    def note_steady_start(self) -> None:
        """Marks (time, images) the first time every live run is past its first epoch."""
        if self.steady_from is None and all(t.epoch > self.first_epochs[t.run_dir]
                                            for t in live(self.trainers, self.failed)):
            if self.cuda:
                torch.cuda.synchronize()
            self.steady_from = (time.perf_counter(), self.images)

    def keep_to_budget(self, time_budget: float, fit_epochs: bool) -> None:
        """Fits the planned epochs to the budget (with fit_epochs), and once past it lets every run
        finish only the epoch in flight."""
        elapsed = time.perf_counter() - self.started
        runs = live(self.trainers, self.failed)
        done_epochs = min((t.epoch - self.first_epochs[t.run_dir] for t in runs), default=0)
        if fit_epochs and self.fitted < 2 and done_epochs > self.fitted:
            self.fit_plan_to_budget(runs, elapsed, time_budget)
        if elapsed > time_budget and not self.cut:  # finish the epoch in flight, then stop
            self.cut = True
            for t in live(self.trainers, self.failed):
                if t.epoch < t.cfg.epochs:
                    t.set_epochs(t.epoch + 1)

    def fit_plan_to_budget(self, runs: list, elapsed: float, time_budget: float) -> None:
        """Cuts the live runs' planned epochs to what the budget holds at the pace measured so far."""
        # after the first epoch (its pace includes the CUDA-graph captures, so it errs
        # short), then again after the second, at the steady pace, while no run has
        # started a learning-rate decay, so the changed plan is what each run follows
        if self.fitted == 0:
            per_epoch = elapsed
        else:
            per_epoch = elapsed - self.epoch1_at
        self.epoch1_at = elapsed
        self.fitted += 1
        if self.fitted == 1 or all(t.epoch <= t.cfg.epochs // 2 for t in runs):
            for t in runs:
                afford = t.epoch + int((0.95 * time_budget - elapsed) / per_epoch)  # 5% margin
                t.set_epochs(max(min(afford, self.planned[t.run_dir]), t.epoch))

    def close(self) -> None:
        """Closes every run's iterator, finished or not."""
        for it in self.iterators:
            it.close()

    def throughput(self) -> dict:
        """train_packed's figures: runs, images, seconds, images per second (all, and after the first
        epoch), epochs done and planned, whether the budget cut the plan, the failures."""
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        seconds = now - self.started
        steady = math.nan
        if self.steady_from is not None and self.images > self.steady_from[1]:
            steady = (self.images - self.steady_from[1]) / (now - self.steady_from[0])
        return {"runs": len(self.trainers), "images": self.images, "seconds": seconds,
                "images_per_s": self.images / seconds if seconds > 0 else math.nan,
                "steady_images_per_s": steady,
                "epochs": {str(t.run_dir): t.epoch for t in self.trainers},
                "planned_epochs": {str(k): v for k, v in self.planned.items()}, "cut_by_budget": self.cut,
                "failed": self.failed}


def _pack_progress_bar(trainers: Sequence):
    """One progress bar for the whole pack, in iterations of all runs together."""
    from tqdm.auto import tqdm
    total = sum((t.cfg.epochs - t.epoch) * t.iterations_per_epoch for t in trainers)
    return tqdm(total=total, unit="it", desc=f"{len(trainers)} runs packed", dynamic_ncols=True)


def _advance_progress_bar(bar, pack: _Pack) -> None:
    """Brings the bar up to the pack's steps, its total following the plan (which the budget may cut)."""
    trainers = pack.trainers
    bar.total = sum(t.cfg.epochs * t.iterations_per_epoch for t in trainers) - \
        sum(pack.first_epochs[t.run_dir] * t.iterations_per_epoch for t in trainers)
    bar.update(pack.steps - bar.n)


def live(trainers: Sequence, failed: dict) -> list:
    return [t for t in trainers if str(t.run_dir) not in failed]


def sweep(specs: Sequence[RunSpec], preset: str, out, common: Optional[dict] = None, pack: int = 0,
          progress: bool = True, time_budget: Optional[float] = None, accept_changes=()) -> dict:
    """Train every spec, `pack` at a time (0: all at once); returns per-pack throughput. Runs already
    there continue (accept_changes: see make_trainers)."""
    specs = list(specs)
    size = pack or len(specs)
    started = time.perf_counter()
    data_cache: dict = {}
    results = []
    for start in range(0, len(specs), size):
        trainers, _ = make_trainers(specs[start:start + size], preset, out, common, data_cache=data_cache,
                                    accept_changes=accept_changes)
        left = None if time_budget is None else max(time_budget - (time.perf_counter() - started), 0.0)
        results.append(train_packed(trainers, progress=progress, time_budget=left))
    return {"packs": results}
