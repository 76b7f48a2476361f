"""Benchmark: colorlib's trainer against the loop most tutorials write, side by side, one run.

    python -m colorlib bench [--preset paper] [--data PATH] [--iters N] [--also FIELD=VALUE]
                             [--matmul-size N] [--out bench.json]
    python -m colorlib bench --profile [--preset paper] [--set threads=1]

`--profile` says instead where one training iteration goes: torch.profiler's top operators and,
per convolution layer, its calls per iteration, input shape, and the time and GFLOP/s of one
forward+backward through oneDNN and through the matrix-multiply form (engine/fast_layers.py),
marking the one training uses (run_profile).

Both loops train the same networks (the preset's, from the same seed) on the same images
with the same batch size, and both run the paper's one training algorithm,
`colorlib.paper.step.training_iteration`: the ratio measures the engine around it, nothing
else. The reference is written the usual way: a DataLoader over a TensorDataset of the uint8
training images (shuffle=True with a seeded generator, drop_last), each batch turned into
float32 model-range tensors (paper.data.to_model_range) on the CPU and moved to the device,
contiguous tensors, plain G and D modules, plain Adam, eager execution. The trainer is
`colorlib.Trainer` as the `train` command runs it (its epoch order, paper.data.epoch_order),
in the precision it chooses for the device (printed, with the reason: on a CPU bf16 autocast
is used only where it pays, see precision.cpu_bf16_decision).
Reported: training images/s of each and their ratio, generator inference images/s, peak memory,
the projected wall time of the paper's 100 epochs, and the arithmetic: the FLOPs of one
training iteration (FlopCounterMode, counted once on the CPU in float32), the training FLOP/s
that makes at each loop's images/s, and the FLOP/s of a large matrix multiply in bf16 and in
float32 on the same device in the same run, with the trainer's share of each: the ceiling
that device reaches on the densest work there is.

The loops are timed side by side: after each one's warm-up, in rounds of one iteration of each
in turn on a CPU (a few long rounds on a GPU), the order rotating, so that a machine shared with
other work slows both alike. The images/s are the median round's and the speed-up the median of
the rounds' speed-ups: a stall of the machine (another program's burst) that falls on one
round moves them little. The rounds' range and the overall speed-up (all rounds together,
stalls included) are printed beside it.
`--also amp=false` (repeatable; several fields joined by commas) times the trainer with other
settings in the same rounds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import torch

from .. import variants
from ..engine.precision import cpu_has_fast_bf16
from ..engine.schedule import rates
from ..engine.trainer import Trainer
from ..paper.data import epoch_order, to_model_range
from ..paper.step import training_iteration
from ..runs.config import DATA_ENV, make_config
from ..runs.data import DataError, load_split, resolve_source
from ..runs.device import choose_threads, device_name, pick_device
from ..runs.rundir import first_line

PAPER_IMAGES, PAPER_EPOCHS = 50_000, 100
FLOP_COUNT = "torch.utils.flop_counter.FlopCounterMode, one training_iteration, CPU float32"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # POSIX only; imported here so the CLI still starts on Windows
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # process peak, kilobytes on Linux
    return kb / 1024


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# ---------------------------------------------------------------- the data both loops train on
def training_images(cfg) -> torch.Tensor:
    """The training images of `cfg` (uint8 [N, 3, H, W], on the CPU), the very ones the trainer
    loads (runs.data.load_split, same size, seed and validation hold-out). Data errors are raised
    here, before anything is timed; CIFAR-10 is not downloaded for a benchmark."""
    source = resolve_source(cfg.data)
    layout = (f"Point --data (or ${DATA_ENV}) at a folder laid out as train/<class>/*.jpg or at a .pt pack "
              f"(`python -m colorlib pack`)")
    if source == "cifar10":
        from torchvision import datasets
        try:
            datasets.CIFAR10(cfg.data_root, train=True, download=False)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            raise DataError(f"bench reads CIFAR-10 from {cfg.data_root!r} without downloading it, and it is not "
                            f"there ({first_line(exc)}). {layout}, or download CIFAR-10 first (any "
                            f"`python -m colorlib train` run without --data does).") from None
    elif not Path(source).expanduser().exists():
        raise DataError(f"data source {str(Path(source).expanduser())!r} does not exist. {layout}.")
    try:
        return load_split(cfg.data, "train", cfg.train_size, cfg.seed, cfg.data_root, val_size=cfg.val_size).images
    except (DataError, OSError, RuntimeError, KeyError) as exc:  # no images, not a pack, a bad file
        raise DataError(f"{source!r} cannot be read as training images ({type(exc).__name__}: "
                        f"{first_line(exc)}). {layout}.") from None


# ---------------------------------------------------------------- the tutorial's loop
@dataclasses.dataclass
class Reference:
    """The tutorial's setup: plain G and D modules on the device (float32, contiguous), plain Adam
    at the run's first learning rates, and the objective and D steps `cfg` names."""
    G: torch.nn.Module
    D: torch.nn.Module
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    objective: object
    d_steps: int

    @classmethod
    def build(cls, cfg, images: torch.Tensor, device: torch.device) -> "Reference":
        """The networks from cfg.seed, as the trainer builds them (the caller's random numbers
        left as they were); `images`: what a chroma-classes head learns its prior from."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(cfg.seed)
            G, D = variants.build_generator(cfg), variants.build_discriminator(cfg)
        variants.fit_to_data(G, images)
        G, D = G.to(device), D.to(device)
        g_lr, d_lr = rates(cfg, 0)
        g_opt = torch.optim.Adam(G.parameters(), lr=g_lr, betas=(cfg.beta1, cfg.beta2))
        d_opt = torch.optim.Adam(D.parameters(), lr=d_lr, betas=(cfg.beta1, cfg.beta2))
        return cls(G, D, g_opt, d_opt, variants.build_objective(cfg, G), variants.discriminator_steps(cfg))

    def iteration(self, gray: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """The paper's training iteration on one batch; its five losses."""
        return training_iteration(self.G, self.D, self.g_opt, self.d_opt, gray, rgb, self.objective, self.d_steps)


