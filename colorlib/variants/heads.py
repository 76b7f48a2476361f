"""Output heads other than the paper's RGB: the generator's last layer turned into an image.

- `YCbCrOutput`: predict Cb and Cr only and keep the input's luma exactly (the paper's RGB
  output may change the brightness it was given).
- `ChromaClassesOutput`: chroma as a distribution over quantized bins (Zhang et al. 2016, see
  chroma.py), the image its annealed mean; the logits of the last forward are kept (`logits`)
  for the rebalanced cross-entropy (objectives.ChromaClassesLoss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .chroma import GRID, ChromaBins
from .color import CHROMA_TO_RGB, ycbcr_to_rgb


class YCbCrOutput(nn.Module):
    channels = 2

    def __init__(self):
        super().__init__()
        # kept on the model's device so the conversion needs no copy inside a CUDA graph
        self.register_buffer("chroma_to_rgb", CHROMA_TO_RGB.clone(), persistent=False)

    def forward(self, last: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        cbcr = torch.tanh(last)  # Cb, Cr span [-1, 1] in the model's units
        return ycbcr_to_rgb(torch.cat([gray, cbcr], dim=1), self.chroma_to_rgb.to(cbcr.dtype)).clamp(-1, 1)


class ChromaClassesOutput(nn.Module):
    """`grid`: the chroma lattice's side (grid^2 bins). `embed`: 0 lets the generator's last layer
    give the bins' logits itself, a transposed 4x4 convolution to grid^2 channels at full
    resolution (the quick networks: 64 -> 256 channels at 32x32, 4.5x the cost of the rest of G);
    embed > 0 has that layer give `embed` channels, which a ReLU and a convolution turn into the
    logits (as Zhang et al.'s network ends). `subsample` 2 (with embed) predicts the chroma
    distribution at half resolution, a 2x2 stride-2 convolution, and upsamples the chroma
    bilinearly: the per-bin work is 4x smaller, the luma is still the input's own at full
    resolution (as JPEG's 4:2:0 keeps chroma at half resolution; Zhang et al. predict at 1/4)."""

    def __init__(self, temperature: float = 0.38, grid: int = GRID, embed: int = 0, subsample: int = 1):
        super().__init__()
        if subsample > 1 and not embed:
            raise ValueError("a subsampled chroma head needs embed > 0 (the layer that subsamples)")
        self.temperature = temperature
        self.bins = ChromaBins(grid)
        self.project = nn.Sequential(nn.ReLU(), nn.Conv2d(embed, self.bins.count, subsample, subsample)) \
            if embed else None
        self.channels = embed or self.bins.count
        self.register_buffer("chroma_to_rgb", CHROMA_TO_RGB.clone(), persistent=False)
        self.logits = None  # those of the last forward pass
        # checkpoints written before the heads were objects keep the bins' weights at "bins.weights"
        self._register_load_state_dict_pre_hook(self._older_keys)

    def forward(self, last: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        if self.project is not None:
            last = self.project(last)
        self.logits = last
        cbcr = self.bins.annealed_mean(last, self.temperature)  # annealed mean of the chroma distribution
        if cbcr.shape[-2:] != gray.shape[-2:]:
            cbcr = F.interpolate(cbcr, size=gray.shape[-2:], mode="bilinear", align_corners=False)
        rgb = ycbcr_to_rgb(torch.cat([gray, cbcr.to(gray.dtype)], dim=1), self.chroma_to_rgb.to(gray.dtype))
        return rgb.clamp(-1, 1)

    @staticmethod
    def _older_keys(state_dict, prefix, *args) -> None:
        old = prefix[:-len("output.")] + "bins.weights" if prefix.endswith("output.") else None
        if old in state_dict and prefix + "bins.weights" not in state_dict:
            state_dict[prefix + "bins.weights"] = state_dict.pop(old)
