"""Colorize real photos of any size: keep the photo's own luminance, predict only its colour.

The generator was trained on 32x32 images, so it cannot see a 12-megapixel photo's detail,
and it need not: the detail is in the luminance, which the photo already has. As in Zhang
et al. (2016) and DeOldify, we

1. take the photo's luminance at full resolution (BT.601 luma, the gray the generator was
   trained on, see `data.to_model_range`);
2. downscale it to a working resolution (`render_size` on the short side, aspect kept; the
   generator is fully convolutional; never above the photo's own size, see `requested_shape`)
   and let the generator colour it;
3. keep only the colour (chroma) of the prediction, upsample it to the photo's size (colour
   varies slowly, so a smooth upsampling loses little), and
4. put it back together with the untouched full-resolution luminance.

How colourful the colour is, is one dial, `vividness` (vividness.py): 0 the safest colours (the
best PSNR on the generator's validation split), 1 as colourful as real photos; the default is
stored with the generator's calibration.

The network never sees more than `render_size` pixels on the short side, so the cost of a
large photo is decoding, one chroma upsampling and encoding: all linear in the pixels. The
working resolution is also capped in total (MAX_RENDER_PIXELS, MAX_RENDER_SIDE), so a very long
strip or a large `render_size` cannot make the generator's memory grow without bound.

Colour space: YCbCr (ITU-R BT.601, full range, as in JPEG). Its Y is exactly the luma the
generator is trained to read, so "the output's luminance equals the input's" means the same
quantity the model sees; the transform is linear, so it inverts exactly; and because Y is
unchanged along the line from a colour to its gray, an out-of-gamut colour can be pulled
back into [0, 1] by shrinking its chroma, without touching the luminance. CIE Lab would
interpolate chroma more perceptually evenly, but its L is not the model's luma, it needs a
non-linear sRGB conversion (scikit-image or kornia: one more dependency), and clipping an
out-of-gamut Lab colour changes its lightness.

    python -m colorlib colorize old_photos/ -o colorized/ [--vividness 0.5]
"""
from __future__ import annotations

import io
import math
import os
import signal
import stat
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from . import vividness as dial
from ..runs import rundir
from ..variants.color import CHROMA_TO_RGB, rgb_to_ycbcr
from ..paper.data import luma
from ..runs.config import ConfigError
from ..runs.data import IMAGE_EXTENSIONS
from ..runs.rundir import RunDirError

# the trained generator that ships with the package (a colorlib-generator-v1 file)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "generator.pt"
# what a folder given to the command line is searched for (files named explicitly are always tried)
PHOTO_EXTENSIONS = IMAGE_EXTENSIONS + (".tif", ".tiff")  # training data never comes as TIFF; photos do
METHODS = ("chroma", "naive")
# the working resolution's short side: chosen on the sample photos (colorlib.lab.photos, notebook 08):
# with the shipped generator, 64 beats the gray copy on 7 of 9 photos and keeps 69% of their
# colourfulness; 32 (its training size) 5 of 9 and 48%, 128 5 of 9 and 65% (blotchy patches).
# An image smaller than that is worked at its own size, never upsampled (`requested_shape`; issue 21):
# through this command, 32x32 CIFAR-10 images worked at 64 score below the gray copy's dataset PSNR,
# at their own 32 above it (5,000 validation images: -0.42 and +4.49 dB, inflated as the shipped
# generator trained on them; 1,000 test images: -0.50 and +0.47 dB). The cost: the sample photos
# shrunk to a short side of 40-56 px beat the gray copy on 4-5 of 9 at their own size, 6-7 at 64.
DEFAULT_RENDER_SIZE = 64
# the most the generator is shown of one photo (its memory grows with these); render_size at most
# MAX_RENDER_SIZE, and a working resolution over either limit is shrunk to fit
MAX_RENDER_PIXELS = 2 ** 22  # about 4 megapixels: some 1.6 GB for the shipped generator (g_width=64)
MAX_RENDER_SIDE = 2 ** 16
MAX_RENDER_SIZE = math.isqrt(MAX_RENDER_PIXELS)  # 2048: a square photo at the pixel limit



class ImageReadError(ValueError):
    """One input file that cannot be colorized; the message says why and what to do."""


PERMISSION_DENIED_FILE = "permission denied: you may not read this file; check its permissions (ls -l)"
PERMISSION_DENIED_FOLDER = ("permission denied: this folder cannot be read, so its photos were not "
                            "colorized; check its permissions (ls -ld)")


