"""Colorize real photos of any size: keep the photo's own luminance, predict only its colour.

The generator was trained on 32x32 images; the detail of a large photo is in its luminance. As in
Zhang et al. (2016) and DeOldify, the generator colours the luma shrunk to `render_size`, and its
chroma (YCbCr), enlarged (colour varies slowly), is put back on the untouched full-resolution luma.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from . import vividness as dial
from .checkpoints import DEFAULT_CHECKPOINT, load_model  # noqa: F401  (colorize's API: the generator)
from ..paper.data import luma
from ..runs.config import ConfigError
from ..runs.rundir import first_line
from ..variants.color import CHROMA_TO_RGB, rgb_to_ycbcr

METHODS = ("chroma", "naive")
# the working resolution's short side, chosen on the sample photos (lab/photos.py, docs/photos.md): 64
# beats the gray copy on 7 of 9 and keeps 69% of their colourfulness (32: 5 of 9, 48%; 128: 5 of 9, blotchy)
DEFAULT_RENDER_SIZE = 64
# the most the generator is shown of one photo (its memory grows with it): ~4 megapixels, ~1.6 GB for g_width=64
MAX_RENDER_PIXELS = 2 ** 22
MAX_RENDER_SIDE = 2 ** 16
MAX_RENDER_SIZE = math.isqrt(MAX_RENDER_PIXELS)  # 2048: a square photo at the pixel limit


class ImageReadError(ValueError):
    """One input file that cannot be colorized; the message says why and what to do."""


def combine(luma: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """Luma [..., H, W] and chroma [..., 2, H, W] -> RGB [..., 3, H, W] in [0, 1], the luma kept
    exactly: where luma + chroma leaves the RGB cube, the chroma is shrunk towards gray just enough."""
    offset = torch.einsum("ck,...khw->...chw", CHROMA_TO_RGB.to(cbcr), cbcr)  # RGB - Y, which has luma 0
    # min <= Y <= max, so both ratios are >= 1 exactly when the colour is inside [0, 1]
    low, high = offset.amin(-3), offset.amax(-3)
    scale = torch.minimum(luma / (-low).clamp_min(1e-12), (1 - luma) / high.clamp_min(1e-12))
    return offset.mul_(scale.clamp_(max=1.0).unsqueeze(-3)).add_(luma.unsqueeze(-3)).clamp_(0, 1)  # clamp: float dust


def luma_of_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 or float RGB [3, H, W] -> float32 luma [H, W] in [0, 1], BT.601 like the training data."""
    return luma(rgb.float()).div_(255.0 if rgb.dtype == torch.uint8 else 1.0)


@dataclass
class GrayPhoto:
    """What the colorizer takes from a photo."""
    luma: torch.Tensor  # float32 [H, W] in [0, 1]: the full-resolution BT.601 luminance
    alpha: Optional[torch.Tensor] = None  # uint8 [H, W] transparency, carried to the output
    was_color: bool = False  # the input already had colour (it is replaced)
    frames: int = 1  # frames of an animation or pages of a multi-page file; only the first is used

    @property
    def size(self) -> tuple[int, int]:
        return self.luma.shape[1], self.luma.shape[0]  # (width, height), like PIL


