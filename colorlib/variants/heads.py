"""Output heads other than the paper's RGB (which may change the brightness it was given).
`YCbCrOutput` predicts Cb and Cr only and keeps the input's luma exactly; `ChromaClassesOutput`
predicts chroma as a distribution over quantized bins (chroma.py), the image its annealed mean, and
keeps the last forward's `logits` for the rebalanced cross-entropy (objectives.ChromaClassesLoss).
"""
from __future__ import annotations

import torch
from torch import nn

from .chroma import ChromaBins
from .color import CHROMA_TO_RGB, ycbcr_to_rgb


class YCbCrOutput(nn.Module):
    channels = 2

    def __init__(self):
        super().__init__()
        # a buffer, so that it follows the model to its device
        self.register_buffer("chroma_to_rgb", CHROMA_TO_RGB.clone(), persistent=False)

    def forward(self, last: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        cbcr = torch.tanh(last)  # Cb, Cr span [-1, 1] in the model's units
        return ycbcr_to_rgb(torch.cat([gray, cbcr], dim=1), self.chroma_to_rgb.to(cbcr.dtype)).clamp(-1, 1)


class ChromaClassesOutput(nn.Module):
    """The generator's last layer gives one logit per chroma bin and pixel (256 channels)."""

    def __init__(self, temperature: float = 0.38):
        super().__init__()
        self.temperature = temperature
        self.bins = ChromaBins()
        self.channels = self.bins.count
        self.register_buffer("chroma_to_rgb", CHROMA_TO_RGB.clone(), persistent=False)
        self.logits = None  # those of the last forward pass

    def forward(self, last: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        self.logits = last
        cbcr = self.bins.annealed_mean(last, self.temperature)
        rgb = ycbcr_to_rgb(torch.cat([gray, cbcr.to(gray.dtype)], dim=1), self.chroma_to_rgb.to(gray.dtype))
        return rgb.clamp(-1, 1)