# ---------------------------------------------------------------- colour space
def combine(luma: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """Luma [H, W] and chroma [2, H, W] -> RGB [3, H, W] in [0, 1], with the luma kept exactly.

    Where luma + chroma leaves the RGB cube, the chroma is shrunk towards gray just enough to
    fit. Every point on that line has the same Y, so the luminance is never altered; clipping
    the channels instead would darken or brighten the pixel.
    """
    offset = torch.einsum("ck,...khw->...chw", CHROMA_TO_RGB.to(cbcr), cbcr)  # RGB - Y, which has luma 0
    # Y is a weighted mean of R, G, B, so min <= Y <= max and both ratios are >= 1 exactly when
    # the colour is inside [0, 1]: the largest chroma factor that keeps it there is
    low, high = offset.amin(-3), offset.amax(-3)
    scale = torch.minimum(luma / (-low).clamp_min(1e-12), (1 - luma) / high.clamp_min(1e-12))
    # (batches work too: luma [B, H, W] with chroma [B, 2, H, W])
    return offset.mul_(scale.clamp_(max=1.0).unsqueeze(-3)).add_(luma.unsqueeze(-3)).clamp_(0, 1)  # clamp: float dust


# ---------------------------------------------------------------- reading photos
@dataclass
class GrayPhoto:
    """What the colorizer takes from a photo."""
    luma: torch.Tensor  # float32 [H, W] in [0, 1]: the full-resolution BT.601 luminance
    alpha: Optional[torch.Tensor] = None  # uint8 [H, W] transparency, carried to the output
    was_color: bool = False  # the input already had colour (it is replaced)
    bits: int = 8  # bit depth of the input's gray levels
    frames: int = 1  # frames of an animation or pages of a multi-page file; only the first is used

    @property
    def size(self) -> tuple[int, int]:
        return self.luma.shape[1], self.luma.shape[0]  # (width, height), like PIL


def luma_of_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 or float RGB [3, H, W] -> float32 luma [H, W] in [0, 1], BT.601 like the training data."""
    scale = 255.0 if rgb.dtype == torch.uint8 else 1.0
    return luma(rgb.float()).div_(scale)


def _has_color(img: Image.Image) -> bool:
    """True if more than 0.1% of pixels differ between channels by more than 8 of 255 levels:
    a gray picture stored as RGB (also after JPEG) stays well below, a sepia print does not.
    Looked at on a ~256-pixel reduction: fast, and a colour region survives averaging."""
    factor = max(1, min(img.size) // 256)
    rgb = np.asarray((img.reduce(factor) if factor > 1 else img).convert("RGB")).astype(np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return bool((spread > 8).mean() > 1e-3)


def gray_from_pil(img: Image.Image) -> GrayPhoto:
    """Any Pillow image -> its luminance (and alpha); colour is dropped, and reported. Of an
    animation or a multi-page file, the current (first) frame; `frames` says how many there are."""
    photo = _gray_from_pil(img)
    photo.frames = _frame_count(img)
    return photo


def _frame_count(img: Image.Image) -> int:
    """Frames of an animation (GIF, APNG, WebP) or pages of a multi-page file (TIFF), as Pillow
    counts them. A camera's MPO JPEG holds a preview or depth map after the photo: that is one."""
    return 1 if img.format == "MPO" else getattr(img, "n_frames", 1)


def _gray_from_pil(img: Image.Image) -> GrayPhoto:
    if img.mode == "P":  # a palette: look the colours up (and the transparent index, if any)
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("PA", "RGBa"):  # palette + alpha, premultiplied alpha
        img = img.convert("RGBA")
    elif img.mode in ("L", "RGB") and "transparency" in img.info:  # one colour keyed transparent
        img = img.convert("LA" if img.mode == "L" else "RGBA")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit gray (PNG, TIFF)
        values = np.asarray(img)
        if values.max(initial=0) > 65535 or values.min(initial=0) < 0:
            raise ImageReadError("a 32-bit integer image; only 8- and 16-bit images are supported. "
                                 "Convert it to 16-bit first.")
        return GrayPhoto(torch.from_numpy(values.astype(np.float32) / 65535.0), bits=16)
    if img.mode == "F":
        raise ImageReadError("a 32-bit floating-point image; convert it to an 8- or 16-bit image first.")
    alpha = torch.from_numpy(np.array(img.getchannel("A"))) if "A" in img.getbands() else None
    was_color = False
    if img.mode not in ("1", "L", "LA"):  # a colour mode: RGB, RGBA, CMYK, YCbCr, LAB, HSV...
        was_color = _has_color(img)
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGB")
    # Pillow's L is BT.601 luma rounded to 8 bits, the gray the generator was trained on
    luma = torch.from_numpy(np.array(img.convert("L"))).float().div_(255)
    return GrayPhoto(luma, alpha, was_color)


def read_photo(source) -> GrayPhoto:
    """Read a photo file (a path, or its bytes, e.g. from an upload) upright, as a `GrayPhoto`.

    Anything Pillow decodes is accepted; the EXIF orientation of camera photos is applied. Every
    way a file can be unusable becomes an `ImageReadError` whose message says what is wrong
    with it. Images over Pillow's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, about
    89 megapixels; `--max-pixels` on the command line) are refused before decoding.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        size, suffix, opened = len(source), "", io.BytesIO(source)
    else:
        path = Path(source)
        try:
            size, suffix, opened = path.stat().st_size, path.suffix, path
        except FileNotFoundError:
            raise ImageReadError("no such file") from None
        except PermissionError:
            raise ImageReadError(PERMISSION_DENIED_FILE) from None
    if size == 0:
        raise ImageReadError("the file is empty (0 bytes); there is no picture in it")
    with warnings.catch_warnings():
        # Pillow warns between 1x and 2x its limit and raises above; refuse both the same way
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(opened) as img:
                img.load()  # decode now, so a truncated file fails here and not half-way
                photo = gray_from_pil(ImageOps.exif_transpose(img))
                photo.frames = _frame_count(img)  # (the upright copy has only one)
                return photo
        except ImageReadError:
            raise
        except PermissionError:
            raise ImageReadError(PERMISSION_DENIED_FILE) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReadError(
                f"too many pixels: {exc} If you trust this file, raise the limit with --max-pixels "
                f"(PIL.Image.MAX_IMAGE_PIXELS in Python).") from None
        except UnidentifiedImageError:
            named = f", although it is named {suffix}" if suffix else ""
            raise ImageReadError(f"not an image that Pillow can read{named}; is it really a picture?") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's errors for bad data
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ImageReadError(f"the image data is damaged or incomplete (Pillow: {detail}); "
                                 f"copy the file again from its source") from None
        except MemoryError:
            raise ImageReadError("not enough memory to decode this image") from None


# ---------------------------------------------------------------- the model
def load_model(checkpoint=None, device: Union[str, torch.device] = "cpu"):
    """(generator, config) from a generator.pt, a last.pt or a run directory.

    None means the generator that ships with colorlib (colorlib/weights/generator.pt). The
    generator carries the file's vividness calibration, if any (`vividness.calibration_of`).
    Raises `RunDirError` with what to do when the file is missing or is not a colorlib
    generator.
    """
    from .checkpoints import generator_from_checkpoint, run_checkpoint
    if checkpoint is None:
        if not DEFAULT_CHECKPOINT.exists():
            raise RunDirError(
                f"no trained generator ships with this copy of colorlib ({DEFAULT_CHECKPOINT} is "
                f"missing). Train one (`python -m colorlib train --preset quick --run-dir runs/quick`) "
                f"and pass it with --checkpoint runs/quick.")
        checkpoint = DEFAULT_CHECKPOINT
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise RunDirError(f"checkpoint {str(checkpoint)!r} does not exist. Pass a generator.pt written by "
                          f"`python -m colorlib train` (RUN/checkpoints/generator.pt) or its run directory.")
    try:  # the generator with its vividness calibration, where the file holds one
        path = run_checkpoint(checkpoint, ("generator.pt", "last.pt")) if checkpoint.is_dir() else checkpoint
        return generator_from_checkpoint(rundir.load_checkpoint(path), path, device)
    except RunDirError as exc:
        raise RunDirError(f"{exc} colorize needs a generator written by `python -m colorlib train` "
                          f"(RUN/checkpoints/generator.pt, last.pt or the run directory).") from None


def size_multiple(model: torch.nn.Module) -> int:
    """The generator halves its input g_depth times, so sides must be multiples of 2**g_depth."""
    return 2 ** (len(model.down) + 1)


def requested_shape(height: int, width: int, render_size: int, multiple: int) -> tuple[int, int]:
    """The working resolution `render_size` asks for: `render_size` on the short side, the long
    side in proportion, rounded to the generator's multiple (so the aspect ratio changes by at
    most half of it). Never above the photo's own size: a photo whose short side is under
    `render_size` is worked at that side rounded down to the multiple (a 32x32 image at 32, as
    the generator was trained), and no side beyond the photo's own (rounded down); only a photo
    smaller than `multiple` is enlarged, to `multiple`. `render_shape` is what the generator is given."""
    if render_size < multiple or render_size % multiple:
        raise ConfigError(f"render_size={render_size} must be a positive multiple of {multiple} for this "
                          f"generator (it halves the image {multiple.bit_length() - 1} times); "
                          f"try {max(multiple, round(render_size / multiple) * multiple)}")
    if render_size > MAX_RENDER_SIZE:
        raise ConfigError(f"render_size={render_size} is too large: the generator sees at most "
                          f"{MAX_RENDER_SIZE} pixels on the short side ({MAX_RENDER_PIXELS / 1e6:.1f} "
                          f"megapixels in all; it was trained on 32x32 images); use {multiple} to {MAX_RENDER_SIZE}")
    short, long = sorted((height, width))
    size = min(render_size, max(multiple, short // multiple * multiple))  # never above its own short side
    long_side = max(multiple, round(size * long / short / multiple) * multiple)
    long_side = min(long_side, max(size, long // multiple * multiple))  # nor above its own long side
    return (size, long_side) if height <= width else (long_side, size)


def render_shape(height: int, width: int, render_size: int, multiple: int) -> tuple[int, int]:
    """The working resolution: `requested_shape`, shrunk in proportion where it would exceed
    MAX_RENDER_PIXELS or MAX_RENDER_SIDE, so memory stays bounded whatever the photo's aspect
    ratio (the short side of a very long strip stops at `multiple`; its long side takes the rest)."""
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
    """The generator's colour picture [3, h, w] in [0, 1] of `luma` [H, W] at the working
    resolution; of a batch of lumas of one size [B, H, W], [B, 3, h, w] (one generator call).
    temperature: the chroma-classes head's annealing temperature for this call (None: its own)."""
    batch = luma if luma.dim() == 3 else luma[None]
    shape = render_shape(*batch.shape[-2:], render_size, size_multiple(model))
    device = next(model.parameters()).device
    small = batch[:, None]
    if tuple(small.shape[-2:]) != shape:  # (at its own size the photo goes in as it is)
        small = F.interpolate(small, size=shape, mode="bilinear", antialias=True, align_corners=False)
    was_training = model.training
    head = model.output if temperature is not None else None
    own = head.temperature if head is not None else None
    model.eval()  # batch norm with its running statistics, whatever mode the caller left it in
    try:
        if head is not None:
            head.temperature = temperature
        out = model(small.to(device).mul(2).sub(1))  # [0, 1] -> the model's [-1, 1]
    finally:
        model.train(was_training)
        if head is not None:
            head.temperature = own
    out = out.float().cpu().add(1).div(2).clamp(0, 1)
    return out if luma.dim() == 3 else out[0]


