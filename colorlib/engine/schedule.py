"""Learning rates per epoch: constant (the paper), or pix2pix's linear decay to zero over the
second half of the run. A pure function of (config, epoch), so a resumed run needs no state."""
from __future__ import annotations


def rates(cfg, epoch: int) -> tuple[float, float]:
    """(G's, D's) learning rates in epoch `epoch` (0-based)."""
    half = cfg.epochs // 2
    factor = 1.0 if cfg.lr_schedule == "constant" else 1.0 - max(0, epoch + 1 - half) / (cfg.epochs - half + 1)
    return cfg.lr * factor, (cfg.d_lr or cfg.lr) * factor
