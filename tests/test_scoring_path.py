"""Issue 21, item 1: a photo smaller than --render-size is never upsampled for the generator, and
every "through colorize" score is the colorize command's own output (one function, the same bytes)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from conftest import run_cli

from colorlib.inference import colorize
from colorlib.lab.metrics import (MethodScores, colorize_method, command_outputs, evaluate_methods, gray_baseline)
from colorlib.paper.data import to_model_range, to_uint8
from colorlib.runs.data import load_split

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600, ships with matplotlib


@pytest.fixture(scope="module")
def shipped():
    """The generator colorize ships with (paper preset, 100 epochs, trained on 32x32 CIFAR-10)."""
    return colorize.load_model()[0]


def pillow_rgb(path) -> torch.Tensor:
    """uint8 RGB [3, H, W] of a file as Pillow decodes it."""
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()


def cifar_folder(data_dir: Path, root: Path, per_class: int) -> Path:
    """root/test/<class>/*.jpg: real CIFAR-10 test JPEGs, `per_class` of each class, copied as they are."""
    for class_dir in sorted(p for p in (data_dir / "test").iterdir() if p.is_dir()):
        (root / "test" / class_dir.name).mkdir(parents=True)
        for jpg in sorted(class_dir.glob("*.jpg"))[::1000 // per_class][:per_class]:
            shutil.copyfile(jpg, root / "test" / class_dir.name / jpg.name)
    return root


# ---------------------------------------------------------------- never above the image's own size
def test_the_working_resolution_is_never_above_the_images_own_size():
    shape = colorize.requested_shape
    assert shape(32, 32, 64, 16) == (32, 32)  # CIFAR-10 at its own (training) size, not upsampled to 64
    assert shape(40, 40, 64, 16) == (32, 32)  # rounded down to the multiple, never up
    assert shape(32, 48, 64, 16) == (32, 48)  # non-square: both sides at most their own
    assert shape(20, 20, 64, 16) == (16, 16)
    assert shape(5, 7, 64, 16) == (16, 16)  # smaller than the multiple: enlarged only to it
    assert shape(600, 512, 64, 16) == (80, 64)  # photos larger than render_size: as before
    assert shape(3000, 4000, 32, 16) == (32, 48)
    for h, w in [(33, 97), (97, 33), (64, 69), (100, 3000), (17, 17)]:
        rh, rw = shape(h, w, 64, 16)
        assert rh <= max(h, 16) and rw <= max(w, 16) and rh % 16 == 0 and rw % 16 == 0, (h, w)


def test_the_generator_sees_a_cifar_image_at_its_own_size(shipped):
    seen = []
    hook = shipped.stem.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    try:
        for size in [(32, 32), (32, 48), (300, 200)]:
            colorize.colorize_luma(torch.rand(*size), shipped)  # the default render size, 64
    finally:
        hook.remove()
    assert seen == [(1, 1, 32, 32), (1, 1, 32, 48), (1, 1, 96, 64)]


def test_the_command_beats_the_gray_copy_on_cifar_at_its_default(shipped, data_dir, tmp_path, capsys):
    """Through the command line, at its default --render-size, on 100 real CIFAR-10 test JPEGs
    (10 per class): before, upsampled to 64, the shipped generator scored below the gray copy."""
    root = cifar_folder(data_dir, tmp_path / "cifar", per_class=10)
    code, _, stderr = run_cli(capsys, "colorize", root / "test", "-o", tmp_path / "out", "--no-progress")
    assert code == 0, stderr
    test = load_split(str(root), "test")
    files = sorted((root / "test").rglob("*.jpg"))  # the loader's order: classes, then names
    outputs = torch.stack([pillow_rgb(tmp_path / "out" / f.relative_to(root / "test")) for f in files])
    scores = {}
    for name, pred in (("gray", to_uint8(gray_baseline(to_model_range(test.images)[0]))), ("command", outputs)):
        s = MethodScores()
        s.update(pred, test.images, with_ssim=False)
        scores[name] = s.result(1.0, with_labels=False)["psnr_dataset_db"]
    assert scores["command"] > scores["gray"] + 0.2, scores


# ---------------------------------------------------------------- one path: the scorer is the command
def test_the_batched_scorer_writes_the_commands_bytes(shipped, data_dir, tmp_path, capsys):
    """On 32x32 CIFAR-10 JPEGs (a batch, loaded as the evaluation loads them), a larger photo, a
    non-square one and a grayscale one, the scorer's files are the command's, byte for byte, and
    its decoded images (what the metrics score) are the command's files decoded."""
    root = cifar_folder(data_dir, tmp_path / "cifar", per_class=2)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(GRACE_HOPPER, photos / "larger.jpg")
    with Image.open(GRACE_HOPPER) as img:
        img.crop((0, 200, 512, 366)).resize((301, 97)).save(photos / "wide.png")  # non-square, odd sides
        img.convert("L").resize((150, 100)).save(photos / "gray.jpg", quality=90)  # a grayscale JPEG
    for inputs, out in (([root / "test"], tmp_path / "out-cifar"), ([photos], tmp_path / "out-photos")):
        code, _, stderr = run_cli(capsys, "colorize", *inputs, "-o", out, "--no-progress")
        assert code == 0, stderr

    test = load_split(str(root), "test")  # 20 images: torchvision's decoder, as `evaluate` reads them
    files = sorted((root / "test").rglob("*.jpg"))
    written = [(tmp_path / "out-cifar" / f.relative_to(root / "test")).read_bytes() for f in files]
    assert command_outputs(test.images, shipped, fmt="JPEG") == written
    decoded = torch.stack([pillow_rgb(tmp_path / "out-cifar" / f.relative_to(root / "test")) for f in files])
    method = colorize_method(shipped)
    assert torch.equal(method(test.images), decoded)

    for name, fmt in (("larger.jpg", "JPEG"), ("wide.png", "PNG"), ("gray.jpg", "JPEG")):
        image = pillow_rgb(photos / name)[None]  # one photo: a batch of one
        assert command_outputs(image, shipped, fmt=fmt) == [(tmp_path / "out-photos" / name).read_bytes()], name
    with Image.open(photos / "gray.jpg") as img:
        assert img.mode == "L"  # the command read a gray file, the scorer its RGB copy: the same bytes

    # and the evaluation's "through colorize" numbers are the command's files, scored
    result = evaluate_methods({"through colorize": method}, test.images)
    s = MethodScores()
    s.update(decoded, test.images)
    expected = s.result(result["ground_truth"]["colourfulness"], with_labels=False)
    for key in ("psnr_dataset_db", "psnr_mean_db", "ssim", "colourfulness", "pixel_accuracy"):
        assert result["methods"]["through colorize"][key] == pytest.approx(expected[key], rel=1e-12), key


def test_photos_of_one_size_get_the_same_bytes_together_as_alone(shipped):
    torch.manual_seed(0)
    lumas = [colorize.GrayPhoto(torch.randint(0, 256, (32, 32)).float() / 255) for _ in range(6)]
    lumas.insert(3, colorize.GrayPhoto(torch.rand(40, 24)))  # another size in between
    together = colorize.colorized_files(lumas, shipped, formats=["JPEG"] * 7)
    assert together == [colorize.colorized_files([p], shipped, formats=["JPEG"])[0] for p in lumas]
