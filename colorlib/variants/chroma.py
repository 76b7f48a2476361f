"""Chroma as classes (Zhang et al. 2016). Regressing colour predicts the *mean* of the plausible colours (red,
green and blue cars average to brown-gray): why regression colorizers look washed out. Instead, per pixel a
probability for each cell of a quantized BT.601 Cb/Cr plane (not CIE ab, so the luma is kept exactly),
trained with a cross-entropy in which rare (saturated) colours weigh more than common (grayish) ones:

    L = - sum_pixels w(y) * sum_q t_q log p_q,     w = ((1 - r) * prior + r / Q)^-1, E_prior[w] = 1

t is the true colour spread over the 4 cells around it, prior the smoothed training distribution. The colour
shown is the *annealed mean* of p^(1/T): T = 1 the mean (muted, safe), T -> 0 the mode (vivid, sometimes
wrong); Zhang et al. chose T = 0.38 by eye.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GRID = 16
REBALANCE = 0.5  # r above: Zhang et al.'s lambda
PRIOR_SMOOTHING = 1.0  # Gaussian sigma of the prior, in cells (Zhang et al.: 5 in ab units of 10)


class ChromaBins(nn.Module):
    """The chroma lattice, its soft encoding, the annealed mean and the class-rebalancing weights."""

    def __init__(self, grid: int = GRID):
        super().__init__()
        self.grid = grid
        self.count = grid * grid
        axis = torch.linspace(-1, 1, grid)
        self.register_buffer("centres", torch.cartesian_prod(axis, axis), persistent=False)  # (Cb, Cr) of each cell
        # class weights: uniform until `fit_prior` has seen the training colours (saved with G)
        self.register_buffer("weights", torch.ones(self.count))

    def soft_encode(self, cbcr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Chroma [B, 2, H, W] in [-1, 1] -> the 4 neighbouring cells [B, 4, H, W] and their weights."""
        pos = (cbcr.float().clamp(-1, 1) + 1) * (self.grid - 1) / 2  # in cell units
        low = pos.floor().clamp(0, self.grid - 2)
        frac = pos - low
        i0, j0 = low[:, 0].long(), low[:, 1].long()
        fb, fr = frac[:, 0], frac[:, 1]
        cells = torch.stack([i0 * self.grid + j0, i0 * self.grid + j0 + 1,
                             (i0 + 1) * self.grid + j0, (i0 + 1) * self.grid + j0 + 1], 1)
        weights = torch.stack([(1 - fb) * (1 - fr), (1 - fb) * fr, fb * (1 - fr), fb * fr], 1)
        return cells, weights

    @torch.no_grad()
    def fit_prior(self, cbcr: torch.Tensor) -> torch.Tensor:
        """Set the rebalancing weights from training chroma [N, 2, H, W]; returns the prior."""
        cells, w = self.soft_encode(cbcr)
        counts = torch.zeros(self.count, device=cbcr.device).index_add_(0, cells.flatten(), w.flatten())
        prior = counts.view(1, 1, self.grid, self.grid)
        radius = 3
        x = torch.arange(-radius, radius + 1, device=cbcr.device, dtype=torch.float32)
        kernel = torch.exp(-x ** 2 / (2 * PRIOR_SMOOTHING ** 2))
        kernel = kernel / kernel.sum()
        prior = F.conv2d(prior, kernel.view(1, 1, -1, 1), padding=(radius, 0))
        prior = F.conv2d(prior, kernel.view(1, 1, 1, -1), padding=(0, radius)).flatten()
        prior = prior / prior.sum()
        weights = 1.0 / ((1 - REBALANCE) * prior + REBALANCE / self.count)
        weights = weights / (prior * weights).sum()  # E_prior[w] = 1
        self.weights.copy_(weights)
        return prior

    def loss(self, logits: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
        """The rebalanced soft cross-entropy, mean over pixels and images."""
        cells, w = (pixel_rows(t) for t in self.soft_encode(cbcr))  # [pixels, 4]
        logp = F.log_softmax(pixel_rows(logits).float(), dim=1)  # [pixels, Q]
        ce = -(logp.gather(1, cells) * w).sum(1)
        pixel_weight = (self.weights[cells] * w).sum(1)
        return (pixel_weight * ce).mean()

    def annealed_mean(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Logits [B, Q, H, W] -> chroma [B, 2, H, W]: the mean of softmax(logits / T)."""
        b, _, h, w = logits.shape
        p = torch.softmax(pixel_rows(logits).float() / temperature, dim=1)  # [pixels, Q]
        return (p @ self.centres).view(b, h, w, 2).permute(0, 3, 1, 2)


def pixel_rows(t: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B*H*W, C], one row per pixel: the bins' softmax, gather and mean then run
    along contiguous memory. A view of a channels_last tensor (what the training's convolutions
    give); the bins' work over a channels-first one was mostly strided copies (measured: 888 of
    4,267 ms in 3 iterations of the quick networks, 256 bins)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
