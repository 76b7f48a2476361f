"""The real-photo evaluation (colorlib.lab.photos): the bundled photos, the gray baseline, the chroma
gain, and the scores of the shipped generator."""
import math
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from colorlib.lab import photos
from colorlib.inference.colorize import (DEFAULT_CHECKPOINT, colorize, colorize_luma, load_model,
                                         luma_of_rgb, to_pil)
from colorlib.runs.config import ConfigError
from colorlib.lab.metrics import colourfulness

needs_generator = pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="no generator ships with this copy")


@pytest.fixture(scope="module")
def sample():
    return photos.sample_photos()


@pytest.fixture(scope="module")
def generator():
    return load_model()[0]


def test_sample_photos_are_colour_and_downscaled(sample):
    names = [name for name, _ in sample]
    assert names and names[0] == "grace_hopper"  # matplotlib is a core dependency
    assert len(set(names)) == len(names)
    for name, rgb in sample:
        assert rgb.dtype == torch.uint8 and rgb.dim() == 3 and rgb.shape[0] == 3, name
        assert max(rgb.shape[1:]) <= photos.MAX_SIDE, name
        assert colourfulness(rgb[None]).item() > 5, f"{name} is nearly gray"
    assert max(photos.sample_photos(names=["grace_hopper"], max_side=None)[0][1].shape[1:]) == 600  # full size


def test_scikit_image_photos_are_there_when_it_is_installed(sample):
    pytest.importorskip("skimage")
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= {name for name, _ in sample}
    assert not {"colorwheel", "logo", "camera"} & {name for name, _ in sample}  # synthetic or gray


def test_without_scikit_image_its_photos_are_left_out_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage raises ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    found = photos.sample_photos(max_side=64)
    assert [name for name, _ in found] == ["grace_hopper"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scikit-image is not installed" in err


def test_unknown_photo_names_are_refused():
    with pytest.raises(ValueError, match="unknown or unavailable photo"):
        photos.sample_photos(names=["no_such_photo"])


def test_gray_copy_has_no_colourfulness_and_is_the_luma_the_model_reads(sample):
    for name, rgb in sample[:3]:
        gray = photos.gray_copy(rgb)
        assert gray.shape == rgb.shape and gray.dtype == torch.uint8
        assert colourfulness(gray[None]).item() == 0.0, name
        assert torch.equal(gray[0].float() / 255, photos.photo_luma(rgb))
        # Pillow's 8-bit "L" is BT.601 luma, rounded
        assert (gray[0].float() - luma_of_rgb(rgb) * 255).abs().max() <= 1.0


@needs_generator
@pytest.mark.parametrize("render_size", [32, 48])
def test_gain_one_reproduces_colorize_luma_exactly(sample, generator, render_size):
    name, rgb = sample[0]
    luma = photos.photo_luma(rgb)
    ours = photos.colorize_luma_gain(luma, generator, render_size, chroma_gain=1.0)
    assert torch.equal(ours, colorize_luma(luma, generator, render_size))
    # and that is what the colorize command writes for this photo
    command = torch.from_numpy(np.array(colorize(to_pil(rgb), generator, render_size)))
    assert torch.equal(ours, command.permute(2, 0, 1))


@needs_generator
def test_chroma_gain_scales_colour_and_keeps_the_luma(sample, generator):
    rgb = sample[0][1]
    luma = photos.photo_luma(rgb)
    gray = photos.colorize_luma_gain(luma, generator, 32, chroma_gain=0.0)
    assert torch.equal(gray, photos.gray_copy(rgb))  # no chroma: exactly the gray copy
    once, twice = (photos.colorize_luma_gain(luma, generator, 32, chroma_gain=g) for g in (1.0, 2.0))
    assert colourfulness(twice[None]).item() > 1.3 * colourfulness(once[None]).item()
    assert (luma_of_rgb(twice) - luma).abs().max() * 255 <= 1.0  # gamut handled by shrinking chroma, not luma
    with pytest.raises(ConfigError, match="chroma_gain"):
        photos.colorize_luma_gain(luma, generator, 32, chroma_gain=-1.0)
    with pytest.raises(ConfigError, match="method='chroma' only"):
        photos.colorize_luma_gain(luma, generator, 32, chroma_gain=2.0, method="naive")


@needs_generator
def test_evaluate_photos_scores_the_shipped_generator_sanely(sample, generator):
    threads = torch.get_num_threads()
    report = photos.evaluate_photos(generator, render_sizes=(32,), photos=sample[:2], threads=1)
    assert torch.get_num_threads() == threads  # restored
    result = report["results"][32]
    agg, rows = result["aggregate"], result["per_photo"]
    assert agg["photos"] == 2 and [r["name"] for r in rows] == [name for name, _ in sample[:2]]
    for r in rows:
        assert math.isfinite(r["psnr_db"]) and 10 < r["psnr_db"] < 60, r
        assert math.isfinite(r["gray_psnr_db"]) and 10 < r["gray_psnr_db"] < 60, r
        assert r["beats_gray"] == (r["psnr_db"] > r["gray_psnr_db"])
        assert 0 < r["colourfulness_kept"] < 3, r
    assert agg["beats_gray_share"] in (0.0, 0.5, 1.0)
    assert agg["beats_gray_share"] == sum(r["beats_gray"] for r in rows) / 2
    assert 0 < agg["colourfulness_kept_mean"] < 3
    assert agg["psnr_mean_db"] == pytest.approx(sum(r["psnr_db"] for r in rows) / 2)
    # more chroma keeps more of the photos' colourfulness
    stronger = photos.evaluate_photos(generator, render_sizes=(32,), photos=sample[:2], chroma_gain=2.0)
    assert stronger["results"][32]["aggregate"]["colourfulness_kept_mean"] > agg["colourfulness_kept_mean"]

    table = photos.photo_table(report)
    assert "| 32 |" in table and sample[0][0] in table and sample[1][0] in table
    assert photos.best_render_size(report) == 32


@needs_generator
def test_photo_grid_is_a_small_three_row_figure(sample, generator):
    fig = photos.photo_grid(generator, render_size=32, photos=sample[:3])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 9
    width, height = fig.get_size_inches() * fig.dpi
    assert width * height < 1.5e6  # small enough for an inline JPEG
