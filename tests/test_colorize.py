"""Colorizing real photos: luminance kept, any size, and every kind of bad file handled."""
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

from colorlib.cli import main
from colorlib.inference.colorize import (DEFAULT_CHECKPOINT, ImageReadError, colorize, colorize_luma,
                                         combine, gray_from_pil, load_model, luma_of_rgb, read_photo,
                                         render_shape)
from colorlib.variants.color import rgb_to_ycbcr
from colorlib.variants.color import ycbcr_to_rgb
from colorlib.runs.config import ConfigError
from colorlib.runs.data import load_split
from colorlib.runs.rundir import GENERATOR_FORMAT, RunDirError
from conftest import without_root

GRACE_HOPPER = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)  # ships with matplotlib


@pytest.fixture(scope="module")
def checkpoint(smoke_run):
    """The shared smoke run (tests/conftest.py): a real, if barely trained, generator checkpoint."""
    return smoke_run.run_dir


@pytest.fixture(scope="module")
def generator(checkpoint):
    return load_model(checkpoint)[0]


def output_luma(img: Image.Image) -> torch.Tensor:
    """BT.601 luma of an 8-bit RGB(A) result, in 0..255 levels, unrounded."""
    rgb = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    return luma_of_rgb(rgb) * 255


def photo_rgb(size=(160, 120)) -> Image.Image:
    return Image.open(GRACE_HOPPER).convert("RGB").resize(size, Image.BICUBIC)


# ---------------------------------------------------------------- colour space
def test_ycbcr_is_bt601_and_inverts_exactly():
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    ycbcr = rgb_to_ycbcr(rgb)
    torch.testing.assert_close(ycbcr[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])
    torch.testing.assert_close(ycbcr_to_rgb(ycbcr), rgb)
    gray = torch.rand(1, 4, 4).expand(3, -1, -1)
    assert rgb_to_ycbcr(gray)[1:].abs().max() < 1e-6  # gray has no chroma
    assert ycbcr.min() >= -0.5 - 1e-9 and ycbcr.max() <= 1 + 1e-9


def test_combine_keeps_luma_and_only_shrinks_out_of_gamut_chroma():
    torch.manual_seed(0)
    luma = torch.rand(64, 64)
    cbcr = (torch.rand(2, 64, 64) - 0.5) * 1.0  # many colours leave the RGB cube
    rgb = combine(luma, cbcr.clone())
    assert rgb.min() >= 0 and rgb.max() <= 1
    torch.testing.assert_close(luma_of_rgb(rgb), luma, atol=1e-5, rtol=0)
    # where luma + chroma already was a valid colour, it is returned unchanged
    raw = ycbcr_to_rgb(torch.cat([luma[None], cbcr]))
    inside = (raw.amin(0) >= 0) & (raw.amax(0) <= 1)
    assert 0.05 < inside.float().mean() < 0.95  # the test sees both cases
    torch.testing.assert_close(rgb[:, inside], raw[:, inside], atol=1e-5, rtol=0)
    # outside, the hue direction is kept: chroma is scaled, never rotated
    kept = rgb_to_ycbcr(rgb)[1:, ~inside]
    cosine = torch.nn.functional.cosine_similarity(kept, cbcr[:, ~inside], dim=0)
    assert cosine[kept.norm(dim=0) > 1e-3].min() > 0.999


def test_render_shape_keeps_aspect_and_the_generator_multiple():
    assert render_shape(3000, 4000, 32, 16) == (32, 48)  # a 12-MP 4:3 photo
    assert render_shape(4000, 3000, 32, 16) == (48, 32)
    # never above the image's own size (issue 21): smaller images at their own, rounded down to the
    # multiple; only an image smaller than the multiple is enlarged, to the multiple
    assert render_shape(1, 1, 32, 8) == (8, 8)
    assert render_shape(10, 10_000, 64, 8) == (8, 8_000)
    with pytest.raises(ConfigError, match="multiple of 16"):
        render_shape(100, 100, 40, 16)


# ---------------------------------------------------------------- colorizing
def test_output_luminance_equals_the_input_luminance(generator):
    gray = photo_rgb((131, 75)).convert("L")  # odd sizes, not the training aspect
    out = colorize(gray, generator)
    assert out.size == gray.size and out.mode == "RGB"
    given = torch.from_numpy(np.array(gray)).float()
    # equal up to rounding each of R, G and B to 8 bits (at most half a level)
    assert (output_luma(out) - given).abs().max() <= 0.5 + 1e-3
    # the naive way (upsampling the 32-pixel RGB output) does not keep it: the test can tell
    naive = colorize(gray, generator, method="naive")
    assert (output_luma(naive) - given).abs().mean() > 2


