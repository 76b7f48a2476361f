"""Benchmark: colorlib's trainer against the loop most tutorials write (a DataLoader, each batch made
float32 on the CPU and moved to the device), on the same networks, images, batch size and seed, both
around the paper's one `training_iteration`, so the ratio measures the engine around it and nothing else.
They are timed in rounds, the order alternating, so that other work on the machine slows both alike.
"""
from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, TensorDataset

from .. import variants
from ..engine.trainer import Trainer
from ..paper.data import epoch_order, to_model_range
from ..paper.step import training_iteration
from ..runs.device import device_name

PAPER_IMAGES, PAPER_EPOCHS = 50_000, 100


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tutorial_step(cfg, images: torch.Tensor, device: torch.device) -> Callable[[], torch.Tensor]:
    """The tutorial's loop over uint8 `images`, on networks built as the trainer's; each call one iteration."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(cfg.seed)
        G, D = variants.build_generator(cfg), variants.build_discriminator(cfg)
    variants.fit_to_data(G, images)
    G, D = G.to(device), D.to(device)
    betas = (cfg.beta1, cfg.beta2)
    g_opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas)
    d_opt = torch.optim.Adam(D.parameters(), lr=cfg.d_lr or cfg.lr, betas=betas)
    objective, d_steps = variants.build_objective(cfg, G), variants.discriminator_steps(cfg)
    loader = DataLoader(TensorDataset(images), batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    batches = (batch for _ in itertools.count() for (batch,) in loader)  # every epoch a new order

    def step() -> torch.Tensor:
        gray, rgb = to_model_range(next(batches))
        return training_iteration(G, D, g_opt, d_opt, gray.to(device), rgb.to(device), objective, d_steps)

    return step


def trainer_step(trainer: Trainer) -> Callable[[], torch.Tensor]:
    """colorlib's trainer on the images it holds, in the epoch order `fit` uses; each call one iteration."""
    n, batch, seed = trainer.images.shape[0], trainer.cfg.batch_size, trainer.cfg.seed
    orders = (epoch_order(n, epoch, seed, trainer.device) for epoch in itertools.count())
    batches = (order[it * batch:(it + 1) * batch] for order in orders for it in range(n // batch))
    return lambda: trainer.train_step(next(batches))


def training_flops(cfg, images: torch.Tensor) -> int:
    """FLOPs of one training iteration (backward passes included) on the uint8 batch `images`, on the CPU."""
    from torch.utils.flop_counter import FlopCounterMode
    step = tutorial_step(cfg, images, torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def time_side_by_side(steps: dict[str, Callable], device: torch.device, warmup: int, rounds: int,
                      per_round: int) -> dict[str, list[float]]:
    """Seconds of each of `rounds` rounds of `per_round` iterations of every loop, after `warmup` each."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    names, seconds = list(steps), {name: [] for name in steps}
    for r in range(rounds):
        for name in names[r % 2:] + names[:r % 2]:
            _sync(device)
            start = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            _sync(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def run_benchmark(cfg, iters: Optional[int] = None) -> dict:
    """Time both loops side by side: on a CPU one iteration a round, on a GPU three long rounds."""
    with tempfile.TemporaryDirectory(prefix="colorlib-bench-") as work, \
            Trainer(cfg, Path(work) / "run", progress=False) as trainer:
        dev, images, batch = trainer.device, trainer.images.cpu(), cfg.batch_size
        cuda = dev.type == "cuda"
        iters = iters or (300 if cuda else 20)
        rounds = min(iters, 3) if cuda else iters
        per_round = -(-iters // rounds)
        steps = {"tutorial": tutorial_step(cfg, images, dev), "colorlib": trainer_step(trainer)}
        seconds = time_side_by_side(steps, dev, 10 if cuda else 3, rounds, per_round)
        threads = torch.get_num_threads()
    flops = training_flops(cfg, images[:batch])
    ips = {k: statistics.median(per_round * batch / t for t in v) for k, v in seconds.items()}
    ratios = [a / b for a, b in zip(seconds["tutorial"], seconds["colorlib"])]
    return {"preset": cfg.preset, "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
            "threads": threads, "amp": cfg.amp, "batch_size": batch, "iterations_timed": rounds * per_round,
            "rounds": rounds, "tutorial_train_images_per_s": round(ips["tutorial"], 1),
            "colorlib_train_images_per_s": round(ips["colorlib"], 1), "speedup": round(statistics.median(ratios), 2),
            "speedup_by_round": [round(r, 2) for r in ratios], "training_flop_per_iteration": flops,
            "colorlib_train_tflop_per_s": round(flops / batch * ips["colorlib"] / 1e12, 4),
            "paper_preset_projected_minutes": round(PAPER_EPOCHS * PAPER_IMAGES / ips["colorlib"] / 60, 1),
            "date": time.strftime("%Y-%m-%d")}


def format_table(r: dict) -> str:
    ratios = r["speedup_by_round"]
    rows = [("training images/s, tutorial loop", f"{r['tutorial_train_images_per_s']:.0f}"),
            ("training images/s, colorlib", f"{r['colorlib_train_images_per_s']:.0f}"),
            ("speed-up (median round)", f"{r['speedup']:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)"),
            ("training TFLOP/s, colorlib", f"{r['colorlib_train_tflop_per_s']:.3g} "
             f"({r['training_flop_per_iteration']:.3e} FLOPs an iteration, FlopCounterMode)"),
            ("paper preset (100 epochs x 50,000), projected", f"{r['paper_preset_projected_minutes']:.1f} min")]
    width = max(len(k) for k, _ in rows)
    head = (f"{r['preset']} networks, batch {r['batch_size']}, {r['device_name']} ({r['device']}), torch {r['torch']}, "
            f"{r['threads']} threads, amp={str(r['amp']).lower()}; {r['rounds']} rounds, {r['iterations_timed']} "
            f"iterations of each loop")
    return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in rows])


def run_profile(cfg, iterations: int = 3, top: int = 15) -> tuple[str, list[dict]]:
    """torch.profiler's table of `iterations` of the trainer's, and its `top` operators by self time as rows."""
    from torch.profiler import ProfilerActivity, profile
    with tempfile.TemporaryDirectory(prefix="colorlib-profile-") as work, \
            Trainer(cfg, Path(work) / "run", progress=False) as trainer:
        step, cuda = trainer_step(trainer), trainer.device.type == "cuda"
        for _ in range(2):
            step()
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            for _ in range(iterations):
                step()
            _sync(trainer.device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = [{"op": e.key, "calls": e.count, "ms_per_iteration": round(getattr(e, key) / iterations / 1e3, 3)}
            for e in sorted(prof.key_averages(), key=lambda e: -getattr(e, key))[:top]]
    return prof.key_averages().table(sort_by=key, row_limit=top), rows
