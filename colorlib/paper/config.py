"""The paper's hyperparameters (Sec. IV-B), and the presets that size a run.

The paper fixes the data (CIFAR-10, 32x32), the batch (50), the schedule (100 epochs, the
discriminator updated twice per generator update) and the optimizer ("Adam with default
parameters"). It leaves lambda of eq. (5) and the network widths and depths open; our choices
are the defaults below, each with its reason.

These are plain values, one per line, as in nanoGPT's config block. The configuration a run
uses (`colorlib.runs.config.Config`) is this class plus the variants' fields and the run
mechanics, all flat, so `--set lr=2e-4`, papermill parameters and `make_config("quick", lr=2e-4)`
override any of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class PaperConfig:
    # --- data (Sec. IV-A) ---
    train_size: Optional[int] = None  # random subset of the training images (None: all of them, as the paper)

    # --- networks (Fig. 1 and Fig. 2; widths and depths are not given: pix2pix's) ---
    g_width: int = 64  # channels of the generator's first encoder block, doubled per level
    g_depth: int = 4  # stride-2 levels: 32 -> 16 -> 8 -> 4 -> 2
    d_width: int = 64
    d_depth: int = 3

    # --- loss (eq. 5) ---
    lam: float = 100.0  # lambda; the paper gives none (see paper/losses.py for why 100)

    # --- optimisation (Sec. IV-B) ---
    epochs: int = 100
    batch_size: int = 50
    d_steps: int = 2  # discriminator updates per generator update
    lr: float = 1e-3  # torch.optim.Adam's default: the paper says "default parameters"
    beta1: float = 0.9
    beta2: float = 0.999
    seed: int = 0


PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a laptop CPU: the test suite and nbval run this; its colours stay flat gray
    "smoke": dict(train_size=200, val_size=50, epochs=2, batch_size=50, g_width=8, g_depth=3,
                  d_width=8, d_depth=2, n_samples=8, log_every=1),
    # minutes on a 2-core CPU: the committed notebooks and figures/quick
    "quick": dict(train_size=10000, val_size=2000, epochs=8, g_width=32, g_depth=4, d_width=32, d_depth=3,
                  log_every=10),
    # the quick networks on all 45,000 training images (5,000 held out for validation), for studies
    # in the background of a working day on a 2-core CPU. Measured on an idle 2-core AMD EPYC with
    # AVX512-BF16: the paper's recipe 46 s an epoch (30 epochs: about 24 minutes); the chroma-classes
    # variant 279 s an epoch (its 256-bin head at full resolution: 30 epochs take 2.3 hours). The
    # classes head at half resolution (chroma_embed=32, chroma_subsample=2) took 1.46x the iteration time on a
    # 2-core AVX2 EPYC (the full-resolution head 5.1x): about 34 minutes on the first CPU if the ratio
    # holds there (estimated, not timed)
    "cpu": dict(epochs=30, g_width=32, g_depth=4, d_width=32, d_depth=3, log_every=50),
    # the paper's schedule exactly: all 50,000 images, batch 50, 100 epochs, 2 D steps
    "paper": dict(checkpoint_every=5, log_every=200),
}
