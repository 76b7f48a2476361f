"""A small real-photo evaluation: colour photos that ship inside installed packages, colorized
from their gray copy and scored like the CIFAR-10 test (`colorlib.lab.metrics`).

The generator was trained on 32x32 CIFAR-10 images; this checks what it does to real photos,
at the working resolutions `colorize --render-size` offers. The photos need no download:

- matplotlib's sample data: grace_hopper.jpg (a core dependency, always there);
- scikit-image's bundled images (the `photos` extra: pip install 'colorlib[photos]'): the files
  that ship inside its wheel, read straight from the package folder with Pillow. `skimage.data`'s
  loaders are not called, as they may fetch missing files from the internet. Without
  scikit-image these photos are left out, with one line on stderr.

Synthetic pictures (skimage's colorwheel and logo, matplotlib's logo and clip art) and gray
ones (camera, moon, coins...) are not photos to colorize and are left out; any photo that turns
out to have no colour is skipped as well.

Each photo is scored as the CIFAR test scores a method: per-image PSNR of the 8-bit result
against the original, the gray copy (the luma the model sees, copied into R, G and B) as the
no-model baseline, and Hasler & Suesstrunk colourfulness. The colorization is the `colorize`
command's own output: `colorize.colorized_files`, the command's path, on the photo's BT.601 luma as
Pillow computes it, written as the PNG it writes for a PNG input (lossless) and decoded.

    from colorlib.lab.photos import evaluate_photos, photo_table
    print(photo_table(evaluate_photos()))
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from ..inference import colorize
from .metrics import colourfulness, decode_outputs, psnr

# photos are downscaled to at most this many pixels on the long side before they are evaluated:
# the whole evaluation then takes seconds on a CPU, and the generator sees at most render_size
# pixels on the short side anyway
MAX_SIDE = 512
RENDER_SIZES = (32, 48, 64, 96, 128)
# (name, file in matplotlib's sample data)
MATPLOTLIB_PHOTOS = (("grace_hopper", "grace_hopper.jpg"),)
# (name, file in scikit-image's skimage/data folder); the name is the skimage.data function's
SKIMAGE_PHOTOS = (
    ("astronaut", "astronaut.png"),
    ("chelsea", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("rocket", "rocket.jpg"),
    ("stereo_motorcycle", "motorcycle_left.png"),  # the left view; the right one is nearly the same photo
    ("immunohistochemistry", "ihc.png"),
    ("retina", "retina.jpg"),
    ("hubble_deep_field", "hubble_deep_field.jpg"),
)
SKIMAGE_MISSING = ("note: scikit-image is not installed: its {n} sample photos are left out "
                   "(pip install 'colorlib[photos]')")


# ---------------------------------------------------------------- the photos
def _photo_files() -> list[tuple[str, Path]]:
    """(name, path) of every photo this installation has, in a fixed order."""
    from matplotlib import cbook
    files = [(name, Path(cbook.get_sample_data(file, asfileobj=False))) for name, file in MATPLOTLIB_PHOTOS]
    try:
        import skimage.data
    except ImportError:
        print(SKIMAGE_MISSING.format(n=len(SKIMAGE_PHOTOS)), file=sys.stderr)
        return files
    folder = Path(skimage.data.__file__).resolve().parent  # what the wheel ships, never a download cache
    return files + [(name, folder / file) for name, file in SKIMAGE_PHOTOS]


def load_photo(path, max_side: Optional[int] = MAX_SIDE) -> Image.Image:
    """A photo file as an upright Pillow RGB image, downscaled (Lanczos) to at most `max_side`
    pixels on the long side (None: full size)."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    scale = 1.0 if max_side is None else max_side / max(img.size)
    if scale < 1.0:
        img = img.resize(tuple(max(1, round(side * scale)) for side in img.size), Image.Resampling.LANCZOS)
    return img


def sample_photos(max_side: Optional[int] = MAX_SIDE, names: Optional[Sequence[str]] = None
                  ) -> list[tuple[str, torch.Tensor]]:
    """(name, uint8 RGB [3, H, W]) of the colour photos that ship with matplotlib and, where it
    is installed, scikit-image; downscaled to at most `max_side` pixels on the long side (None:
    full size). `names`: only these, in this order. A bundled file that is missing or has no
    colour is skipped with one line on stderr."""
    files = _photo_files()
    if names is not None:
        found = dict(files)
        unknown = [n for n in names if n not in found]
        if unknown:
            raise ValueError(f"unknown or unavailable photo(s) {unknown}; available: {', '.join(found)}")
        files = [(n, found[n]) for n in names]
    photos = []
    for name, path in files:
        if not path.is_file():
            print(f"note: sample photo {name} is left out: {path} is not installed", file=sys.stderr)
            continue
        img = load_photo(path, max_side)
        if not colorize._has_color(img):  # the test the colorize command uses for "already in colour"
            print(f"note: sample photo {name} is left out: it has no colour", file=sys.stderr)
            continue
        photos.append((name, torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()))
    return photos


