"""A small real-photo evaluation: colour photos that ship inside installed packages (matplotlib's and,
with the `photos` extra, scikit-image's, read with Pillow: skimage.data's loaders may download), colorized
by the colorize command's own path and scored against the original, beside the gray copy.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from ..inference import colorize
from .metrics import colourfulness, decode_outputs, psnr

MAX_SIDE = 512  # photos are shrunk to this long side: the evaluation takes seconds on a CPU
RENDER_SIZES = (32, 48, 64, 96, 128)
# {the skimage.data function's name: its file in scikit-image's skimage/data folder}
SKIMAGE_PHOTOS = {"astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png",
                  "rocket": "rocket.jpg", "stereo_motorcycle": "motorcycle_left.png", "immunohistochemistry": "ihc.png",
                  "retina": "retina.jpg", "hubble_deep_field": "hubble_deep_field.jpg"}


def sample_photos(max_side: Optional[int] = MAX_SIDE) -> list[tuple[str, torch.Tensor]]:
    """(name, uint8 RGB [3, H, W]) of the sample photos, shrunk (Lanczos) to at most `max_side` pixels
    on the long side (None: full size). A file that is missing or has no colour is skipped with a line."""
    from matplotlib import cbook
    files = [("grace_hopper", Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))]
    try:
        import skimage.data
        folder = Path(skimage.data.__file__).resolve().parent  # what the wheel ships, never a download cache
        files += [(name, folder / file) for name, file in SKIMAGE_PHOTOS.items()]
    except ImportError:
        print(f"note: scikit-image is not installed: its {len(SKIMAGE_PHOTOS)} sample photos are left out "
              f"(pip install 'colorlib[photos]')", file=sys.stderr)
    photos = []
    for name, path in files:
        if not path.is_file():
            print(f"note: sample photo {name} is left out: {path} is not installed", file=sys.stderr)
            continue
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
        if max_side is not None and max(img.size) > max_side:
            scale = max_side / max(img.size)
            img = img.resize(tuple(max(1, round(side * scale)) for side in img.size), Image.Resampling.LANCZOS)
        if not colorize.has_color(img):  # the command's own test for "already in colour"
            print(f"note: sample photo {name} is left out: it has no colour", file=sys.stderr)
            continue
        photos.append((name, torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()))
    return photos


def photo_luma(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [3, H, W] -> the float luma [H, W] the colorize command reads from this photo."""
    return colorize.gray_from_pil(colorize.to_pil(rgb)).luma


def gray_copy(rgb: torch.Tensor) -> torch.Tensor:
    """The no-model baseline of a photo: its luma copied into R, G and B, uint8 [3, H, W]."""
    return photo_luma(rgb).mul(255).round_().to(torch.uint8).expand(3, -1, -1).contiguous()


def evaluate_photos(model=None, render_sizes: Sequence[int] = RENDER_SIZES, chroma_gain: float = 1.0,
                    photos: Optional[Sequence[tuple[str, torch.Tensor]]] = None) -> dict:
    """Each photo's gray copy colorized at each render size and scored, per photo and as means. model: a
    generator, a checkpoint path or None (the shipped one). On one CPU thread: the inputs are small, so
    one is as fast as several on an idle machine, many times faster on a busy one."""
    started, previous = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if model is None or isinstance(model, (str, Path)):
            model = colorize.load_model(model)[0]
        photos = sample_photos() if photos is None else photos
        if not photos:
            raise ValueError("no photos to evaluate")
        info = [{"name": name, "height": rgb.shape[1], "width": rgb.shape[2],
                 "colourfulness": colourfulness(rgb[None]).item(),
                 "gray_psnr_db": psnr(gray_copy(rgb)[None], rgb[None]).item()} for name, rgb in photos]
        if any(p["colourfulness"] <= 0 for p in info):
            raise ValueError("a photo has no colour; leave it out")
        report = {"chroma_gain": chroma_gain, "max_side": MAX_SIDE, "render_sizes": list(render_sizes), "photos": info,
                  "results": {size: _at_render_size(model, size, chroma_gain, photos, info) for size in render_sizes}}
    finally:
        torch.set_num_threads(previous)
    report["seconds"] = time.perf_counter() - started
    return report


def _at_render_size(model, render_size: int, chroma_gain: float, photos, info) -> dict:
    start, rows = time.perf_counter(), []
    for (name, rgb), base in zip(photos, info):
        out = decode_outputs(colorize.colorized_files([colorize.GrayPhoto(photo_luma(rgb))], model, render_size,
                                                      ["PNG"], chroma_gain=chroma_gain))
        value, colour = psnr(out, rgb[None]).item(), colourfulness(out).item()
        rows.append({"name": name, "psnr_db": value, "gray_psnr_db": base["gray_psnr_db"],
                     "psnr_gain_db": value - base["gray_psnr_db"], "beats_gray": value > base["gray_psnr_db"],
                     "colourfulness": colour, "colourfulness_kept": colour / base["colourfulness"]})
    aggregate = {"photos": len(rows), **{name: sum(r[key] for r in rows) / len(rows) for name, key in (
        ("beats_gray_share", "beats_gray"), ("colourfulness_kept_mean", "colourfulness_kept"),
        ("psnr_mean_db", "psnr_db"), ("gray_psnr_mean_db", "gray_psnr_db"), ("psnr_gain_mean_db", "psnr_gain_db"))}}
    return {"per_photo": rows, "aggregate": {**aggregate, "seconds": time.perf_counter() - start}}


def best_render_size(report: dict) -> int:
    """The render size beating the gray copy on the most photos; ties: the one keeping more colourfulness."""
    aggregate = {size: result["aggregate"] for size, result in report["results"].items()}
    return max(aggregate, key=lambda s: (aggregate[s]["beats_gray_share"], aggregate[s]["colourfulness_kept_mean"]))