def has_color(img: Image.Image) -> bool:
    """More than 0.1% of pixels whose channels differ by more than 8 of 255 levels (a gray picture
    stored as RGB stays below, also after JPEG; a sepia print does not), on a ~256-pixel reduction."""
    factor = max(1, min(img.size) // 256)
    rgb = np.asarray((img.reduce(factor) if factor > 1 else img).convert("RGB")).astype(np.int16)
    return bool(((rgb.max(axis=2) - rgb.min(axis=2)) > 8).mean() > 1e-3)


def gray_from_pil(img: Image.Image) -> GrayPhoto:
    """Any Pillow image -> its luminance (and alpha); colour is dropped, and reported."""
    frames = 1 if img.format == "MPO" else getattr(img, "n_frames", 1)  # MPO: a camera's photo + its preview
    if img.mode.startswith("I"):  # 16-bit gray (PNG, TIFF)
        values = np.asarray(img)
        if values.max(initial=0) > 65535 or values.min(initial=0) < 0:
            raise ImageReadError("a 32-bit integer image; only 8- and 16-bit images are supported")
        return GrayPhoto(torch.from_numpy(values.astype(np.float32) / 65535.0), frames=frames)
    if img.mode == "F":
        raise ImageReadError("a 32-bit floating-point image; convert it to an 8- or 16-bit image first")
    if "transparency" in img.info or img.mode in ("PA", "RGBa", "La"):
        img = img.convert("RGBA")  # a palette's or a keyed colour's transparency as alpha
    elif img.mode == "P":
        img = img.convert("RGB")
    alpha = torch.from_numpy(np.array(img.getchannel("A"))) if "A" in img.getbands() else None
    was_color = img.mode not in ("1", "L", "LA") and has_color(img)
    if img.mode not in ("1", "L", "LA", "RGB", "RGBA"):  # CMYK, YCbCr, ...
        img = img.convert("RGB")
    # Pillow's L is BT.601 luma rounded to 8 bits, the gray the generator was trained on
    return GrayPhoto(torch.from_numpy(np.array(img.convert("L"))).float().div_(255), alpha, was_color, frames)


def read_photo(source, max_pixels: Optional[int] = None) -> GrayPhoto:
    """A photo file (a path, or its bytes) read upright (EXIF orientation applied), else ImageReadError saying
    why. Images of more than `max_pixels` (None: Pillow's MAX_IMAGE_PIXELS; 0: no limit) are refused undecoded."""
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    opened = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source)
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the check is ours, below
    try:
        with Image.open(opened) as img:
            if limit and img.width * img.height > limit:
                raise ImageReadError(f"too many pixels: {img.width}x{img.height} is over the limit of {limit:,} "
                                     f"(a decompression bomb?); if you trust the file, raise it with --max-pixels")
            ImageOps.exif_transpose(img, in_place=True)  # decodes now: a truncated file fails here, not half-way
            return gray_from_pil(img)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError("no such file") from None
    except PermissionError:
        raise ImageReadError("permission denied: you may not read this file; check its permissions (ls -l)") from None
    except UnidentifiedImageError:
        empty = (len(source) if isinstance(opened, io.BytesIO) else opened.stat().st_size) == 0
        raise ImageReadError("the file is empty (0 bytes)" if empty else "not an image that Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's errors for bad data
        raise ImageReadError(f"the image data is damaged or incomplete (Pillow: {first_line(exc)}); copy it "
                             f"again from its source") from None
    except MemoryError:
        raise ImageReadError("not enough memory to decode this image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def size_multiple(model: torch.nn.Module) -> int:
    """The generator halves its input g_depth + 1 times, so sides must be multiples of this."""
    return 2 ** (len(model.down) + 1)


def requested_shape(height: int, width: int, render_size: int, multiple: int) -> tuple[int, int]:
    """The working resolution `render_size` asks for: that on the short side, the long side in
    proportion, both multiples of `multiple`; never above the photo's own size (rounded down), so a
    32x32 image is worked at 32 (only a photo smaller than `multiple` is enlarged, to it)."""
    if render_size < multiple or render_size % multiple or render_size > MAX_RENDER_SIZE:
        raise ConfigError(f"render_size={render_size} must be a multiple of {multiple} for this generator, "
                          f"from {multiple} to {MAX_RENDER_SIZE} (it was trained on 32x32 images)")
    short, long = sorted((height, width))
    size = min(render_size, max(multiple, short // multiple * multiple))
    long_side = max(multiple, round(size * long / short / multiple) * multiple)
    long_side = min(long_side, max(size, long // multiple * multiple))
    return (size, long_side) if height <= width else (long_side, size)


def render_shape(height: int, width: int, render_size: int, multiple: int) -> tuple[int, int]:
    """`requested_shape`, shrunk in proportion where it would exceed MAX_RENDER_PIXELS or
    MAX_RENDER_SIDE, so memory stays bounded whatever the aspect ratio (a long strip's short side
    stops at `multiple`; its long side takes the rest)."""
    h, w = requested_shape(height, width, render_size, multiple)
    scale = min(1.0, math.sqrt(MAX_RENDER_PIXELS / (h * w)), MAX_RENDER_SIDE / max(h, w))
    if scale == 1.0:
        return h, w
    h, w = (max(multiple, math.floor(side * scale) // multiple * multiple) for side in (h, w))
    longest = min(MAX_RENDER_SIDE, MAX_RENDER_PIXELS // min(h, w)) // multiple * multiple
    return (min(h, longest), w) if h >= w else (h, min(w, longest))


@torch.inference_mode()
def predict_rgb(model: torch.nn.Module, luma: torch.Tensor, render_size: int = DEFAULT_RENDER_SIZE,
                temperature: Optional[float] = None) -> torch.Tensor:
    """The generator's colour picture [3, h, w] in [0, 1] of `luma` [H, W] at the working resolution
    ([B, 3, h, w] for lumas of one size [B, H, W]); temperature: the classes head's, for this call."""
    batch = luma if luma.dim() == 3 else luma[None]
    shape = render_shape(*batch.shape[-2:], render_size, size_multiple(model))
    small = _resize(batch[:, None], shape, "bilinear")
    was_training, own = model.training, getattr(model.output, "temperature", None)
    model.eval()  # batch norm with its running statistics, whatever mode the caller left it in
    try:
        if temperature is not None:
            model.output.temperature = temperature
        out = model(small.to(next(model.parameters()).device).mul(2).sub(1))  # [0, 1] -> the model's [-1, 1]
    finally:
        model.train(was_training)
        if temperature is not None:
            model.output.temperature = own
    out = out.float().cpu().add(1).div(2).clamp(0, 1)
    return out if luma.dim() == 3 else out[0]


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Shrinking: antialiased bilinear; enlarging: bicubic (at 30-100x bilinear leaves diamond-shaped facets)."""
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode=mode, antialias=mode == "bilinear", align_corners=False)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


@torch.inference_mode()
def colorize_luma(luma: torch.Tensor, model: torch.nn.Module, render_size: int = DEFAULT_RENDER_SIZE,
                  method: str = "chroma", chroma_gain: Optional[float] = None, vividness: Optional[float] = None,
                  temperature: Optional[float] = None) -> torch.Tensor:
    """Full-resolution luma [H, W] in [0, 1] -> colour uint8 [3, H, W] ([B, H, W] -> [B, 3, H, W]).
    method="naive": the RGB output enlarged as it is (blurry; for comparison). vividness: the dial V in [0, 1]
    (None: the generator's default), or the knobs it turns: chroma_gain and temperature (vividness.knobs)."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r}; choose one of {', '.join(METHODS)}")
    if method == "naive" and (vividness is not None or chroma_gain not in (None, 1.0)):
        raise ConfigError("vividness and chroma_gain apply to method='chroma' only")
    gain, temperature = dial.knobs(model, vividness, chroma_gain, temperature)
    batch = luma if luma.dim() == 3 else luma[None]
    small = predict_rgb(model, batch, render_size, temperature)
    size = tuple(batch.shape[-2:])
    if method == "naive":
        out = _to_uint8(_resize(small, size).clamp(0, 1))
        return out if luma.dim() == 3 else out[0]
    cbcr = _resize(rgb_to_ycbcr(small)[:, 1:], size)
    if gain != 1.0:
        cbcr = cbcr * gain
    # stored height x width x 3 (returned as a [3, H, W] view) so Pillow takes it without a copy
    out = torch.empty(batch.shape[0], *size, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
    for top in range(0, size[0], 512):  # in strips, so temporaries stay small on huge photos
        rows = slice(top, top + 512)
        out[:, :, rows] = _to_uint8(combine(batch[:, rows], cbcr[:, :, rows]))
    return out if luma.dim() == 3 else out[0]


def to_pil(rgb: torch.Tensor, alpha: Optional[torch.Tensor] = None) -> Image.Image:
    """uint8 [3, H, W] (and uint8 [H, W] alpha) -> a Pillow RGB (RGBA) image."""
    img = Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy())
    if alpha is not None:
        img.putalpha(Image.fromarray(alpha.numpy()))
    return img


def colorized_files(photos: Sequence[GrayPhoto], model: torch.nn.Module, render_size: int = DEFAULT_RENDER_SIZE,
                    formats: Sequence[str] = (), method: str = "chroma", chroma_gain: Optional[float] = None,
                    vividness: Optional[float] = None, temperature: Optional[float] = None) -> list[bytes]:
    """Each photo's output file bytes in formats[i] ("JPEG" or "PNG"; default PNG): the one path from a luma
    to an output, for the command and every "through colorize" score (photos of one size in one generator
    call: on a CPU the same bytes as alone). Knobs: see `colorize_luma`."""
    formats = list(formats) or ["PNG"] * len(photos)
    files: list[bytes] = [b""] * len(photos)
    groups: dict[torch.Size, list[int]] = {}
    for i, photo in enumerate(photos):
        groups.setdefault(photo.luma.shape, []).append(i)
    for group in groups.values():
        lumas = torch.stack([photos[i].luma for i in group])
        rgb = colorize_luma(lumas, model, render_size, method, chroma_gain, vividness, temperature)
        for j, i in enumerate(group):
            buf = io.BytesIO()
            to_pil(rgb[j], photos[i].alpha).save(buf, formats[i], **({"quality": 95} if formats[i] == "JPEG" else {}))
            files[i] = buf.getvalue()
    return files


def colorize(image, model, render_size: int = DEFAULT_RENDER_SIZE, method: str = "chroma",
             vividness: Optional[float] = None) -> Image.Image:
    """One photo of any size -> a Pillow image of the same size, with its luminance (up to 8-bit rounding) and
    transparency. image: a Pillow image, a path, or a luma tensor [H, W] / [1, H, W] (float in [0, 1] or uint8);
    model: a generator or checkpoint path; vividness: 0 (safest colours) to 1 (as colourful as its training data)."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)[0]
    note = dial.uncalibrated_note(model) if vividness is not None else None
    if note and not getattr(model, "_warned", False):
        model._warned = True
        warnings.warn(note, UserWarning, stacklevel=2)
    if isinstance(image, (str, os.PathLike)):
        photo = read_photo(image)
    elif isinstance(image, Image.Image):
        photo = gray_from_pil(image)
    elif isinstance(image, torch.Tensor) and image.squeeze(0).dim() == 2:
        gray = image.squeeze(0)
        photo = GrayPhoto(gray.float() / 255 if gray.dtype == torch.uint8 else gray.float())
    else:
        raise TypeError("colorize takes a Pillow image, a path or a luma tensor [H, W]")
    return to_pil(colorize_luma(photo.luma, model, render_size, method, vividness=vividness), photo.alpha)
