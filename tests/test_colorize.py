"""Colorizing photos: the luminance kept, any size, every kind of file, and the colorize command's
promises (nothing of the user's overwritten, one line per problem, exit statuses, Ctrl-C)."""
from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from colorlib.inference import colorize as cz
from colorlib.inference.colorize import ImageReadError, colorize, combine, load_model, read_photo, render_shape
from colorlib.runs import rundir
from colorlib.runs.config import ConfigError, make_config
from colorlib.variants import build_generator
from colorlib.variants.color import rgb_to_ycbcr, ycbcr_to_rgb
from conftest import one_line, run_cli, without_root

HOPPER = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)  # ships with matplotlib


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained smoke-sized generator.pt: what colorize needs, at once."""
    torch.manual_seed(0)
    cfg = make_config("smoke", device="cpu")
    path = tmp_path_factory.mktemp("weights") / "generator.pt"
    torch.save({"format": rundir.GENERATOR_FORMAT, "config": cfg.to_dict(), "epoch": 0,
                "generator": build_generator(cfg).state_dict()}, path)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def generator(checkpoint):
    return load_model(checkpoint)[0]


def gray_photo(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.linear_gradient("L").resize(size).save(path)
    return path


def colorize_cli(capsys, *argv):
    return run_cli(capsys, "colorize", "--no-progress", *argv)


def luma_255(img: Image.Image) -> torch.Tensor:
    return cz.luma_of_rgb(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)) * 255


# ---------------------------------------------------------------- colour and size
def test_ycbcr_inverts_and_combine_keeps_the_luma_shrinking_only_out_of_gamut_chroma():
    rgb = torch.rand(3, 8, 8)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-6)
    luma, cbcr = torch.rand(8, 8), torch.randn(2, 8, 8)  # far out of gamut
    out = combine(luma, cbcr.clone())
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(rgb_to_ycbcr(out)[0], luma, atol=1e-5)
    inside = rgb_to_ycbcr(rgb)
    assert torch.allclose(combine(inside[0], inside[1:].clone()), rgb, atol=1e-5)  # in gamut: untouched


def test_output_keeps_the_photos_luminance_at_any_size(generator):
    photo = Image.open(HOPPER).convert("L").resize((97, 61))
    out = colorize(photo, generator)
    assert out.size == (97, 61)
    assert (luma_255(out) - torch.from_numpy(np.array(photo)).float()).abs().max() <= 1.0  # 8-bit rounding only
    for size in [(1, 1), (5, 300), (300, 5)]:
        assert colorize(Image.new("L", size, 128), generator).size == size


def test_the_working_resolution_keeps_the_aspect_and_is_bounded():
    assert render_shape(3000, 4000, 32, 16) == (32, 48)
    assert render_shape(32, 32, 64, 16) == (32, 32)  # never above the image's own size
    for render_size in (8, 512, 2048):
        for height, width in [(1, 1), (3000, 4000), (1, 30_000), (7, 10**6)]:
            h, w = render_shape(height, width, render_size, 8)
            assert h % 8 == w % 8 == 0 and h * w <= cz.MAX_RENDER_PIXELS and max(h, w) <= cz.MAX_RENDER_SIDE
    for bad in (12, 0, 100_000):
        with pytest.raises(ConfigError, match=f"render_size={bad} must be a multiple of 8"):
            render_shape(32, 32, bad, 8)


def test_colorize_takes_images_paths_tensors_and_checkpoints(generator, checkpoint, tmp_path):
    path = gray_photo(tmp_path / "a.png")
    expected = np.array(colorize(path, generator))
    assert np.array_equal(np.array(colorize(Image.open(path), generator)), expected)
    assert np.array_equal(np.array(colorize(read_photo(path).luma, generator)), expected)
    assert np.array_equal(np.array(colorize(path, checkpoint)), expected)
    assert np.array_equal(np.array(colorize(read_photo(path.read_bytes()).luma, generator)), expected)


# ---------------------------------------------------------------- reading every kind of file
def test_modes_depths_alpha_and_orientation(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (200, 30, 30, 128))
    rgba.save(tmp_path / "alpha.png")
    photo = read_photo(tmp_path / "alpha.png")
    assert photo.alpha is not None and int(photo.alpha[0, 0]) == 128 and photo.was_color
    Image.new("RGB", (20, 10), (200, 30, 30)).convert("P").save(tmp_path / "palette.png")
    assert read_photo(tmp_path / "palette.png").was_color
    Image.new("RGB", (20, 10), (90, 90, 90)).save(tmp_path / "gray.jpg")
    assert not read_photo(tmp_path / "gray.jpg").was_color
    Image.new("CMYK", (20, 10), (0, 200, 200, 0)).save(tmp_path / "cmyk.jpg")
    assert read_photo(tmp_path / "cmyk.jpg").was_color
    Image.fromarray(np.full((10, 20), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert abs(float(read_photo(tmp_path / "deep.png").luma[0, 0]) - 40000 / 65535) < 1e-6
    exif = Image.Exif()
    exif[0x0112] = 8  # rotated 90 degrees
    Image.new("L", (60, 40)).save(tmp_path / "rotated.jpg", exif=exif)
    assert read_photo(tmp_path / "rotated.jpg").size == (40, 60)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"), (b"hello, not a picture", "not an image that Pillow can read"),
    ("truncated", "damaged or incomplete"), (None, "no such file")])
def test_a_bad_file_is_one_reason(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content == "truncated":
        Image.open(HOPPER).save(path)
        path.write_bytes(path.read_bytes()[:3000])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message):
        read_photo(path)


def test_too_many_pixels_are_refused_before_decoding_with_the_limit_given(tmp_path):
    path = gray_photo(tmp_path / "big.png", (40, 30))
    with pytest.raises(ImageReadError, match=r"too many pixels: 40x30 is over the limit of 10 "):
        read_photo(path, max_pixels=10)
    assert read_photo(path, max_pixels=0).size == (40, 30)  # 0: no limit
    assert read_photo(path, max_pixels=1200).size == (40, 30)


# ---------------------------------------------------------------- the command
def test_a_mixed_folder_is_colorized_and_every_bad_file_named(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    gray_photo(folder / "a.png")
    (folder / "sub").mkdir()
    Image.open(HOPPER).resize((40, 48)).save(folder / "sub" / "colour.jpg")
    Image.new("RGBA", (20, 10), (9, 9, 9, 128)).save(folder / "alpha.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("no picture")
    code, stdout, stderr = colorize_cli(capsys, folder, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1
    assert re.search(r"FAILED .*empty\.png: the file is empty", stderr)
    assert re.search(r"FAILED .*text\.jpg: not an image", stderr)
    assert "colorized 3 of 5 photo(s)" in stdout and "1 already in colour" in stdout and "2 failed" in stdout
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()) == \
        ["a.png", "alpha.png", "sub/colour.jpg"]  # no temporary or partial file
    with Image.open(tmp_path / "out" / "alpha.png") as img:
        assert img.mode == "RGBA"


def test_nothing_of_the_users_is_overwritten(checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    gray_photo(folder / "a.png")
    code, _, stderr = colorize_cli(capsys, folder, "-o", folder, "--checkpoint", checkpoint)
    assert code == 2 and "would overwrite an input" in one_line(stderr) and os.listdir(folder) == ["a.png"]
    out = tmp_path / "out"
    assert colorize_cli(capsys, folder, "-o", out, "--checkpoint", checkpoint)[0] == 0
    (out / "a.png").write_bytes(b"the user's edits")
    code, stdout, stderr = colorize_cli(capsys, folder, "-o", out, "--checkpoint", checkpoint)
    assert code == 0 and "1 skipped" in stdout and (out / "a.png").read_bytes() == b"the user's edits"
    assert colorize_cli(capsys, folder, "-o", out, "--checkpoint", checkpoint, "--overwrite")[0] == 0
    assert Image.open(out / "a.png").size == (40, 30)
    inner = folder / "colorized"  # an output folder inside the input: its files are no inputs
    assert colorize_cli(capsys, folder, "-o", inner, "--checkpoint", checkpoint)[0] == 0
    assert "colorized 0 of 1 photo(s)" in colorize_cli(capsys, folder, "-o", inner, "--checkpoint", checkpoint)[1]


def test_one_photo_named_twice_is_done_once_and_two_of_one_name_are_refused(checkpoint, tmp_path, capsys):
    photo = gray_photo(tmp_path / "in" / "a.png")
    code, stdout, _ = colorize_cli(capsys, photo, tmp_path / "in", tmp_path / "in" / ".." / "in" / "a.png",
                                   "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0 and "colorized 1 of 1 photo(s)" in stdout
    other = gray_photo(tmp_path / "y" / "a.png")
    code, _, stderr = colorize_cli(capsys, photo, other, "-o", tmp_path / "out2", "--checkpoint", checkpoint)
    assert code == 1 and "would be the output of" in stderr


def test_a_name_of_250_bytes_is_colorized(checkpoint, tmp_path, capsys):
    photo = gray_photo(tmp_path / "in" / ("x" * 246 + ".png"))
    code, stdout, stderr = colorize_cli(capsys, photo, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0, stderr
    assert os.listdir(tmp_path / "out") == [photo.name]


@pytest.mark.parametrize("argv, message", [
    (["--max-pixels", "-5"], "error: --max-pixels -5: give a number of pixels, or 0 for no limit"),
    (["--vividness", "1.5"], "error: vividness='1.5' must be a number from 0"),
    (["--render-size", "100000"], "error: render_size=100000 must be a multiple of 8"),
    (["--checkpoint", "missing.pt"], "error: checkpoint 'missing.pt' does not exist"),
])
def test_bad_options_are_one_line_and_exit_2_with_nothing_written(checkpoint, tmp_path, capsys, argv, message):
    argv = argv if "--checkpoint" in argv else [*argv, "--checkpoint", checkpoint]
    code, _, stderr = colorize_cli(capsys, gray_photo(tmp_path / "a.png"), "-o", tmp_path / "out", *argv)
    assert code == 2 and one_line(stderr).startswith(message), stderr
    assert not (tmp_path / "out").exists()


def test_the_decompression_bomb_guard_fails_that_file_only(checkpoint, tmp_path, capsys):
    gray_photo(tmp_path / "in" / "big.png", (40, 30))
    gray_photo(tmp_path / "in" / "small.png", (2, 2))
    code, stdout, stderr = colorize_cli(capsys, tmp_path / "in", "-o", tmp_path / "out", "--checkpoint", checkpoint,
                                        "--max-pixels", "10")
    assert code == 1 and "over the limit of 10 " in one_line(stderr) and "colorized 1 of 2" in stdout


def test_an_output_folder_that_cannot_be_written_is_refused_up_front(checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    code, _, stderr = colorize_cli(capsys, gray_photo(tmp_path / "a.png"), "-o", tmp_path / "file" / "out",
                                   "--checkpoint", checkpoint)
    assert code == 2 and one_line(stderr).startswith("error: cannot write to the output folder")


def test_a_write_failure_leaves_no_partial_file_and_the_batch_goes_on(checkpoint, tmp_path, capsys, monkeypatch):
    gray_photo(tmp_path / "in" / "a.png")
    gray_photo(tmp_path / "in" / "b.png")
    real = rundir.atomic_write_bytes

    def full_disk(path, data):
        if Path(path).name == "a.png":
            raise OSError(28, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(rundir, "atomic_write_bytes", full_disk)
    code, stdout, stderr = colorize_cli(capsys, tmp_path / "in", "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1 and "could not write the output (No space left on device)" in one_line(stderr)
    assert os.listdir(tmp_path / "out") == ["b.png"]


def test_ctrl_c_reports_progress_and_a_rerun_finishes(checkpoint, tmp_path, capsys, monkeypatch):
    for name in ("a", "b", "c"):
        gray_photo(tmp_path / "in" / f"{name}.png")
    real, calls = cz.colorize_luma, []

    def interrupted_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cz, "colorize_luma", interrupted_at_the_second)
    out = tmp_path / "out"
    code, stdout, stderr = colorize_cli(capsys, tmp_path / "in", "-o", out, "--checkpoint", checkpoint)
    assert code == 130 and stdout == "" and os.listdir(out) == ["a.png"]
    assert one_line(stderr).startswith(f"interrupted: colorized 1 of 3 photo(s) into {out} before Ctrl-C")
    monkeypatch.setattr(cz, "colorize_luma", real)
    assert "colorized 2 of 3 photo(s)" in colorize_cli(capsys, tmp_path / "in", "-o", out, "--checkpoint",
                                                       checkpoint)[1]


def test_unreadable_files_and_folders_are_permission_problems(checkpoint, capsys):
    with tempfile.TemporaryDirectory() as tmp:  # world-readable, unlike pytest's tmp_path
        tmp = Path(tmp)
        tmp.chmod(0o777)
        weights = tmp / "generator.pt"
        shutil.copyfile(checkpoint, weights)
        photos = tmp / "in"
        for path in (photos / "fine.png", photos / "locked.png", photos / "private" / "hidden.png"):
            gray_photo(path).chmod(0o644)
        (photos / "locked.png").chmod(0o000)
        (photos / "private").chmod(0o000)
        (tmp / "out").mkdir(mode=0o777)
        (tmp / "out").chmod(0o777)
        try:
            with without_root():
                code, stdout, stderr = colorize_cli(capsys, photos, "-o", tmp / "out", "--checkpoint", weights)
        finally:
            (photos / "private").chmod(0o755)
        assert code == 1, stderr
        assert f"FAILED {photos / 'private'}: permission denied: this folder cannot be read" in stderr
        assert f"FAILED {photos / 'locked.png'}: permission denied: you may not read this file" in stderr
        assert "colorized 1 of 2 photo(s)" in stdout and os.listdir(tmp / "out") == ["fine.png"]


def test_frames_and_reduced_sizes_are_noted(checkpoint, tmp_path, capsys):
    frames = [Image.new("L", (24, 16), shade) for shade in (0, 120, 240)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.linear_gradient("L").resize((100_000, 1)).save(tmp_path / "strip.png")
    code, _, stderr = colorize_cli(capsys, tmp_path / "anim.gif", tmp_path / "strip.png", "-o", tmp_path / "out",
                                   "--checkpoint", checkpoint)
    assert code == 0
    assert f"note: {tmp_path / 'anim.gif'} has 3 frames (an animation or a multi-page file)" in stderr
    assert re.search(r"strip\.png \(100000x1\) is worked at \d+x\d+ pixels instead of 100000x8", stderr)
    assert Image.open(tmp_path / "out" / "strip.png").size == (100_000, 1)


def test_the_shipped_generator_colorizes_a_photo():
    G, cfg = load_model()
    out = colorize(Image.open(HOPPER).resize((64, 75)), G)
    rgb = np.asarray(out).astype(int)
    assert out.size == (64, 75) and (rgb.max(2) - rgb.min(2)).mean() > 2  # some colour
    out.save(buf := io.BytesIO(), "JPEG")
    assert buf.getbuffer().nbytes > 0
