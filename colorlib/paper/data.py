"""The paper's data transforms (Sec. IV-A): a grayscale input, its colour target, pixels in [-1, 1].

The gray input is BT.601 luma (the weights behind Pillow's "L" mode and OpenCV's RGB2GRAY) of the
very pixels the generator must colour, so the target's own luminance is what the generator sees.
Everything else about data (CIFAR-10 on disk, image folders, the validation split) is in
colorlib.runs.data.
"""
from __future__ import annotations

import torch

# ITU-R BT.601 luma
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB [..., 3, H, W] -> [..., H, W], in the input's units (it is linear)."""
    r, g, b = rgb.unbind(-3)
    kr, kg, kb = LUMA_WEIGHTS
    return kr * r + kg * g + kb * b


def to_model_range(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB [B, 3, H, W] -> (gray [B, 1, H, W], rgb [B, 3, H, W]) as float in [-1, 1]."""
    rgb = images.float().div_(127.5).sub_(1.0)
    return luma(rgb).unsqueeze(1), rgb


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 [0, 255], the inverse of the paper's scaling."""
    return x.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def epoch_order(n: int, epoch: int, seed: int, device=None) -> torch.Tensor:
    """The shuffled order of epoch `epoch`: a pure function of (seed, epoch), so resume is exact."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).to(device)
