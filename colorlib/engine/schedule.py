"""Learning rates per epoch: constant (the paper), or pix2pix's linear decay to zero over the
second half of the run. A pure function of (config, epoch), so a resumed run needs no state."""
from __future__ import annotations

import torch


def lr_factor(cfg, epoch: int) -> float:
    """The learning-rate multiplier of epoch `epoch` (0-based)."""
    if cfg.lr_schedule == "constant":
        return 1.0
    half = cfg.epochs // 2
    return 1.0 - max(0, epoch + 1 - half) / (cfg.epochs - half + 1)


def rates(cfg, epoch: int) -> tuple[float, float]:
    """(G's, D's) learning rates in epoch `epoch` (0-based)."""
    factor = lr_factor(cfg, epoch)
    return cfg.lr * factor, (cfg.d_lr or cfg.lr) * factor


def lr_value(t, lr: float):
    """A learning rate as trainer `t`'s optimizers hold it: a device tensor where a CUDA graph
    replays a schedule (the graph reads it in place), else a float."""
    return torch.tensor(lr, device=t.device) if t.lr_tensor else lr


def set_rates(t, epoch: int) -> None:
    """Trainer `t`'s optimizers at epoch `epoch`'s learning rates."""
    for opt, lr in zip((t.g_opt, t.d_opt), rates(t.cfg, epoch)):
        for group in opt.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                # in place: a captured CUDA graph holds this tensor's address, so a new tensor
                # would leave the graph reading freed memory
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr_value(t, lr)