def test_any_size_and_aspect(generator):
    for size in [(1, 1), (300, 7), (7, 300), (33, 32), (64, 64)]:
        luma = torch.rand(size[1], size[0])
        out = colorize_luma(luma, generator)
        assert out.shape == (3, size[1], size[0]) and out.dtype == torch.uint8
        assert (luma_of_rgb(out) - luma).abs().max() <= 0.5 / 255 + 1e-4


def test_network_sees_only_the_working_resolution(generator):
    seen = []
    hook = generator.stem.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    try:
        colorize_luma(torch.rand(1200, 900), generator, render_size=32)
        colorize_luma(torch.rand(1200, 900), generator, render_size=64)
    finally:
        hook.remove()
    assert seen == [(1, 1, 40, 32), (1, 1, 88, 64)]  # 4:3 portrait, rounded to multiples of 8


def test_render_size_is_checked_and_model_mode_is_left_alone(generator):
    with pytest.raises(ConfigError, match="multiple of 8"):
        colorize_luma(torch.rand(50, 50), generator, render_size=20)
    generator.train()
    try:
        colorize_luma(torch.rand(50, 50), generator)
        assert generator.training  # colorize evaluated it in eval mode, then put it back
    finally:
        generator.eval()


def test_colorize_takes_pillow_images_paths_tensors_and_checkpoints(generator, checkpoint, tmp_path):
    img = photo_rgb((48, 40))
    img.save(tmp_path / "p.png")
    luma = torch.from_numpy(np.array(img.convert("L")))
    a = colorize(img, generator)
    b = colorize(tmp_path / "p.png", checkpoint)
    c = colorize(luma, generator)
    assert np.array_equal(np.array(a), np.array(b)) and np.array_equal(np.array(a), np.array(c))
    with pytest.raises(TypeError, match="Pillow image"):
        colorize([[0.5]], generator)


# ---------------------------------------------------------------- reading every kind of file
def write_bytes(path, data):
    path.write_bytes(data)
    return path


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def test_text_file_named_jpg(tmp_path):
    path = write_bytes(tmp_path / "notes.jpg", b"shopping list: eggs, milk\n" * 20)
    with pytest.raises(ImageReadError, match="not an image that Pillow can read.*named .jpg"):
        read_photo(path)
    with pytest.raises(ImageReadError, match="not an image that Pillow can read; is it"):
        read_photo(path.read_bytes())  # an upload: bytes, no name


def test_photo_bytes_read_like_files(tmp_path):
    data = jpeg_bytes(photo_rgb())
    from_bytes, from_file = read_photo(data), read_photo(write_bytes(tmp_path / "p.jpg", data))
    assert torch.equal(from_bytes.luma, from_file.luma) and from_bytes.was_color
    with pytest.raises(ImageReadError, match="empty"):
        read_photo(b"")


def test_zero_byte_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"empty \(0 bytes\)"):
        read_photo(write_bytes(tmp_path / "empty.jpg", b""))


