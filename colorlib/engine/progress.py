"""The progress bar of a training run (tqdm: a terminal or a notebook widget)."""
from __future__ import annotations

from .run_files import LOSS_NAMES


def progress_bar(t):
    """A bar over trainer `t`'s whole run, starting where its checkpoint stands."""
    from tqdm.auto import tqdm
    iters = t.iterations_per_epoch
    return tqdm(total=t.cfg.epochs * iters, initial=t.epoch * iters + t.iteration, unit="it",
                desc=f"{t.cfg.preset} on {t.device.type}{cpu_threads(t)}", dynamic_ncols=True)


def cpu_threads(t) -> str:
    """", N CPU threads" for a run on the CPU (the count decides its speed on a shared CPU), else ""."""
    n = t.threads["threads"]
    return f", {n} CPU thread{'s' if n != 1 else ''}" if t.device.type == "cpu" else ""


def show_progress(bar, t, values: list[float], epoch: int, it: int) -> None:
    """Move the bar to iteration `it` of 0-based `epoch` and show its losses."""
    bar.total = t.cfg.epochs * t.iterations_per_epoch  # set_epochs may change the plan
    bar.update(epoch * t.iterations_per_epoch + it + 1 - bar.n)
    bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, values)}, refresh=False)
