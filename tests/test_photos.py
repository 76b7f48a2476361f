"""The real-photo evaluation (colorlib.lab.photos): the bundled photos, the gray copy, and the
shipped generator's scores, through the colorize command's own path."""
import importlib.util
import math
import sys

import numpy as np
import pytest
import torch

from colorlib.inference.colorize import colorize, load_model, luma_of_rgb, to_pil
from colorlib.lab import photos
from colorlib.lab.metrics import colourfulness


@pytest.fixture(scope="module")
def sample():
    return photos.sample_photos(max_side=128)


def test_sample_photos_are_colour_downscaled_and_named(sample):
    names = [name for name, _ in sample]
    assert names[0] == "grace_hopper" and len(set(names)) == len(names)  # matplotlib's is always there
    for name, rgb in sample:
        assert rgb.dtype == torch.uint8 and rgb.shape[0] == 3 and max(rgb.shape[1:]) <= 128, name
        assert colourfulness(rgb[None]).item() > 5, f"{name} is nearly gray"
    if importlib.util.find_spec("skimage"):
        assert {"astronaut", "chelsea", "coffee"} <= set(names) and not {"camera", "logo"} & set(names)


def test_without_scikit_image_its_photos_are_left_out_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage raises ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert [name for name, _ in photos.sample_photos(max_side=64)] == ["grace_hopper"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scikit-image is not installed" in err


def test_the_gray_copy_is_the_luma_the_command_reads(sample):
    name, rgb = sample[0]
    gray = photos.gray_copy(rgb)
    assert colourfulness(gray[None]).item() == 0.0 and torch.equal(gray[0].float() / 255, photos.photo_luma(rgb))
    assert (gray[0].float() - luma_of_rgb(rgb) * 255).abs().max() <= 1.0  # Pillow's "L": BT.601, rounded


def test_the_shipped_generator_is_scored_as_the_command_colours(sample):
    G = load_model()[0]
    report = photos.evaluate_photos(G, render_sizes=(32,), photos=sample[:2])
    rows, agg = report["results"][32]["per_photo"], report["results"][32]["aggregate"]
    assert [r["name"] for r in rows] == [name for name, _ in sample[:2]]
    assert all(math.isfinite(r["psnr_db"]) and 10 < r["psnr_db"] < 60 and 0 < r["colourfulness_kept"] < 3
               for r in rows)
    assert agg["beats_gray_share"] == sum(r["beats_gray"] for r in rows) / 2
    command = torch.from_numpy(np.array(colorize(to_pil(sample[0][1]), G, 32))).permute(2, 0, 1)
    assert rows[0]["psnr_db"] == pytest.approx(10 * math.log10(255 ** 2 / (command.double() - sample[0][1].double())
                                                                 .square().mean().item()))
    stronger = photos.evaluate_photos(G, render_sizes=(32,), photos=sample[:2], chroma_gain=2.0)
    assert stronger["results"][32]["aggregate"]["colourfulness_kept_mean"] > agg["colourfulness_kept_mean"]
    assert photos.best_render_size(report) == 32
