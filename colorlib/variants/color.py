"""Colour maths, one implementation: BT.601 YCbCr as in JPEG, around the paper's luma (paper/data.py),
the gray of Pillow's "L" mode that the generator reads. Everything here is linear, so it holds in [0, 1],
[0, 255] or the model's [-1, 1] alike.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..paper.data import LUMA_WEIGHTS, luma

KR, KG, KB = LUMA_WEIGHTS
# BT.601 YCbCr as in JPEG: Cb = (B - Y) / CB_SCALE, Cr = (R - Y) / CR_SCALE, both in [-0.5, 0.5]
CB_SCALE, CR_SCALE = 2 * (1 - KB), 2 * (1 - KR)
# how much one unit of Cb and Cr moves R, G and B: the columns of the inverse transform
CHROMA_TO_RGB = torch.tensor([[0.0, CR_SCALE],
                              [-KB * CB_SCALE / KG, -KR * CR_SCALE / KG],
                              [CB_SCALE, 0.0]])


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB [..., 3, H, W] in [0, 1] -> YCbCr: Y in [0, 1], Cb and Cr in [-0.5, 0.5]."""
    r, g, b = rgb.unbind(-3)
    y = luma(rgb)
    return torch.stack([y, (b - y) / CB_SCALE, (r - y) / CR_SCALE], dim=-3)


def ycbcr_to_rgb(ycbcr: torch.Tensor, chroma_to_rgb: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The exact inverse of `rgb_to_ycbcr` (no clipping), in any consistent units; `chroma_to_rgb`
    already on the device saves a host-to-device copy."""
    matrix = CHROMA_TO_RGB.to(ycbcr) if chroma_to_rgb is None else chroma_to_rgb
    y, cbcr = ycbcr[..., :1, :, :], ycbcr[..., 1:, :, :]
    return y + torch.einsum("ck,...khw->...chw", matrix, cbcr)
