"""Benchmark: colorlib's trainer against the loop most tutorials write, side by side, one run.

    python -m colorlib bench [--preset paper] [--data PATH] [--iters N] [--also FIELD=VALUE] [--out bench.json]

Both loops train the same networks (the preset's), with the same batch size, data and
algorithm (two D updates then one G update on eq. 5). The reference is written the usual way:
a torchvision ImageFolder / CIFAR10 dataset with per-sample PIL transforms behind a DataLoader,
float32, contiguous tensors, plain Adam, eager execution. The trainer is `colorlib.Trainer` as
the `train` command runs it, in the precision it chooses for the device (printed, with the
reason: on a CPU bf16 autocast is used only where it pays, see precision.cpu_bf16_decision).
Reported: training images/s of each and their ratio, generator inference images/s, peak memory,
and the projected wall time of the paper's 100 epochs.

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

import dataclasses
import io
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import torch

from ..runs.config import DATA_ENV, make_config
from ..runs.data import DataError, resolve_source
from ..paper.losses import discriminator_loss, generator_loss
from ..variants import build_discriminator, build_generator
from ..runs.rundir import first_line
from ..runs.device import device_name, pick_device
from ..engine.precision import cpu_has_fast_bf16
from ..engine.trainer import Trainer
from ..paper.step import set_requires_grad

PAPER_IMAGES, PAPER_EPOCHS = 50_000, 100


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # POSIX only; imported here so the CLI still starts on Windows
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # process peak, kilobytes on Linux
    return kb / 1024


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def naive_dataset(source: str, data_root: str):
    """The tutorial dataset: PIL images, per-sample Grayscale/ToTensor/Normalize transforms."""
    from torchvision import datasets, transforms

    to_rgb = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    to_gray = transforms.Compose([transforms.Grayscale(1), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])

    class Pairs(torch.utils.data.Dataset):
        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            img, _ = self.base[i]
            return to_gray(img), to_rgb(img)

    layout = (f"Point --data (or ${DATA_ENV}) at a folder laid out as train/<class>/*.jpg or at a .pt pack "
              f"(`python -m colorlib pack`)")
    if source == "cifar10":
        try:
            return Pairs(datasets.CIFAR10(data_root, train=True, download=False))
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            raise DataError(f"bench reads CIFAR-10 from {data_root!r} without downloading it, and it is not "
                            f"there ({first_line(exc)}). {layout}, or download CIFAR-10 first (any "
                            f"`python -m colorlib train` run without --data does).") from None
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data source {str(path)!r} does not exist. {layout}.")
    try:
        if path.is_file():  # a colorlib pack: decode each sample's JPEG bytes with PIL
            return Pairs(PackedJPEGs(str(path)))
        root = path / "train" if (path / "train").is_dir() else path
        return Pairs(datasets.ImageFolder(str(root)))
    except (OSError, RuntimeError, KeyError) as exc:  # no class folders, no images, not a pack
        raise DataError(f"{str(path)!r} cannot be read as training images ({type(exc).__name__}: "
                        f"{first_line(exc)}). {layout}.") from None


class PackedJPEGs(torch.utils.data.Dataset):
    """The train split of a pack, served like ImageFolder: (PIL image, label) per index."""

    def __init__(self, path: str):
        part = torch.load(path, map_location="cpu", weights_only=True)["train"]
        self.bytes, self.offsets, self.labels = part["bytes"].numpy(), part["offsets"].tolist(), part["labels"]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        blob = self.bytes[self.offsets[i]:self.offsets[i + 1]].tobytes()
        return Image.open(io.BytesIO(blob)).convert("RGB"), int(self.labels[i])


def naive_loop(cfg, source: str, device: torch.device) -> Iterator[None]:
    """The reference loop, set up here (its data errors raised now); each `next()` then runs one
    training iteration."""
    torch.manual_seed(cfg.seed)
    G, D = build_generator(cfg).to(device), build_discriminator(cfg).to(device)
    g_opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    d_opt = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    loader = torch.utils.data.DataLoader(naive_dataset(source, cfg.data_root), batch_size=cfg.batch_size,
                                         shuffle=True, drop_last=True, num_workers=2,
                                         pin_memory=device.type == "cuda")

    def steps():
        while True:
            for gray, rgb in loader:
                gray, rgb = gray.to(device), rgb.to(device)
                fake = G(gray)
                for _ in range(cfg.d_steps):
                    d_opt.zero_grad()
                    d_real, d_fake = discriminator_loss(D(gray, rgb), D(gray, fake.detach()))
                    (d_real + d_fake).backward()
                    d_opt.step()
                set_requires_grad(D, False)
                g_opt.zero_grad()
                total, _, _ = generator_loss(D(gray, fake), fake, rgb, cfg.lam, cfg.content_loss, cfg.adv_weight)
                total.backward()
                g_opt.step()
                set_requires_grad(D, True)
                yield

    return steps()


def trainer_loop(trainer: Trainer) -> Iterator[None]:
    """colorlib's trainer driving its own iteration (shuffled batches of the data it holds), one
    training iteration per `next()`."""
    n, batch = trainer.images.shape[0], trainer.cfg.batch_size
    while True:
        order = torch.randperm(n, device=trainer.device)
        for it in range(n // batch):
            trainer.train_step(order[it * batch:(it + 1) * batch])
            yield


def trainer_precision(trainer: Trainer) -> tuple[str, str]:
    """The precision the trainer's networks run in (its autocast factory's), and why."""
    factory = trainer.autocast
    if hasattr(factory, "precision"):
        return factory.precision, factory.reason
    return "float32", "amp=false in the config"


@dataclasses.dataclass
class Loop:
    """One training loop in a side-by-side timing, and what it measured."""
    label: str
    start: Callable[[], Iterator[None]]  # sets the loop up (when its warm-up begins) and returns its steps
    threads: int
    steps: Optional[Iterator[None]] = None
    seconds: list = dataclasses.field(default_factory=list)  # of each timed round
    peak_mb: float = math.nan

    def images_per_s(self, iterations: int, batch: int) -> float:
        """The median round's: a round that other work on the machine stalled does not count more
        than one that it did not."""
        return statistics.median(iterations * batch / t for t in self.seconds)

    def overall_images_per_s(self, iterations: int, batch: int) -> float:
        return len(self.seconds) * iterations * batch / sum(self.seconds)


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


def speed_option_drift(cfg, device: torch.device, variants: dict[str, dict], iters: int = 20,
                       train_size: int = 1000, data_cache: Optional[dict] = None) -> dict[str, float]:
    """Train `iters` identical steps per variant of the speed options; report each variant's
    generator weights' relative distance from the first (reference) variant's.

    The speed options must not change the maths: float32 variants should agree to rounding,
    bf16 autocast within its precision."""
    weights = {}
    for name, options in variants.items():
        c = dataclasses.replace(cfg, train_size=train_size, **options)
        with tempfile.TemporaryDirectory(prefix="colorlib-drift-") as run_dir:
            trainer = Trainer(c, Path(run_dir) / "run", progress=False, data_cache=data_cache)
            for it in range(iters):
                index = torch.arange(it * c.batch_size, (it + 1) * c.batch_size, device=trainer.device)
                trainer.train_step(index % trainer.images.shape[0])
            weights[name] = torch.cat([p.detach().float().flatten().cpu() for p in trainer.G.parameters()])
    reference = next(iter(weights.values()))
    return {name: float((w - reference).norm() / reference.norm()) for name, w in weights.items()}


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


def run_benchmark(preset: str = "paper", data: Optional[str] = None, iters: Optional[int] = None,
                  device: str = "auto", train_size: int = 5000, overrides: Optional[dict] = None,
                  with_compile: bool = False, also: Optional[list[dict]] = None) -> dict:
    """Time the tutorial loop, colorlib's trainer and the trainer with each of `also` (config
    overrides) side by side; with_compile adds the trainer with compile=True."""
    dev = pick_device(device)
    iters = iters or (300 if dev.type == "cuda" else 20)
    warmup = 10 if dev.type == "cuda" else 3
    # a few long rounds on a GPU (the DataLoader's prefetched batches favour the reference at the
    # start of each of its rounds); one iteration per round on a CPU, where other work on the
    # machine comes and goes within seconds and the loops should meet it alike
    rounds = min(iters, 3) if dev.type == "cuda" else iters
    per_round = -(-iters // rounds)
    source = resolve_source(data)
    cfg = make_config(preset, data=data, device=str(dev), train_size=train_size, **(overrides or {}))
    threads = torch.get_num_threads()  # the process default: the tutorial loop's, and the trainer's unless cfg.threads
    variants = [dict(v) for v in (also or [])] + ([dict(compile=True)] if with_compile else [])
    configs = [dataclasses.replace(cfg, **options) for options in [{}] + variants]
    trainers: list[Trainer] = []
    data_cache: dict = {}  # the trainers read the data once

    def start_trainer(c):
        with tempfile.TemporaryDirectory(prefix="colorlib-bench-") as run_dir:
            trainers.append(Trainer(c, Path(run_dir) / "run", progress=False, data_cache=data_cache))
        return trainer_loop(trainers[-1])

    loops = [Loop("tutorial loop", lambda: naive_loop(cfg, source, dev), threads)]
    loops += [Loop("colorlib" + (f" with {_describe(options)}" if options else ""),
                   lambda c=c: start_trainer(c), c.threads or threads) for options, c in zip([{}] + variants, configs)]
    try:
        time_side_by_side(loops, dev, warmup, rounds, per_round)
    finally:
        for loop in loops:
            if loop.steps is not None:
                loop.steps.close()  # the DataLoader's workers stop here
        torch.set_num_threads(threads)  # a trainer with cfg.threads set the process's
    naive, ours = loops[0], loops[1]
    ips = {loop.label: loop.images_per_s(per_round, cfg.batch_size) for loop in loops}
    naive_ips, ours_ips = ips[naive.label], ips[ours.label]
    overall = {loop.label: loop.overall_images_per_s(per_round, cfg.batch_size) for loop in loops}
    trainer = trainers[0]
    precision, reason = trainer_precision(trainer)
    infer_ips = time_inference(trainer, 500, 20 if dev.type == "cuda" else 3)
    alternatives = []
    for options, loop, t in zip(variants, loops[2:], trainers[1:]):
        alternatives.append({"overrides": options, "threads": loop.threads, "precision": trainer_precision(t)[0],
                             "train_images_per_s": round(ips[loop.label], 1),
                             "speedup": _median_ratio(naive, loop), "speedup_by_round": _ratios(naive, loop),
                             "speedup_overall": round(overall[loop.label] / overall[naive.label], 2)})
    compiled = alternatives[-1] if with_compile else None
    if dev.type == "cuda":  # the GPU-only options, checked against plain float32 eager steps
        drift = speed_option_drift(cfg, dev, {
            "fp32 eager": dict(amp=False, cuda_graphs=False, channels_last=False),
            "fp32 + CUDA graph + channels_last": dict(amp=False, cuda_graphs=True, channels_last=True),
            "bf16 autocast (all options)": dict(amp=True, cuda_graphs=True, channels_last=True)},
            data_cache=data_cache)
    else:
        amp_label = "bf16 autocast" if cpu_has_fast_bf16() else "amp=true (float32 here: bf16 does not pay)"
        drift = speed_option_drift(cfg, dev, {
            "fp32 contiguous": dict(amp=False, channels_last=False),
            "fp32 channels_last": dict(amp=False, channels_last=True),
            f"{amp_label} + channels_last": dict(amp=True, channels_last=True)}, iters=3, train_size=200,
            data_cache=data_cache)
    paper_iters = PAPER_EPOCHS * (PAPER_IMAGES // cfg.batch_size)
    result = {
        "preset": preset, "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
        "threads": threads, "batch_size": cfg.batch_size, "iterations_timed": rounds * per_round,
        "networks": {k: getattr(cfg, k) for k in ("g_width", "g_depth", "norm", "d_width", "d_depth", "d_norm")},
        "speed_options": {k: getattr(cfg, k) for k in ("channels_last", "amp", "compile", "cuda_graphs")},
        "colorlib_precision": precision, "colorlib_precision_reason": reason,
        "naive_train_images_per_s": round(naive_ips, 1), "colorlib_train_images_per_s": round(ours_ips, 1),
        "speedup": _median_ratio(naive, ours), "speedup_by_round": _ratios(naive, ours),
        "speedup_overall": round(overall[ours.label] / overall[naive.label], 2),
        "generator_inference_images_per_s": round(infer_ips, 1),
        "colorlib_compiled_train_images_per_s": compiled["train_images_per_s"] if compiled else None,
        "speedup_compiled": compiled["speedup"] if compiled else None,
        "alternatives": alternatives,
        "naive_peak_memory_mb": round(naive.peak_mb, 1), "colorlib_peak_memory_mb": round(ours.peak_mb, 1),
        "memory_measure": "CUDA max allocated" if dev.type == "cuda" else "process peak RSS",
        "paper_preset_projected_minutes": round(paper_iters * cfg.batch_size / ours_ips / 60, 1),
        "naive_paper_preset_projected_minutes": round(paper_iters * cfg.batch_size / naive_ips / 60, 1),
        "timing": {"warmup_iterations": warmup, "rounds": rounds, "iterations_per_round": per_round,
                   "images_per_s_by_round": {loop.label: [round(per_round * cfg.batch_size / t, 1)
                                                          for t in loop.seconds] for loop in loops}},
        "speed_option_drift_vs_reference": drift,
        "date": time.strftime("%Y-%m-%d"),
    }
    return result


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
    rows += [(f"weights drift after steps: {k}", f"{v:.1e}") for k, v in r["speed_option_drift_vs_reference"].items()]
    width = max(len(k) for k, _ in rows)
    timing = r.get("timing", {})
    head = [f"{r['preset']} networks, batch {r['batch_size']}, {r['device_name']} ({r['device']}), torch {r['torch']}, "
            f"{r['threads']} threads",
            f"colorlib precision: {r['colorlib_precision']} ({r['colorlib_precision_reason']})",
            f"timed side by side: {timing.get('rounds')} rounds of {timing.get('iterations_per_round')} iterations "
            f"of each loop in turn, after {timing.get('warmup_iterations')} warm-up iterations each; "
            f"images/s of the median round"]
    return "\n".join(head + [f"  {k:<{width}}  {v}" for k, v in rows])