def reference_loader(images: torch.Tensor, cfg) -> torch.utils.data.DataLoader:
    """The tutorial's batches: uint8 images, shuffled by a generator seeded with cfg.seed (each
    pass over the loader a new order), the last incomplete batch dropped."""
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=cfg.batch_size,
                                       shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(cfg.seed))


def naive_loop(cfg, images: torch.Tensor, device: torch.device) -> Iterator[torch.Tensor]:
    """The reference loop over `images` (uint8, CPU), set up here; each `next()` then runs one
    training iteration and returns its losses."""
    reference, loader = Reference.build(cfg, images, device), reference_loader(images, cfg)

    def steps():
        while True:
            for (batch,) in loader:
                gray, rgb = to_model_range(batch)
                yield reference.iteration(gray.to(device), rgb.to(device))

    return steps()


# ---------------------------------------------------------------- colorlib's loop
def trainer_loop(trainer: Trainer) -> Iterator[torch.Tensor]:
    """colorlib's trainer driving its own iteration over the data it holds, in the epoch order
    `fit` uses (paper.data.epoch_order), one training iteration per `next()` (its losses)."""
    n, batch, seed = trainer.images.shape[0], trainer.cfg.batch_size, trainer.cfg.seed
    for epoch in itertools.count():
        order = epoch_order(n, epoch, seed, trainer.device)
        for it in range(n // batch):
            yield trainer.train_step(order[it * batch:(it + 1) * batch])


def trainer_precision(trainer: Trainer) -> tuple[str, str]:
    """The precision the trainer's networks run in (its autocast factory's), and why."""
    factory = trainer.autocast
    if hasattr(factory, "precision"):
        return factory.precision, factory.reason
    return "float32", "amp=false in the config"


class TrainerPool:
    """The benchmark's trainers: each made when its loop starts, with its run directory in one
    temporary folder, all sharing the data they read (read once); `close()` closes them (their
    process-wide settings put back, latest first) and removes the folder."""

    def __init__(self):
        self.trainers: list[Trainer] = []
        self.data_cache: dict = {}
        self._stack = contextlib.ExitStack()
        self._work = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="colorlib-bench-")))

    def start(self, cfg) -> Iterator[torch.Tensor]:
        run_dir = self._work / f"run{len(self.trainers)}"
        trainer = self._stack.enter_context(Trainer(cfg, run_dir, progress=False, data_cache=self.data_cache))
        self.trainers.append(trainer)
        return trainer_loop(trainer)

    def close(self) -> None:
        self._stack.close()