def _knobs(model, method: str, chroma_gain: Optional[float], vividness, temperature: Optional[float]
           ) -> tuple[float, Optional[float]]:
    """(chroma gain, temperature or None) for this call, checked (see `vividness.knobs`)."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r}; choose one of {', '.join(METHODS)}")
    if chroma_gain is not None and not (_finite(chroma_gain) and chroma_gain >= 0):
        raise ConfigError(f"chroma_gain={chroma_gain!r} must be a finite number >= 0")
    if temperature is not None:
        if not (_finite(temperature) and temperature > 0):
            raise ConfigError(f"temperature={temperature!r} must be a finite number > 0")
        if not dial.has_temperature(model):
            raise ConfigError("temperature applies to generators with the chroma-classes head (output=classes) only")
    if method == "naive":
        if vividness is not None or chroma_gain not in (None, 1.0):
            what = "vividness" if vividness is not None else "chroma_gain"
            raise ConfigError(f"{what} applies to method='chroma' only (naive keeps the generator's RGB as it is)")
        return 1.0, temperature
    return dial.knobs(model, vividness, chroma_gain, temperature)


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resampling of [B, C, h, w] to `size` (nothing to do at the same size). Bicubic: at
    30-100x magnification bilinear leaves visible diamond-shaped facets (antialias only changes
    downsampling; upsampling needs none)."""
    return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bicubic", align_corners=False)


