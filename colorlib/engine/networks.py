"""The networks as the paper's training iteration calls them, with the engine's machinery inside.

`training_iteration` (paper/step.py) calls G(gray) and D(gray, colour) and freezes D's parameters
for the generator's update. The engine hands it `StepNetwork`s: the plain module's parameters,
called through bf16 autocast where it pays, DistributedDataParallel under torchrun and
torch.compile when asked. The discriminator reads colour in float32 and returns float32 logits
(the losses are computed in float32 whatever the precision of the networks).
"""
from __future__ import annotations

import torch
from torch import nn


class StepNetwork:
    def __init__(self, module: nn.Module, call, autocast, frozen_call=None, float_io: bool = False):
        """call: what runs the module in training (the module, or its DDP / compiled wrapper);
        frozen_call: what runs it while its parameters are frozen (under DDP the plain module:
        the DDP wrapper would wait for gradients that never come); float_io: cast the colour
        input and the output to float32 (the discriminator)."""
        self.module, self.call, self.autocast = module, call, autocast
        self.frozen_call = frozen_call or call
        self.float_io = float_io
        self._first = next(module.parameters())

    def parameters(self):
        return self.module.parameters()

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        call = self.call if self._first.requires_grad else self.frozen_call
        if not self.float_io:
            with self.autocast():
                return call(*inputs)
        gray, colour = inputs
        with self.autocast():
            out = call(gray, colour.float())
        return out.float()