# ---------------------------------------------------------------- arithmetic
def training_flops(cfg, images: torch.Tensor) -> int:
    """The FLOPs of one training iteration (G's forward, the D updates, G's update, backward
    passes included) of cfg's networks on the batch `images` (uint8 [B, 3, H, W]), as
    torch.utils.flop_counter.FlopCounterMode counts them (matrix products and convolutions,
    2 FLOPs a multiply-add) on the CPU in float32."""
    from torch.utils.flop_counter import FlopCounterMode
    reference = Reference.build(cfg, images, torch.device("cpu"))
    gray, rgb = to_model_range(images)
    with FlopCounterMode(display=False) as counter:
        reference.iteration(gray, rgb)
    return int(counter.get_total_flops())


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """Achieved TFLOP/s of a size x size @ size x size product in `dtype` on `device` (2 size^3
    FLOPs): the best of `repeats` timings after a warm-up product. On a GPU each timing covers 10
    products, so that launching and synchronising cost little."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device, dtype) for _ in range(2))
    products = 1 if device.type == "cpu" else 10
    out = a @ b
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(products):
            torch.matmul(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 * products / best / 1e12


def _significant(x: Optional[float], digits: int = 4) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else float(f"{x:.{digits}g}")


def flop_fields(cfg, images: torch.Tensor, dev: torch.device, ips: dict[str, float], threads: int,
                matmul_size: Optional[int] = None) -> dict:
    """The arithmetic of the run: FLOPs per training iteration, each loop's training TFLOP/s at
    its images/s (`ips`: {"naive", "colorlib"}), the bf16 and float32 matmul TFLOP/s of `dev` at
    `threads` threads (colorlib's), and colorlib's share of each."""
    flops = training_flops(cfg, images[:cfg.batch_size])
    size = matmul_size or (4096 if dev.type == "cuda" else 2048)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        matmul, bf16_size = _matmul_ceilings(dev, size)
    finally:
        torch.set_num_threads(previous)
    train = {k: flops / cfg.batch_size * v / 1e12 for k, v in ips.items()}
    ceiling = max(matmul, key=matmul.get)
    return {
        "training_flop_per_iteration": flops, "flop_count": f"{FLOP_COUNT}, batch {cfg.batch_size}",
        "naive_train_tflop_per_s": _significant(train["naive"]),
        "colorlib_train_tflop_per_s": _significant(train["colorlib"]),
        "matmul_size": size, "matmul_threads": threads,
        "matmul_fp32_tf32": dev.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
        "matmul_bf16_tflop_per_s": _significant(matmul["bf16"]),
        "matmul_fp32_tflop_per_s": _significant(matmul["fp32"]),
        "matmul_bf16_size": bf16_size,
        "colorlib_share_of_bf16_matmul": _significant(train["colorlib"] / matmul["bf16"], 3),
        "colorlib_share_of_fp32_matmul": _significant(train["colorlib"] / matmul["fp32"], 3),
        "ceiling": ceiling,  # the faster of the two matmuls: what this device can do at all
        "colorlib_share_of_ceiling": _significant(train["colorlib"] / matmul[ceiling], 3),
    }


EMULATED_BF16 = 0.25  # a bf16 matmul below this fraction of float32's speed runs without bf16 units


def _matmul_ceilings(dev: torch.device, size: int) -> tuple[dict, int]:
    """The float32 and bf16 matmul TFLOP/s of `dev` at `size`, and the size bf16 was timed at. A
    CPU without bf16 units (AVX2 only: measured 500x slower than float32) takes minutes for one
    large bf16 product, so bf16 is first timed at 512; only if that is within EMULATED_BF16 of
    float32's speed at 512 is the large product timed too."""
    repeats = 3 if dev.type == "cpu" else 10
    matmul = {"fp32": matmul_tflops(dev, torch.float32, size, repeats)}
    if dev.type == "cpu":
        probe = min(size, 512)
        bf16 = matmul_tflops(dev, torch.bfloat16, probe, repeats)
        if bf16 < EMULATED_BF16 * matmul_tflops(dev, torch.float32, probe, repeats):
            return {**matmul, "bf16": bf16}, probe
    return {**matmul, "bf16": matmul_tflops(dev, torch.bfloat16, size, repeats)}, size


# ---------------------------------------------------------------- timing
@dataclasses.dataclass
class Loop:
    """One training loop in a side-by-side timing, and what it measured."""
    label: str
    start: Callable[[], Iterator[torch.Tensor]]  # sets the loop up (when its warm-up begins) and returns its steps
    threads: int
    steps: Optional[Iterator[torch.Tensor]] = None
    seconds: list = dataclasses.field(default_factory=list)  # of each timed round
    peak_mb: float = math.nan

    def images_per_s(self, iterations: int, batch: int) -> float:
        """The median round's: a round that other work on the machine stalled does not count more
        than one that it did not."""
        return statistics.median(iterations * batch / t for t in self.seconds)

    def overall_images_per_s(self, iterations: int, batch: int) -> float:
        return len(self.seconds) * iterations * batch / sum(self.seconds)


@dataclasses.dataclass
class TimingPlan:
    warmup: int
    rounds: int
    per_round: int

    @classmethod
    def for_device(cls, dev: torch.device, iters: Optional[int]) -> "TimingPlan":
        """`iters` timed iterations per loop (default 300 on a GPU, 20 on a CPU): a few long rounds
        on a GPU (each round starts and ends by synchronising the device, a cost long rounds
        spread thin); one iteration per round on a CPU, where other work on the machine comes
        and goes within seconds and the loops should meet it alike."""
        cuda = dev.type == "cuda"
        iters = iters or (300 if cuda else 20)
        rounds = min(iters, 3) if cuda else iters
        return cls(warmup=10 if cuda else 3, rounds=rounds, per_round=-(-iters // rounds))


def time_side_by_side(loops: list[Loop], device: torch.device, warmup: int, rounds: int, per_round: int) -> None:
    """Set each loop up and warm it up alone, in turn (its peak memory read then), then time
    `rounds` rounds of `per_round` iterations of every loop in turn, the order rotating by one
    each round. Each loop runs at its own thread count: what its code would run at."""
    for loop in loops:
        _reset_peak(device)
        loop.steps = loop.start()
        torch.set_num_threads(loop.threads)
        for _ in range(warmup):  # for torch.compile, the warm-up absorbs the compilation
            next(loop.steps)
        _sync(device)
        loop.peak_mb = _peak_memory_mb(device)
    for r in range(rounds):
        for loop in loops[r % len(loops):] + loops[:r % len(loops)]:
            torch.set_num_threads(loop.threads)
            _sync(device)
            start = time.perf_counter()
            for _ in range(per_round):
                next(loop.steps)
            _sync(device)
            loop.seconds.append(time.perf_counter() - start)


def speed_option_drift(cfg, device: torch.device, option_sets: dict[str, dict], iters: int = 20,
                       train_size: int = 1000, data_cache: Optional[dict] = None) -> dict[str, float]:
    """Train `iters` identical steps per variant of the speed options; report each variant's
    generator weights' relative distance from the first (reference) variant's.

    The speed options must not change the maths: float32 variants should agree to rounding,
    bf16 autocast within its precision."""
    weights = {}
    for name, options in option_sets.items():
        c = dataclasses.replace(cfg, train_size=train_size, **options)
        with tempfile.TemporaryDirectory(prefix="colorlib-drift-") as run_dir, \
                Trainer(c, Path(run_dir) / "run", progress=False, data_cache=data_cache) as trainer:
            for it in range(iters):
                index = torch.arange(it * c.batch_size, (it + 1) * c.batch_size, device=trainer.device)
                trainer.train_step(index % trainer.images.shape[0])
            weights[name] = torch.cat([p.detach().float().flatten().cpu() for p in trainer.G.parameters()])
    reference = next(iter(weights.values()))
    return {name: float((w - reference).norm() / reference.norm()) for name, w in weights.items()}


def drift_check(cfg, dev: torch.device, data_cache: dict) -> dict[str, float]:
    """The speed options of `dev` against plain float32 eager steps (speed_option_drift)."""
    if dev.type == "cuda":  # the GPU-only options
        return speed_option_drift(cfg, dev, {
            "fp32 eager": dict(amp=False, cuda_graphs=False, channels_last=False),
            "fp32 + CUDA graph + channels_last": dict(amp=False, cuda_graphs=True, channels_last=True),
            "bf16 autocast (all options)": dict(amp=True, cuda_graphs=True, channels_last=True)},
            data_cache=data_cache)
    amp_label = "bf16 autocast" if cpu_has_fast_bf16() else "amp=true (float32 here: bf16 does not pay)"
    return speed_option_drift(cfg, dev, {
        "fp32 contiguous": dict(amp=False, channels_last=False),
        "fp32 channels_last": dict(amp=False, channels_last=True),
        f"{amp_label} + channels_last, matmul_convs=false": dict(amp=True, channels_last=True, matmul_convs=False),
        f"{amp_label} + channels_last + matmul_convs": dict(amp=True, channels_last=True, matmul_convs=True)},
        iters=3, train_size=200, data_cache=data_cache)


@torch.inference_mode()
def time_inference(trainer: Trainer, batch: int, iters: int) -> float:
    G = trainer.G.eval()
    gray = torch.zeros(batch, 1, 32, 32, device=trainer.device).contiguous(memory_format=trainer.memory_format)
    with trainer.autocast():
        for _ in range(3):
            G(gray)
        _sync(trainer.device)
        start = time.perf_counter()
        for _ in range(iters):
            G(gray)
        _sync(trainer.device)
    G.train()
    return iters * batch / (time.perf_counter() - start)


# ---------------------------------------------------------------- the benchmark
def run_benchmark(preset: str = "paper", data: Optional[str] = None, iters: Optional[int] = None,
                  device: str = "auto", train_size: int = 5000, overrides: Optional[dict] = None,
                  with_compile: bool = False, also: Optional[list[dict]] = None,
                  matmul_size: Optional[int] = None) -> dict:
    """Time the tutorial loop, colorlib's trainer and the trainer with each of `also` (config
    overrides) side by side; with_compile adds the trainer with compile=True. Then colorlib's
    inference speed, the arithmetic (flop_fields) and the speed options' drift."""
    dev = pick_device(device)
    plan = TimingPlan.for_device(dev, iters)
    cfg = make_config(preset, data=data, device=str(dev), train_size=train_size, **(overrides or {}))
    images = training_images(cfg)  # the data errors, now
    threads = torch.get_num_threads()  # the process default: the tutorial loop's
    # the trainer's with threads=0: as many as no other program uses, measured now (device.choose_threads)
    chosen, why = choose_threads() if dev.type == "cpu" else (threads, f"PyTorch's default ({dev.type})")
    options = [{}] + [dict(v) for v in (also or [])] + ([dict(compile=True)] if with_compile else [])
    pool = TrainerPool()
    try:
        loops = [Loop("tutorial loop", lambda: naive_loop(cfg, images, dev), threads)]
        for o in options:
            c = dataclasses.replace(cfg, **o)
            loops.append(Loop("colorlib" + (f" with {_describe(o)}" if o else ""), lambda c=c: pool.start(c),
                              c.threads or chosen))
        try:
            time_side_by_side(loops, dev, plan.warmup, plan.rounds, plan.per_round)
        finally:
            for loop in loops:
                if loop.steps is not None:
                    loop.steps.close()
            torch.set_num_threads(threads)  # a trainer with cfg.threads set the process's
        result = {"preset": preset, "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
                  "threads": threads, "colorlib_threads": chosen, "colorlib_threads_reason": why,
                  "batch_size": cfg.batch_size, "iterations_timed": plan.rounds * plan.per_round,
                  **speed_fields(cfg, loops, pool.trainers, options, plan, with_compile, dev)}
        result["generator_inference_images_per_s"] = round(
            time_inference(pool.trainers[0], 500, 20 if dev.type == "cuda" else 3), 1)
        ips = {"naive": loops[0].images_per_s(plan.per_round, cfg.batch_size),
               "colorlib": loops[1].images_per_s(plan.per_round, cfg.batch_size)}
        result.update(flop_fields(cfg, images, dev, ips, loops[1].threads, matmul_size))
        result["speed_option_drift_vs_reference"] = drift_check(cfg, dev, pool.data_cache)
    finally:
        pool.close()  # the trainers' process-wide settings put back
        torch.set_num_threads(threads)
    result["date"] = time.strftime("%Y-%m-%d")
    return result


def speed_fields(cfg, loops: list[Loop], trainers: list[Trainer], options: list[dict], plan: TimingPlan,
                 with_compile: bool, dev: torch.device) -> dict:
    """What the side-by-side timing measured: images/s and speed-ups (loops[0] the tutorial loop,
    loops[1] colorlib with `options[0]`, then one per further options), peak memory, the
    paper preset's projected time, and the rounds."""
    naive, ours = loops[0], loops[1]
    per_round, batch = plan.per_round, cfg.batch_size
    ips = {loop.label: loop.images_per_s(per_round, batch) for loop in loops}
    overall = {loop.label: loop.overall_images_per_s(per_round, batch) for loop in loops}
    precision, reason = trainer_precision(trainers[0])
    alternatives = [{"overrides": o, "threads": loop.threads, "precision": trainer_precision(t)[0],
                     "train_images_per_s": round(ips[loop.label], 1),
                     "speedup": _median_ratio(naive, loop), "speedup_by_round": _ratios(naive, loop),
                     "speedup_overall": round(overall[loop.label] / overall[naive.label], 2)}
                    for o, loop, t in zip(options[1:], loops[2:], trainers[1:])]
    compiled = alternatives[-1] if with_compile else None
    paper_images = PAPER_EPOCHS * (PAPER_IMAGES // batch) * batch
    return {
        "networks": {k: getattr(cfg, k) for k in ("g_width", "g_depth", "norm", "d_width", "d_depth", "d_norm")},
        "speed_options": {k: getattr(cfg, k) for k in ("channels_last", "amp", "compile", "cuda_graphs",
                                                       "matmul_convs")},
        "matmul_convs_layers": trainers[0].precision.get("matmul_convs", []),
        "colorlib_precision": precision, "colorlib_precision_reason": reason,
        "naive_train_images_per_s": round(ips[naive.label], 1),
        "colorlib_train_images_per_s": round(ips[ours.label], 1),
        "speedup": _median_ratio(naive, ours), "speedup_by_round": _ratios(naive, ours),
        "speedup_overall": round(overall[ours.label] / overall[naive.label], 2),
        "colorlib_compiled_train_images_per_s": compiled["train_images_per_s"] if compiled else None,
        "speedup_compiled": compiled["speedup"] if compiled else None,
        "alternatives": alternatives,
        "naive_peak_memory_mb": round(naive.peak_mb, 1), "colorlib_peak_memory_mb": round(ours.peak_mb, 1),
        "memory_measure": "CUDA max allocated" if dev.type == "cuda" else "process peak RSS",
        "paper_preset_projected_minutes": round(paper_images / ips[ours.label] / 60, 1),
        "naive_paper_preset_projected_minutes": round(paper_images / ips[naive.label] / 60, 1),
        "timing": {"warmup_iterations": plan.warmup, "rounds": plan.rounds, "iterations_per_round": per_round,
                   "images_per_s_by_round": {loop.label: [round(per_round * batch / t, 1) for t in loop.seconds]
                                             for loop in loops}},
    }
def _ratios(naive: Loop, loop: Loop) -> list[float]:
    """`loop`'s speed-up over the tutorial loop in each round: the two ran minutes apart at most."""
    return [round(a / b, 2) for a, b in zip(naive.seconds, loop.seconds)]


def _median_ratio(naive: Loop, loop: Loop) -> float:
    """The speed-up: the median of the rounds' (each round's two timings are close in time, so a
    stall of the machine that falls on one round moves the median little)."""
    return round(statistics.median(a / b for a, b in zip(naive.seconds, loop.seconds)), 2)


def _spread(r: dict) -> str:
    """The rounds' range and the speed-up over all rounds together, stalls included."""
    ratios = r.get("speedup_by_round", [])
    if len(ratios) < 2:
        return ""
    return f"; rounds {min(ratios):.2f}-{max(ratios):.2f}x, overall {r['speedup_overall']:.2f}x"


def _describe(options: dict) -> str:
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items())


def _flop_rows(r: dict) -> list[tuple[str, str]]:
    """One line per number of the arithmetic (flop_fields), each saying the device it ran on."""
    if r.get("training_flop_per_iteration") is None:  # a result from before they were measured
        return []

    def on(threads: int) -> str:
        return f"on {r['device_name']} ({r['device']}, {threads} threads)"

    def share(x: Optional[float]) -> str:
        return "n/a" if x is None else f"{100 * x:.3g}%"

    n, ours = r["matmul_size"], r["matmul_threads"]
    nb = r.get("matmul_bf16_size", n)
    bf16_share = share(r["colorlib_share_of_bf16_matmul"])
    if r.get("ceiling") == "fp32":  # bf16 slower than float32: the share of it means nothing
        bf16_share = "n/a (bf16 matmul slower than float32 here: no bf16 units; float32 is the ceiling)"
    tf32 = ", TF32 allowed as in training" if r.get("matmul_fp32_tf32") else ""
    return [
        (f"training FLOPs per iteration (FlopCounterMode, float32, batch {r['batch_size']})",
         f"{r['training_flop_per_iteration']:.3e}"),
        (f"training TFLOP/s, colorlib ({r['colorlib_precision']}) {on(ours)}",
         f"{r['colorlib_train_tflop_per_s']:.3g}"),
        (f"training TFLOP/s, tutorial loop (float32) {on(r['threads'])}", f"{r['naive_train_tflop_per_s']:.3g}"),
        (f"matmul {nb}x{nb} bf16 TFLOP/s (best of a few) {on(ours)}", f"{r['matmul_bf16_tflop_per_s']:.3g}"),
        (f"matmul {n}x{n} float32 TFLOP/s (best of a few{tf32}) {on(ours)}", f"{r['matmul_fp32_tflop_per_s']:.3g}"),
        ("colorlib training FLOP/s as a share of the bf16 matmul's", bf16_share),
        ("colorlib training FLOP/s as a share of the float32 matmul's", share(r["colorlib_share_of_fp32_matmul"])),
    ]


def format_table(r: dict) -> str:
    rows = [
        ("training images/s, tutorial loop", f"{r['naive_train_images_per_s']:.0f}"),
        ("training images/s, colorlib", f"{r['colorlib_train_images_per_s']:.0f}"),
        ("speed-up (median round)", f"{r['speedup']:.2f}x ({r['colorlib_precision']}{_spread(r)})"),
    ]
    rows += [(f"training images/s, colorlib with {_describe(a['overrides'])}",
              f"{a['train_images_per_s']:.0f}  {a['speedup']:.2f}x ({a['precision']}{_spread(a)})")
             for a in r.get("alternatives", [])]
    rows += [
        ("generator inference images/s (32x32)", f"{r['generator_inference_images_per_s']:.0f}"),
        (f"peak memory MB, tutorial / colorlib ({r['memory_measure']})",
         f"{r['naive_peak_memory_mb']:.0f} / {r['colorlib_peak_memory_mb']:.0f}"),
        ("paper preset (100 epochs x 50,000), projected", f"{r['paper_preset_projected_minutes']:.1f} min "
         f"(tutorial loop {r['naive_paper_preset_projected_minutes']:.1f} min)"),
    ]
    rows += _flop_rows(r)
    rows += [(f"weights drift after steps: {k}", f"{v:.1e}") for k, v in r["speed_option_drift_vs_reference"].items()]
    width = max(len(k) for k, _ in rows)
    timing = r.get("timing", {})
    head = [f"{r['preset']} networks, batch {r['batch_size']}, {r['device_name']} ({r['device']}), torch {r['torch']}, "
            f"tutorial loop {r['threads']} threads (PyTorch's default), colorlib "
            f"{r.get('colorlib_threads', r['threads'])} ({r.get('colorlib_threads_reason', 'as the tutorial loop')})",
            f"colorlib precision: {r['colorlib_precision']} ({r['colorlib_precision_reason']})",
            f"timed side by side: {timing.get('rounds')} rounds of {timing.get('iterations_per_round')} iterations "
            f"of each loop in turn, after {timing.get('warmup_iterations')} warm-up iterations each; "
            f"images/s of the median round"]
    return "\n".join(head + [f"  {k:<{width}}  {v}" for k, v in rows])


# ---------------------------------------------------------------- bench --profile: where an iteration goes
@dataclasses.dataclass
class ConvCall:
    """One convolution layer as a training iteration calls it (found by a forward hook)."""
    name: str
    module: torch.nn.Module
    shape: tuple  # the input's
    channels_last: bool
    bf16: bool  # called under CPU/CUDA bf16 autocast
    calls: int = 0

    def flops(self, out_side: int) -> int:
        """Forward FLOPs (2 a multiply-add): per output pixel of a convolution, per input pixel
        of a transposed one."""
        m = self.module
        k = m.kernel_size[0] * m.kernel_size[1]
        pixels = self.shape[2] * self.shape[3] if isinstance(m, torch.nn.ConvTranspose2d) else out_side ** 2
        return 2 * self.shape[0] * m.in_channels * m.out_channels * k * pixels


def conv_calls(trainer: Trainer) -> list[ConvCall]:
    """Every Conv2d / ConvTranspose2d of G and D as one `train_step` calls it (name, input shape,
    memory format, precision, calls per iteration)."""
    found: dict[str, ConvCall] = {}
    hooks = []
    for prefix, net in (("G", trainer.G), ("D", trainer.D)):
        for name, m in net.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                def hook(m, inputs, out, name=f"{prefix}.{name}"):
                    x = inputs[0]
                    last = x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
                    bf16 = torch.is_autocast_enabled(x.device.type)
                    call = found.setdefault(name, ConvCall(name, m, tuple(x.shape), last, bf16))
                    call.calls += 1
                hooks.append(m.register_forward_hook(hook))
    try:
        trainer.train_step(torch.arange(trainer.cfg.batch_size, device=trainer.device) % trainer.images.shape[0])
    finally:
        for h in hooks:
            h.remove()
    return list(found.values())


def time_conv(call: ConvCall, device: torch.device, matmul: bool, repeats: int = 5) -> tuple[float, int]:
    """(best seconds, output side) of one forward and backward (input and weight gradients) of the
    layer of `call` on random inputs of its shape, memory format and precision: through its
    class's forward (oneDNN here) or, with matmul, engine.fast_layers' matrix-multiply form.
    A copy of the layer is timed: the trainer's gradients are left alone."""
    import copy

    from ..engine import fast_layers
    m = copy.deepcopy(call.module).requires_grad_(True)
    fmt = torch.channels_last if call.channels_last else torch.contiguous_format
    x = torch.randn(call.shape, device=device).contiguous(memory_format=fmt).requires_grad_(True)
    transposed = isinstance(m, torch.nn.ConvTranspose2d)
    fast = fast_layers.conv_transpose2d_matmul if transposed else fast_layers.conv2d_matmul
    dtype = torch.bfloat16 if call.bf16 else torch.float32
    best, side = math.inf, 0
    for r in range(repeats + 1):  # the first builds the kernels
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=call.bf16):
            if matmul:
                bias = None if m.bias is None else m.bias.to(dtype)
                y = fast(x.to(dtype), m.weight.to(dtype), bias, m.stride[0], m.padding[0])
            else:
                y = type(m).forward(m, x)
        y.float().square().mean().backward()
        _sync(device)
        if r:
            best = min(best, time.perf_counter() - start)
        side = y.shape[-1]
    return best, side


def profile_ops(trainer: Trainer, iterations: int = 3, top: int = 8) -> list[dict]:
    """torch.profiler over `iterations` train_steps: the operators with the most self CPU time,
    per iteration and as a share of the total."""
    from torch.profiler import ProfilerActivity, profile
    index = torch.arange(trainer.cfg.batch_size, device=trainer.device) % trainer.images.shape[0]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iterations):
            trainer.train_step(index)
        _sync(trainer.device)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return [{"op": e.key, "ms_per_iteration": round(e.self_cpu_time_total / iterations / 1e3, 2),
             "share": round(e.self_cpu_time_total / total, 3)} for e in rows]


def run_profile(preset: str = "paper", data: Optional[str] = None, device: str = "auto", train_size: int = 500,
                overrides: Optional[dict] = None) -> dict:
    """bench --profile: where one training iteration of colorlib's trainer goes. torch.profiler's
    top operators, then one row per convolution layer (calls per iteration, input shape, time
    and achieved GFLOP/s of its forward+backward through oneDNN and through the matrix-multiply
    form, and which of the two the trainer uses: engine/fast_layers.py, cfg.matmul_convs)."""
    from ..engine import fast_layers
    dev = pick_device(device)
    cfg = make_config(preset, data=data, device=str(dev), train_size=train_size, **(overrides or {}))
    training_images(cfg)  # the data errors, now
    with tempfile.TemporaryDirectory(prefix="colorlib-profile-") as work, \
            Trainer(cfg, Path(work) / "run", progress=False) as trainer:
        calls = conv_calls(trainer)  # also the warm-up
        for _ in range(2):
            conv_calls(trainer)
        ops = profile_ops(trainer)
        layers = []
        for call in calls:
            row = {"layer": call.name, "calls": call.calls, "input": list(call.shape),
                   "precision": "bfloat16" if call.bf16 else "float32",
                   "uses_matmul": hasattr(call.module, fast_layers.SWAPPED)}
            for label, matmul in (("onednn", False), ("matmul", True)):
                seconds, side = time_conv(call, dev, matmul)
                flops = 3 * call.flops(side)  # forward, input gradient, weight gradient
                row[f"{label}_ms"] = round(seconds * 1e3, 2)
                row[f"{label}_gflop_per_s"] = round(flops / seconds / 1e9, 1)
            row["output_side"] = side
            layers.append(row)
        precision, threads = dict(trainer.precision), torch.get_num_threads()
    return {"preset": preset, "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
            "threads": threads, "precision": precision, "top_ops": ops, "layers": layers,
            "date": time.strftime("%Y-%m-%d")}


def format_profile(r: dict) -> str:
    lines = [f"{r['preset']} networks, {r['device_name']} ({r['device']}), torch {r['torch']}, {r['threads']} threads, "
             f"{r['precision']['precision']} ({r['precision']['reason']})",
             "torch.profiler, self CPU time per training iteration:"]
    lines += [f"  {o['ms_per_iteration']:8.2f} ms  {100 * o['share']:5.1f}%  {o['op']}" for o in r["top_ops"]]
    lines.append("convolutions, one forward+backward each (best of 5), oneDNN vs the matmul form "
                 "(* the one training uses):")
    lines.append(f"  {'layer':<16}{'calls':>6}  {'input':<18}{'out':>4}  {'oneDNN ms':>10}{'GFLOP/s':>9}  "
                 f"{'matmul ms':>10}{'GFLOP/s':>9}")
    for x in r["layers"]:
        mark = ("  ", " *") if x["uses_matmul"] else (" *", "  ")
        shape = "x".join(str(s) for s in x["input"])
        lines.append(f"  {x['layer']:<16}{x['calls']:>6}  {shape:<18}{x['output_side']:>4}  "
                     f"{x['onednn_ms']:>10.2f}{x['onednn_gflop_per_s']:>9.0f}{mark[0]} "
                     f"{x['matmul_ms']:>9.2f}{x['matmul_gflop_per_s']:>9.0f}{mark[1]}")
    return "\n".join(lines)
