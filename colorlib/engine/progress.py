"""The progress bar of a training run (tqdm: a terminal or a notebook widget)."""
from __future__ import annotations

from .run_files import LOSS_NAMES


def progress_bar(t):
    """A bar over trainer `t`'s whole run, starting where its checkpoint stands."""
    from tqdm.auto import tqdm
    iters = t.iterations_per_epoch
    where = f"{t.cfg.preset} on {t.device.type}"
    if t.device.type == "cpu":  # the thread count decides the speed on a shared CPU: say it
        where += f", {t.threads['threads']} thread{'s' if t.threads['threads'] != 1 else ''}"
    return tqdm(total=t.cfg.epochs * iters, initial=t.epoch * iters + t.iteration, unit="it",
                desc=where, dynamic_ncols=True)


def show_progress(bar, t, values: list[float], epoch: int, it: int) -> None:
    """Move the bar to iteration `it` of 0-based `epoch` and show its losses."""
    bar.total = t.cfg.epochs * t.iterations_per_epoch  # set_epochs may change the plan
    bar.update(epoch * t.iterations_per_epoch + it + 1 - bar.n)
    bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, values)}, refresh=False)