def photo_luma(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [3, H, W] -> the float luma [H, W] the `colorize` command reads from this photo
    (Pillow's BT.601 "L", 8-bit: exactly what `colorize.read_photo` gives for the same pixels)."""
    return colorize.gray_from_pil(colorize.to_pil(rgb)).luma


def gray_copy(rgb: torch.Tensor) -> torch.Tensor:
    """The no-model baseline of a photo: its luma (as the model sees it) copied into R, G and B, uint8 [3, H, W]."""
    return colorize._to_uint8(photo_luma(rgb)).expand(3, -1, -1).contiguous()


# ---------------------------------------------------------------- colorizing with a chroma gain
@torch.inference_mode()
def colorize_luma_gain(luma: torch.Tensor, model: torch.nn.Module, render_size: int = 32,
                       chroma_gain: float = 1.0, method: str = "chroma") -> torch.Tensor:
    """The colorize command's output for this luma [H, W] (`colorize.colorized_files`, its own
    path, as the PNG it writes for a PNG input, decoded): uint8 [3, H, W], the same as
    `colorize.colorize_luma`; with the predicted chroma multiplied by `chroma_gain` (1: exactly
    what the command writes; 0: the gray copy; above 1: more saturated colours)."""
    files = colorize.colorized_files([colorize.GrayPhoto(luma)], model, render_size, ["PNG"], method, chroma_gain)
    return decode_outputs(files)[0]


@contextlib.contextmanager
def torch_threads(threads: Optional[int]):
    """PyTorch's CPU threads set to `threads` inside the block, restored after it (None: unchanged)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _model(model):
    """A generator, a checkpoint path, or None for the generator that ships with colorlib."""
    if model is None or isinstance(model, (str, os.PathLike)):
        return colorize.load_model(model)[0]
    return model


# ---------------------------------------------------------------- the evaluation
def evaluate_photos(model=None, render_sizes: Sequence[int] = RENDER_SIZES, method: str = "chroma",
                    chroma_gain: float = 1.0, photos: Optional[Sequence[tuple[str, torch.Tensor]]] = None,
                    max_side: Optional[int] = MAX_SIDE, threads: Optional[int] = 1) -> dict:
    """Colorize each sample photo's gray copy at each render size and score it against the photo.

    model: a generator, a checkpoint path, or None for the shipped one (colorlib/weights/generator.pt).
    photos: (name, uint8 RGB [3, H, W]) pairs; default `sample_photos(max_side)`, i.e. every photo
    downscaled to at most `max_side` (512) pixels on the long side, which keeps the whole evaluation
    to seconds on a CPU. The colorization is the `colorize` command's (see `colorize_luma_gain`).

    Per photo and render size: PSNR of the colorization and of the gray copy against the original
    (dB, 8-bit, as `metrics.psnr`), whether the model beats gray (higher PSNR), and the share of the
    original's colourfulness kept (colourfulness(output) / colourfulness(original)). Per render
    size, over the photos: the share where the model beats gray, the mean colourfulness kept, mean
    PSNRs, and the seconds it took. Returns a dict (JSON-ready) that `photo_table` renders.

    threads: PyTorch's CPU threads while it runs (restored afterwards; None: leave them). The
    generator's inputs are small (render_size on the short side), so one thread is as fast as
    several on an idle machine and many times faster on a busy one.
    """
    started = time.perf_counter()
    with torch_threads(threads):
        model = _model(model)
        if photos is None:
            photos = sample_photos(max_side)
        if not photos:
            raise ValueError("no photos to evaluate")
        report = _evaluate(model, render_sizes, method, chroma_gain, photos, max_side)
    report["seconds"] = time.perf_counter() - started  # model and photos loaded, every render size
    return report


def _evaluate(model, render_sizes, method, chroma_gain, photos, max_side) -> dict:
    info = []
    for name, rgb in photos:
        if rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[0] != 3:
            raise ValueError(f"photo {name!r}: expected uint8 RGB [3, H, W], got {rgb.dtype} {tuple(rgb.shape)}")
        truth = rgb[None]
        original = colourfulness(truth).item()
        if original <= 0:
            raise ValueError(f"photo {name!r} has no colour; leave it out")
        info.append({"name": name, "height": rgb.shape[1], "width": rgb.shape[2], "colourfulness": original,
                     "gray_psnr_db": psnr(gray_copy(rgb)[None], truth).item()})
    report = {"method": method, "chroma_gain": chroma_gain, "max_side": max_side,
              "render_sizes": list(render_sizes), "photos": info, "results": {}}
    lumas = [photo_luma(rgb) for _, rgb in photos]
    for render_size in render_sizes:
        start = time.perf_counter()
        rows = []
        for (name, rgb), luma, base in zip(photos, lumas, info):
            out = colorize_luma_gain(luma, model, render_size, chroma_gain, method)[None]
            value, colour = psnr(out, rgb[None]).item(), colourfulness(out).item()
            rows.append({"name": name, "psnr_db": value, "gray_psnr_db": base["gray_psnr_db"],
                         "psnr_gain_db": value - base["gray_psnr_db"], "beats_gray": value > base["gray_psnr_db"],
                         "colourfulness": colour, "colourfulness_kept": colour / base["colourfulness"]})
        n = len(rows)
        report["results"][render_size] = {
            "per_photo": rows,
            "aggregate": {
                "photos": n,
                "beats_gray_share": sum(r["beats_gray"] for r in rows) / n,
                "colourfulness_kept_mean": sum(r["colourfulness_kept"] for r in rows) / n,
                "psnr_mean_db": sum(r["psnr_db"] for r in rows) / n,
                "gray_psnr_mean_db": sum(r["gray_psnr_db"] for r in rows) / n,
                "psnr_gain_mean_db": sum(r["psnr_gain_db"] for r in rows) / n,
                "seconds": time.perf_counter() - start,
            },
        }
    return report


def best_render_size(report: dict) -> int:
    """The render size whose colorizations beat the gray copy on the most photos; ties go to the
    one that keeps more of the photos' colourfulness."""
    return max(report["results"], key=lambda s: (report["results"][s]["aggregate"]["beats_gray_share"],
                                                 report["results"][s]["aggregate"]["colourfulness_kept_mean"]))


def photo_table(report: dict) -> str:
    """`evaluate_photos`' report as Markdown: one row per render size (aggregates), then one row
    per photo (PSNR over the gray copy and colourfulness kept at each render size)."""
    photos, sizes = report["photos"], report["render_sizes"]
    side = f"at most {report['max_side']} px on the long side" if report.get("max_side") else "full size"
    took = f" {report['seconds']:.1f} s in all." if "seconds" in report else ""
    lines = [f"{len(photos)} photos ({side}): {', '.join(p['name'] for p in photos)}. Method "
             f"{report['method']}, chroma gain {report['chroma_gain']:g}; scored against the original like "
             f"the CIFAR-10 test. Best render size by share beating gray, then colourfulness kept: "
             f"{best_render_size(report)}.{took}", "",
             "| Render size | Beats gray | Colourfulness kept (mean) | PSNR mean (dB) | Gray PSNR mean (dB) "
             "| PSNR - gray (dB) | Seconds |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        a = report["results"][size]["aggregate"]
        lines.append(f"| {size} | {a['beats_gray_share']:.0%} | {a['colourfulness_kept_mean']:.0%} | "
                     f"{a['psnr_mean_db']:.2f} | {a['gray_psnr_mean_db']:.2f} | {a['psnr_gain_mean_db']:+.2f} | "
                     f"{a['seconds']:.1f} |")
    lines += ["", "Per photo: PSNR over the gray copy (dB) / colourfulness kept, at each render size.", "",
              "| Photo | Size | Colourfulness | Gray PSNR (dB) | " + " | ".join(str(s) for s in sizes) + " |",
              "|---|---|---:|---:|" + "---:|" * len(sizes)]
    for i, p in enumerate(photos):
        cells = [f"{r['psnr_gain_db']:+.2f} / {r['colourfulness_kept']:.0%}"
                 for r in (report["results"][s]["per_photo"][i] for s in sizes)]
        lines.append(f"| {p['name']} | {p['width']}x{p['height']} | {p['colourfulness']:.1f} | "
                     f"{p['gray_psnr_db']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the figure
def photo_grid(model=None, render_size: int = 32, photos: Optional[Sequence[tuple[str, torch.Tensor]]] = None,
               method: str = "chroma", chroma_gain: float = 1.0, max_side: Optional[int] = MAX_SIDE,
               height: float = 1.4, threads: Optional[int] = 1):
    """Original, gray copy and colorization of each sample photo (columns) as a matplotlib Figure
    (no pyplot, so nothing global is touched). Each row is `height` inches tall at 100 dpi: small,
    and photographic, so save it as JPEG (`tutorial.jpeg`). threads: as for `evaluate_photos`."""
    from matplotlib.figure import Figure
    model = _model(model)
    if photos is None:
        photos = sample_photos(max_side)
    if not photos:
        raise ValueError("no photos to show")
    with torch_threads(threads):
        outputs = [colorize_luma_gain(photo_luma(rgb), model, render_size, chroma_gain, method) for _, rgb in photos]
    width = sum(height * rgb.shape[2] / rgb.shape[1] for _, rgb in photos)
    fig = Figure(figsize=(width + 0.5, 3 * height + 0.5), dpi=100, layout="constrained")
    axes = fig.subplots(3, len(photos), squeeze=False,
                        gridspec_kw={"width_ratios": [rgb.shape[2] / rgb.shape[1] for _, rgb in photos]})
    gain = f", chroma x{chroma_gain:g}" if chroma_gain != 1.0 else ""
    labels = ("original", "gray (input)", f"colorized ({render_size} px{gain})")
    for column, ((name, rgb), out) in enumerate(zip(photos, outputs)):
        for row, (image, label) in enumerate(zip((rgb, gray_copy(rgb), out), labels)):
            ax = axes[row, column]
            ax.imshow(image.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(label, fontsize=8)
            if row == 0:
                ax.set_title(name, fontsize=8, pad=2)
    return fig