@torch.inference_mode()
def colorize_luma(luma: torch.Tensor, model: torch.nn.Module, render_size: int = DEFAULT_RENDER_SIZE,
                  method: str = "chroma", chroma_gain: Optional[float] = None, vividness: Optional[float] = None,
                  temperature: Optional[float] = None) -> torch.Tensor:
    """Full-resolution luma [H, W] in [0, 1] -> colour uint8 [3, H, W]; a batch of lumas of one
    size [B, H, W] -> [B, 3, H, W], colorized in one generator call.

    method="chroma": the generator's chroma, upsampled, on the input's own luminance.
    method="naive": the generator's RGB output upsampled as it is (blurry; for comparison).
    vividness (chroma only): the dial V in [0, 1] (vividness.py), 0 the safest colours, 1 as
    colourful as real photos; None: the generator's default (its calibration's, else gain 1).
    Or the knobs the dial turns, instead of it: chroma_gain (chroma only) multiplies the
    predicted chroma before it goes back on the luma (0 gives the gray copy, above 1 more
    saturated colours; `combine` keeps them in gamut), temperature is the chroma-classes head's
    (1: the mean of its bins, towards 0: their mode; other heads have none).
    """
    gain, temperature = _knobs(model, method, chroma_gain, vividness, temperature)
    batch = luma if luma.dim() == 3 else luma[None]
    small = predict_rgb(model, batch, render_size, temperature)
    size = tuple(batch.shape[-2:])
    if method == "naive":
        out = _to_uint8(_resize(small, size).clamp(0, 1))
        return out if luma.dim() == 3 else out[0]
    cbcr = _resize(rgb_to_ycbcr(small)[:, 1:], size)
    if gain != 1.0:
        cbcr = cbcr * gain
    # stored height x width x 3 (returned as a [3, H, W] view) so Pillow can take it without a copy
    out = torch.empty(batch.shape[0], *size, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
    for top in range(0, size[0], 512):  # in strips, so temporaries stay small on huge photos
        rows = slice(top, top + 512)
        out[:, :, rows] = _to_uint8(combine(batch[:, rows], cbcr[:, :, rows]))
    return out if luma.dim() == 3 else out[0]


def colorized_files(photos: Sequence[GrayPhoto], model: torch.nn.Module, render_size: int = DEFAULT_RENDER_SIZE,
                    formats: Sequence[str] = (), method: str = "chroma", chroma_gain: Optional[float] = None,
                    vividness: Optional[float] = None, temperature: Optional[float] = None) -> list[bytes]:
    """What the colorize command writes for each photo: the bytes of its output file, in
    `formats[i]` ("JPEG" or "PNG", as `output_format` picks them; default PNG).

    The one path from a photo's luma to its output: the command calls it for every photo, one at a
    time, and every "through colorize" score (colorlib.lab.metrics.colorize_method, the photo
    evaluation) calls it for a batch, so a score is the command's own output. Photos of one size are
    colorized together (one generator call); on the CPU that gives every photo the same bytes as
    alone (tests/test_scoring_path.py; a GPU may choose kernels by batch size that round the last
    bit otherwise). method, vividness, chroma_gain, temperature: see `colorize_luma` (the command
    passes its --vividness, None by default: the generator's default V).
    """
    formats = list(formats) or ["PNG"] * len(photos)
    if len(formats) != len(photos):
        raise ValueError(f"{len(photos)} photos but {len(formats)} formats")
    files: list[bytes] = [b""] * len(photos)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, photo in enumerate(photos):
        by_size.setdefault(tuple(photo.luma.shape), []).append(i)
    for group in by_size.values():
        lumas = photos[group[0]].luma[None] if len(group) == 1 else torch.stack([photos[i].luma for i in group])
        rgb = colorize_luma(lumas, model, render_size, method, chroma_gain, vividness, temperature)
        for j, i in enumerate(group):
            files[i] = encode(to_pil(rgb[j], photos[i].alpha), formats[i])
    return files


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def colorize(image, model, render_size: int = DEFAULT_RENDER_SIZE, method: str = "chroma",
             vividness: Optional[float] = None) -> Image.Image:
    """Colorize one photo of any size and aspect ratio; returns a Pillow image of the same size.

    image: a Pillow image (any mode; colour is dropped first), a path, or a luma tensor
    [H, W] / [1, H, W] (float in [0, 1] or uint8). model: a generator (see `load_model`) or a
    checkpoint path. vividness: how colourful, from 0 (the safest colours) to 1 (as colourful
    as real photos); None: the generator's calibrated default (see vividness.py; a generator
    without a calibration warns once when asked for a vividness, and follows the default
    mapping). The output has the input's luminance (up to 8-bit rounding) and, for a Pillow
    image or file with transparency, its alpha channel.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)[0]
    if vividness is not None:
        _warn_uncalibrated(model)
    if isinstance(image, (str, os.PathLike)):
        photo = read_photo(image)
    elif isinstance(image, Image.Image):
        photo = gray_from_pil(image)
    elif isinstance(image, torch.Tensor):
        luma = image.squeeze(0) if image.dim() == 3 else image
        if luma.dim() != 2:
            raise ValueError(f"a luma tensor must be [H, W] or [1, H, W], got {tuple(image.shape)}")
        photo = GrayPhoto(luma.float() / 255 if luma.dtype == torch.uint8 else luma.float())
    else:
        raise TypeError(f"colorize takes a Pillow image, a path or a tensor, not {type(image).__name__}")
    return to_pil(colorize_luma(photo.luma, model, render_size, method, vividness=vividness), photo.alpha)


def _warn_uncalibrated(model) -> None:
    """A UserWarning, once per generator, that it has no vividness calibration."""
    note = dial.uncalibrated_note(model)
    if note and not getattr(model, "_colorlib_warned_uncalibrated", False):
        model._colorlib_warned_uncalibrated = True
        warnings.warn(note, UserWarning, stacklevel=3)


def to_pil(rgb: torch.Tensor, alpha: Optional[torch.Tensor] = None) -> Image.Image:
    """uint8 [3, H, W] (and uint8 [H, W] alpha) -> a Pillow RGB (RGBA) image."""
    img = Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy())
    if alpha is not None:
        img.putalpha(Image.fromarray(alpha.numpy()))
    return img


# ---------------------------------------------------------------- files and folders
def output_format(path: Path, has_alpha: bool) -> tuple[str, str]:
    """(extension, Pillow format): JPEG in, JPEG out; everything else, and transparency, PNG."""
    if path.suffix.lower() in (".jpg", ".jpeg") and not has_alpha:
        return path.suffix, "JPEG"
    return ".png", "PNG"


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=95)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def write_atomically(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write `data` through a temporary file beside `path` and a rename (rundir's one atomic
    writer): a crash, a full disk or Ctrl-C leaves either the complete file or nothing."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    rundir.atomic_write_bytes(path, data)


@dataclass
class Job:
    source: Path
    relative: Path  # where under the output folder its result goes (without the extension)


def collect_jobs(inputs: list[str], out_dir: Path) -> tuple[list[Job], list[tuple[str, str]]]:
    """The photos named by `inputs` (files, or folders searched recursively) and, separately,
    (input, problem) for inputs that name nothing usable and for folders that cannot be read.
    A photo named twice (the same file, or a file and a folder holding it) is taken once, as
    first named. When the output folder lies inside an input folder, its files are left out, so
    a second run does not colorize the first's outputs."""
    jobs, problems, seen = [], [], set()
    out_resolved = out_dir.resolve()

    def add(job: Job) -> None:
        key = job.source.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append(job)

    for name in inputs:
        path = Path(name)
        try:
            mode = path.stat().st_mode
        except PermissionError:
            problems.append((name, "permission denied: a folder on the way to it cannot be searched; "
                                   "check its permissions (ls -ld)"))
            continue
        except OSError:
            mode = 0
        if stat.S_ISDIR(mode):
            inside = out_resolved != path.resolve()  # out_dir == the folder itself is refused later
            found, unreadable = _photos_in(path, out_resolved if inside else None)
            problems += [(str(folder), PERMISSION_DENIED_FOLDER) for folder in unreadable]
            if not found and not unreadable:
                problems.append((name, f"no photos ({', '.join(PHOTO_EXTENSIONS)}) in this folder"))
            for p in found:
                add(Job(p, p.relative_to(path).with_suffix("")))
        elif stat.S_ISREG(mode):
            add(Job(path, Path(path.stem)))
        else:
            problems.append((name, "no such file or folder"))
    return jobs, problems


def _photos_in(folder: Path, skip: Optional[Path]) -> tuple[list[Path], list[Path]]:
    """(photo files under `folder` but not under `skip`, sorted; folders that could not be read).
    Like Path.rglob, symbolic links to folders are not followed; unlike it, a folder that cannot be
    listed is reported instead of passed over in silence."""
    found, unreadable = [], []
    for root, _, files in os.walk(folder, onerror=lambda exc: unreadable.append(Path(exc.filename))):
        for name in files:
            p = Path(root) / name
            if (p.suffix.lower() in PHOTO_EXTENSIONS and not name.startswith(".") and p.is_file()
                    and not (skip is not None and skip in p.resolve().parents)):
                found.append(p)
    return sorted(found), sorted(unreadable)


def _describe_problem(exc: BaseException) -> str:
    if isinstance(exc, ImageReadError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"could not write the output ({exc.strerror or exc}); nothing was written"
    return f"unexpected error ({type(exc).__name__}: {exc})"


def _target(out_dir: Path, job: Job, has_alpha: bool) -> tuple[Path, str]:
    ext, fmt = output_format(job.source, has_alpha)
    return out_dir / job.relative.with_suffix(ext), fmt


def _refuse_overwriting_inputs(jobs: list[Job], out_dir: Path) -> Optional[str]:
    input_files = {j.source.resolve() for j in jobs}
    for job in jobs:
        for has_alpha in (False, True):
            target = _target(out_dir, job, has_alpha)[0]
            if target.resolve() in input_files:
                return (f"refusing to write into {out_dir}: the output {target} would overwrite an input "
                        f"photo. Choose an output folder that holds none of the inputs.")
    return None


def _prepare_output_folder(out_dir: Path) -> Optional[str]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        return (f"cannot write to the output folder {out_dir} ({exc.strerror or exc}). "
                f"Choose a folder you can write to with -o.")
    return None


class OutputFolderError(RuntimeError):
    """The output folder cannot take the batch (an input would be overwritten, it cannot be
    written to); nothing was colorized. The message says what to choose instead."""


class ColorizeInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP: `signum`) stopped `colorize_files`; the message says how many
    photos are done (those are whole)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


@dataclass
class ColorizeSummary:
    """What `colorize_files` did: `failed` holds (input, problem) for every input not colorized."""
    out_dir: Path
    photos: int
    done: int = 0
    skipped: int = 0  # their output existed already
    colour_inputs: int = 0  # converted to gray first
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        summary = f"colorized {self.done} of {self.photos} photo(s) into {self.out_dir}"
        if self.skipped:
            summary += f", {self.skipped} skipped (output exists)"
        if self.colour_inputs:
            summary += f", {self.colour_inputs} already in colour (converted to gray first)"
        return summary + (f"; {len(self.failed)} failed" if self.failed else "; none failed")


def colorize_files(inputs: list[str], out_dir, checkpoint=None, render_size: int = DEFAULT_RENDER_SIZE,
                   device: str = "cpu", overwrite: bool = False, max_pixels: Optional[int] = None,
                   progress: bool = True, vividness: Optional[float] = None) -> ColorizeSummary:
    """Colorize the photos named by `inputs` (files, or folders searched recursively) into `out_dir`,
    each written atomically; a photo that cannot be colorized is named on stderr (FAILED ...) and
    the others go on. Everything that would spoil the whole batch is checked before the first
    photo: RunDirError or ConfigError (the checkpoint, render_size, device), OutputFolderError.
    Ctrl-C raises ColorizeInterrupted. max_pixels: Pillow's decompression-bomb limit for this
    batch (0: none; default Pillow's). vividness: the dial, 0 to 1 (see `colorize`; None: the
    generator's default); a generator without a calibration gets one note on stderr."""
    if vividness is not None:
        vividness = dial.check_vividness(vividness)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels if max_pixels > 0 else None
    try:
        return _colorize_files(inputs, Path(out_dir), checkpoint, render_size, device, overwrite, progress,
                               vividness)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit  # a process-wide setting: leave it as it was


def _colorize_files(inputs: list[str], out_dir: Path, checkpoint, render_size: int, device: str,
                    overwrite: bool, progress: bool, vividness: Optional[float]) -> ColorizeSummary:
    """colorize_files once Pillow's limit is set: the batch checked, then every photo in turn."""
    from tqdm import tqdm

    jobs, failed = collect_jobs(inputs, out_dir)
    for name, problem in failed:
        print(f"FAILED {name}: {problem}", file=sys.stderr)
    model = _model_for_batch(jobs, out_dir, checkpoint, render_size, device)
    if vividness is not None and dial.uncalibrated_note(model):
        print(f"note: {dial.uncalibrated_note(model)}", file=sys.stderr)
    result = ColorizeSummary(out_dir, len(jobs), failed=failed)
    claim = _output_claims()
    bar = tqdm(jobs, unit="photo", desc="colorize", disable=not progress or None, file=sys.stderr)
    try:
        for job in bar:
            try:
                _colorize_job(job, out_dir, model, render_size, overwrite, claim, result, vividness)
            except Exception as exc:  # one bad photo must not stop the batch (Ctrl-C still does)
                failed.append((str(job.source), _describe_problem(exc)))
                tqdm.write(f"FAILED {job.source}: {failed[-1][1]}", file=sys.stderr)
    except KeyboardInterrupt as exc:  # outputs are written atomically: those done are whole, none is partial
        bar.close()
        signum = getattr(exc, "signum", signal.SIGINT)  # the command line turns SIGTERM/SIGHUP into one
        said = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        raise ColorizeInterrupted(
            f"interrupted: colorized {result.done} of {len(jobs)} photo(s) into {out_dir} before {said}; run "
            f"the same command again to do the rest (photos already colorized are skipped)", signum) from None
    bar.close()
    return result


def _model_for_batch(jobs: list[Job], out_dir: Path, checkpoint, render_size: int, device: str):
    """The batch's generator, after the checks that would refuse the whole batch (an output over an
    input, an unusable checkpoint, render_size or device, an unwritable out_dir)."""
    from ..runs.device import pick_device

    # everything that would spoil the whole batch is checked before the first photo
    refusal = _refuse_overwriting_inputs(jobs, out_dir)
    if refusal is None:
        model, _ = load_model(checkpoint, pick_device(device))
        render_shape(32, 32, render_size, size_multiple(model))
        refusal = _prepare_output_folder(out_dir)
    if refusal:
        raise OutputFolderError(refusal)
    return model


def _output_claims():
    """claim(target, job): records that `job` writes `target`, and refuses a second input writing it."""
    claimed: dict[Path, Job] = {}  # output -> the input that writes it

    def claim(target: Path, job: Job) -> None:
        if claimed.setdefault(target, job) is not job:
            raise ImageReadError(f"its output {target} would be the output of {claimed[target].source} "
                                 f"too; colorize photos of the same name into separate folders")
    return claim


def _colorize_job(job: Job, out_dir: Path, model, render_size: int, overwrite: bool, claim,
                  result: ColorizeSummary, vividness: Optional[float] = None) -> None:
    """One photo colorized and written atomically into out_dir, or skipped when its output exists
    and not overwrite; counted in `result`."""
    from tqdm import tqdm

    target, _ = _target(out_dir, job, has_alpha=False)
    claim(target, job)
    if target.exists() and not overwrite:  # before decoding: reruns are cheap
        tqdm.write(f"skipped {job.source}: {target} exists (pass --overwrite to replace it)",
                   file=sys.stderr)
        result.skipped += 1
        return
    photo = read_photo(job.source)
    target, fmt = _target(out_dir, job, photo.alpha is not None)  # transparency needs PNG
    claim(target, job)
    _note_input(job, photo, result)
    _note_reduced_size(job, photo, model, render_size)
    data = colorized_files([photo], model, render_size, [fmt], vividness=vividness)[0]  # the scorers' path too
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, data, overwrite=overwrite)
    result.done += 1