def test_truncated_jpeg(tmp_path):
    data = jpeg_bytes(photo_rgb())
    with pytest.raises(ImageReadError, match="damaged or incomplete.*truncated.*copy the file again"):
        read_photo(write_bytes(tmp_path / "cut.jpg", data[: len(data) // 2]))


def test_png_with_alpha_keeps_its_alpha(tmp_path):
    img = photo_rgb((40, 30)).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))
    img.putalpha(Image.fromarray(alpha))
    img.save(tmp_path / "a.png")
    photo = read_photo(tmp_path / "a.png")
    assert np.array_equal(photo.alpha.numpy(), alpha)
    assert np.array_equal((photo.luma * 255).round().byte().numpy(), np.array(img.convert("L")))


def test_palette_images(tmp_path):
    colourful = photo_rgb((40, 30)).quantize(16)
    colourful.save(tmp_path / "p.png")
    photo = read_photo(tmp_path / "p.png")
    assert photo.was_color and photo.alpha is None
    assert np.array_equal((photo.luma * 255).round().byte().numpy(), np.array(colourful.convert("L")))
    gray_palette = photo_rgb((40, 30)).convert("L").convert("P")
    gray_palette.info["transparency"] = 0
    gray_palette.save(tmp_path / "g.png", transparency=0)
    photo = read_photo(tmp_path / "g.png")
    assert not photo.was_color and photo.alpha is not None


def test_cmyk_jpeg(tmp_path):
    (tmp_path / "c.jpg").write_bytes(jpeg_bytes(photo_rgb((40, 30)).convert("CMYK")))
    with Image.open(tmp_path / "c.jpg") as img:
        assert img.mode == "CMYK"
        expected = np.array(img.convert("RGB").convert("L"))
    photo = read_photo(tmp_path / "c.jpg")
    assert photo.was_color
    assert np.array_equal((photo.luma * 255).round().byte().numpy(), expected)


def test_16_bit_grayscale_png(tmp_path):
    values = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    photo = read_photo(tmp_path / "deep.png")
    assert photo.bits == 16 and not photo.was_color
    np.testing.assert_allclose(photo.luma.numpy(), values / 65535, atol=1e-6)


def test_exif_orientation_is_honoured(tmp_path):
    stored = np.full((40, 60), 30, np.uint8)  # 60 wide, 40 high as stored
    stored[:5, :5] = 250  # a bright mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).convert("RGB").save(tmp_path / "phone.jpg", exif=exif, quality=95)
    photo = read_photo(tmp_path / "phone.jpg")
    assert photo.size == (40, 60)  # displayed upright: 40 wide, 60 high
    assert photo.luma[:5, -5:].mean() > 0.9 and photo.luma[:5, :5].mean() < 0.2  # mark now top-right


def test_decompression_bomb_is_refused_cleanly(tmp_path, monkeypatch):
    Image.new("L", (50, 50)).save(tmp_path / "big.png")  # 2,500 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # Pillow warns between 1x and 2x the limit
    with pytest.raises(ImageReadError, match="too many pixels.*--max-pixels"):
        read_photo(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # ... and raises above 2x
    with pytest.raises(ImageReadError, match="too many pixels.*--max-pixels"):
        read_photo(tmp_path / "big.png")


def test_colour_and_gray_photos_are_told_apart(tmp_path):
    photo_rgb().save(tmp_path / "colour.jpg")
    photo_rgb().convert("L").convert("RGB").save(tmp_path / "gray_as_rgb.jpg")
    assert read_photo(tmp_path / "colour.jpg").was_color
    assert not read_photo(tmp_path / "gray_as_rgb.jpg").was_color
    rgb = photo_rgb()
    assert np.array_equal((gray_from_pil(rgb).luma * 255).round().byte().numpy(), np.array(rgb.convert("L")))


# ---------------------------------------------------------------- the command line
def make_batch(folder, data_dir):
    """A folder of good and bad files, as people's photo folders are; returns the bad ones'
    names with the message each must get."""
    folder.mkdir()
    cifar = load_split(str(data_dir), "test", 1).images[0]
    cifar_gray = Image.fromarray(cifar.permute(1, 2, 0).numpy()).convert("L")
    cifar_gray.resize((96, 96), Image.BICUBIC).save(folder / "cifar.jpg")
    photo_rgb().convert("L").save(folder / "old_photo.jpg")
    photo_rgb().save(folder / "colour.jpg")
    photo_rgb((90, 70)).save(folder / "colour2.png")
    rgba = photo_rgb((64, 48)).convert("L").convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    photo_rgb((50, 40)).convert("L").convert("P").save(folder / "palette.png")
    (folder / "cmyk.jpg").write_bytes(jpeg_bytes(photo_rgb((50, 40)).convert("L").convert("CMYK")))
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)).save(folder / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    photo_rgb((60, 40)).convert("L").save(folder / "rotated.jpg", exif=exif)
    (folder / "notes.jpg").write_text("not a picture\n")
    (folder / "empty.jpg").write_bytes(b"")
    data = jpeg_bytes(photo_rgb())
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    bad = {"notes.jpg": "not an image that Pillow can read", "empty.jpg": "empty (0 bytes)",
           "cut.jpg": "damaged or incomplete"}
    return bad


def run_cli(capsys, *argv):
    code = main(["colorize", "--no-progress", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_colorizes_a_mixed_folder_and_reports_every_bad_file(checkpoint, data_dir, tmp_path, capsys):
    bad = make_batch(tmp_path / "in", data_dir)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, tmp_path / "in", "-o", out, "--checkpoint", checkpoint)
    assert code == 1  # some failed
    for name, message in bad.items():
        assert re.search(rf"FAILED .*{re.escape(name)}: .*{re.escape(message)}", stderr), stderr
    assert "colorized 9 of 12 photo(s)" in stdout and "2 already in colour" in stdout and "3 failed" in stdout
    assert stderr.count("already in colour") == 1  # said once
    written = sorted(p.name for p in out.iterdir())
    assert written == ["alpha.png", "cifar.jpg", "cmyk.jpg", "colour.jpg", "colour2.png", "deep16.png",
                       "old_photo.jpg", "palette.png", "rotated.jpg"]  # no temporary or partial files
    with Image.open(out / "alpha.png") as img:
        assert img.mode == "RGBA" and np.all(np.array(img.getchannel("A")) == 128)
    with Image.open(out / "rotated.jpg") as img:
        assert img.size == (40, 60)  # orientation 8 applied
    with Image.open(out / "deep16.png") as img:
        assert img.size == (64, 48) and img.mode == "RGB"
    with Image.open(out / "old_photo.jpg") as img, Image.open(tmp_path / "in" / "old_photo.jpg") as src:
        given = torch.from_numpy(np.array(src)).float()
        assert (output_luma(img) - given).abs().mean() < 1.5  # JPEG re-encoding only


def test_cli_never_overwrites_inputs_or_outputs(checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo_rgb().convert("L").save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    code, _, stderr = run_cli(capsys, folder, "-o", folder, "--checkpoint", checkpoint)
    assert code == 2 and "would overwrite an input" in stderr
    assert (folder / "a.png").read_bytes() == before and sorted(os.listdir(folder)) == ["a.png"]

    out = tmp_path / "out"
    assert run_cli(capsys, folder, "-o", out, "--checkpoint", checkpoint)[0] == 0
    (out / "a.png").write_bytes(b"the user's edits")
    code, stdout, stderr = run_cli(capsys, folder, "-o", out, "--checkpoint", checkpoint)
    assert code == 0 and "exists (pass --overwrite" in stderr and "1 skipped" in stdout
    assert (out / "a.png").read_bytes() == b"the user's edits"
    assert run_cli(capsys, folder, "-o", out, "--checkpoint", checkpoint, "--overwrite")[0] == 0
    with Image.open(out / "a.png") as img:
        assert img.size == (160, 120)

    # an output folder inside the input folder: its files are not taken as new inputs
    inner = folder / "colorized"
    assert run_cli(capsys, folder, "-o", inner, "--checkpoint", checkpoint)[0] == 0
    code, stdout, _ = run_cli(capsys, folder, "-o", inner, "--checkpoint", checkpoint)
    assert "colorized 0 of 1 photo(s)" in stdout and "1 skipped" in stdout


def test_cli_same_name_from_two_folders_is_not_silently_merged(checkpoint, tmp_path, capsys):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        photo_rgb().convert("L").save(tmp_path / sub / "same.png")
    code, _, stderr = run_cli(capsys, tmp_path / "x" / "same.png", tmp_path / "y" / "same.png",
                              "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1 and "would be the output of" in stderr


def test_cli_decompression_bomb_fails_that_file_only(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("L", (120, 100)).save(folder / "bomb.png")  # 12,000 pixels
    Image.new("L", (20, 20)).save(folder / "small.png")
    limit = Image.MAX_IMAGE_PIXELS
    code, stdout, stderr = run_cli(capsys, folder, "-o", tmp_path / "out", "--checkpoint", checkpoint,
                                   "--max-pixels", "5000")
    assert code == 1 and re.search(r"FAILED .*bomb.png: too many pixels", stderr)
    assert "colorized 1 of 2" in stdout
    assert Image.MAX_IMAGE_PIXELS == limit  # the process-wide Pillow setting is restored
    assert run_cli(capsys, folder / "bomb.png", "-o", tmp_path / "out2", "--checkpoint", checkpoint)[0] == 0


def test_cli_output_folder_that_cannot_be_created(checkpoint, tmp_path, capsys):
    photo_rgb().convert("L").save(tmp_path / "a.png")
    (tmp_path / "a_file").write_text("x")
    code, _, stderr = run_cli(capsys, tmp_path / "a.png", "-o", tmp_path / "a_file" / "out",
                              "--checkpoint", checkpoint)
    assert code == 2 and "cannot write to the output folder" in stderr


def test_cli_unwritable_output_folder(checkpoint, capsys):
    with tempfile.TemporaryDirectory() as tmp:  # world-readable, unlike pytest's tmp_path
        tmp = Path(tmp)
        tmp.chmod(0o755)
        photo_rgb().convert("L").save(tmp / "a.png")
        shutil.copyfile(checkpoint / "checkpoints" / "generator.pt", tmp / "generator.pt")
        for path in (tmp / "a.png", tmp / "generator.pt"):
            path.chmod(0o644)
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        with without_root():
            code, _, stderr = run_cli(capsys, tmp / "a.png", "-o", locked, "--checkpoint", tmp / "generator.pt")
        assert code == 2, stderr
        assert f"cannot write to the output folder {locked} (Permission denied)" in stderr
        assert os.listdir(locked) == []


def test_cli_write_failure_leaves_no_partial_file_and_the_batch_goes_on(checkpoint, tmp_path, capsys,
                                                                         monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        photo_rgb().convert("L").save(folder / name)
    real_replace, calls = os.replace, []

    def disk_full_once(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_once)
    code, stdout, stderr = run_cli(capsys, folder, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1 and "could not write the output (No space left on device)" in stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["b.png"]  # no temporary file of a.png left behind


def test_cli_missing_checkpoint(tmp_path, capsys, monkeypatch):
    photo_rgb().convert("L").save(tmp_path / "a.png")
    code, _, stderr = run_cli(capsys, tmp_path / "a.png", "-o", tmp_path / "out",
                              "--checkpoint", tmp_path / "nowhere.pt")
    assert code == 2 and "nowhere.pt' does not exist" in stderr and "generator.pt" in stderr
    monkeypatch.setattr("colorlib.inference.colorize.DEFAULT_CHECKPOINT", tmp_path / "weights" / "generator.pt")
    code, _, stderr = run_cli(capsys, tmp_path / "a.png", "-o", tmp_path / "out")
    assert code == 2 and "no trained generator ships with this copy" in stderr and "--checkpoint" in stderr
    assert not (tmp_path / "out").exists()  # nothing was created


def test_cli_checkpoint_of_another_architecture(checkpoint, tmp_path, capsys):
    photo_rgb().convert("L").save(tmp_path / "a.png")
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "other_model.pt")
    code, _, stderr = run_cli(capsys, tmp_path / "a.png", "-o", tmp_path / "out",
                              "--checkpoint", tmp_path / "other_model.pt")
    assert code == 2 and "is not a colorlib checkpoint" in stderr and "python -m colorlib train" in stderr

    ckpt = torch.load(checkpoint / "checkpoints" / "generator.pt", weights_only=True)
    assert ckpt["format"] == GENERATOR_FORMAT
    ckpt["config"]["g_width"] *= 2  # the weights no longer fit the network the config describes
    torch.save(ckpt, tmp_path / "mismatch.pt")
    code, _, stderr = run_cli(capsys, tmp_path / "a.png", "-o", tmp_path / "out",
                              "--checkpoint", tmp_path / "mismatch.pt")
    assert code == 2 and "does not fit the generator its config describes" in stderr
    with pytest.raises(RunDirError):
        load_model(tmp_path / "mismatch.pt")


def test_cli_bad_render_size(checkpoint, tmp_path, capsys):
    photo_rgb().convert("L").save(tmp_path / "a.png")
    code, _, stderr = run_cli(capsys, tmp_path / "a.png", "-o", tmp_path / "out", "--checkpoint", checkpoint,
                              "--render-size", "30")
    assert code == 2 and "render_size=30 must be a positive multiple of 8" in stderr


def test_shipped_generator_colorizes_a_photo():
    if not DEFAULT_CHECKPOINT.exists():
        pytest.skip(f"no shipped generator at {DEFAULT_CHECKPOINT} in this checkout")
    model, cfg = load_model()
    gray = Image.open(GRACE_HOPPER).convert("L")
    out = colorize(gray, model)
    given = torch.from_numpy(np.array(gray)).float()
    assert (output_luma(out) - given).abs().max() <= 0.5 + 1e-3
    chroma = rgb_to_ycbcr(torch.from_numpy(np.array(out)).permute(2, 0, 1).float() / 255)[1:]
    assert chroma.abs().mean() > 0.01  # it does add colour
