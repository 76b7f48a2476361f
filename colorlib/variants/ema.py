"""An exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al.
2019): a low-pass filter over the oscillations of adversarial training. The engine calls
`update()` after every iteration and samples, validates and ships `model`; `NoAverage` is the
paper's case, where `model` is the generator itself."""
from __future__ import annotations

import copy

import torch
from torch import nn


class NoAverage:
    def __init__(self, G: nn.Module):
        self.model = G
        self.kept = False  # nothing of its own to checkpoint

    def update(self) -> None:
        pass


class WeightAverage:
    def __init__(self, G: nn.Module, decay: float):
        self.decay = decay
        self.kept = True
        self.model = copy.deepcopy(G).requires_grad_(False)
        self._pairs = [(e, p) for e, p in zip(self.model.parameters(), G.parameters()) if p.requires_grad]
        self._buffers = list(zip(self.model.buffers(), G.buffers()))

    @torch.no_grad()
    def update(self) -> None:
        # foreach ops on device tensors only, no host sync (AveragedModel keeps a host-side counter)
        ema, live = zip(*self._pairs)
        torch._foreach_lerp_(list(ema), list(live), 1.0 - self.decay)
        for e, b in self._buffers:  # batch-norm statistics follow the live network
            e.copy_(b)