def _note_input(job: Job, photo: GrayPhoto, result: ColorizeSummary) -> None:
    """A note when an input is already in colour (once per batch; counted) or has several frames."""
    from tqdm import tqdm

    if photo.was_color:
        if result.colour_inputs == 0:
            tqdm.write(f"note: {job.source} is already in colour: colour photos are converted to "
                       f"gray first and get new colours (this note is not repeated; the summary "
                       f"counts them)", file=sys.stderr)
        result.colour_inputs += 1
    if photo.frames > 1:
        tqdm.write(f"note: {job.source} has {photo.frames} frames (an animation or a multi-page "
                   f"file); only the first is colorized", file=sys.stderr)


def _note_reduced_size(job: Job, photo: GrayPhoto, model, render_size: int) -> None:
    """One line when the generator is shown less than --render-size asks for (see `render_shape`)."""
    from tqdm import tqdm
    multiple = size_multiple(model)
    asked = requested_shape(*photo.luma.shape, render_size, multiple)
    shape = render_shape(*photo.luma.shape, render_size, multiple)
    if shape != asked:
        width, height = photo.size
        tqdm.write(f"note: {job.source} ({width}x{height}) is worked at {shape[1]}x{shape[0]} pixels instead of "
                   f"{asked[1]}x{asked[0]}, to keep memory bounded (at most {MAX_RENDER_PIXELS / 1e6:.1f} "
                   f"megapixels, sides up to {MAX_RENDER_SIDE})", file=sys.stderr)

