"""The metrics against hand-computed values; the scoring path (what `colorize` writes is what is
scored); evaluate."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorlib.inference import colorize
from colorlib.lab.evaluation import METRICS_FORMAT, shown_evaluation, versus_gray
from colorlib.lab.metrics import (GRAY_METHOD, PSNR_CAP_DB, MethodScores, MetricsError, colorize_method,
                                  colourfulness, command_outputs, evaluate_methods, gray_baseline, judge_labels,
                                  mse_per_image, pixel_accuracy, psnr, psnr_from_mse, srgb_to_lab, ssim)
from colorlib.runs import rundir
from colorlib.runs.config import make_config
from colorlib.runs.data import load_split
from colorlib.variants.cifar_classifier import load_classifier
from conftest import MINI_DATA, one_line, random_images, run_cli, without_root


def pixels(*rgb) -> torch.Tensor:
    """uint8 image [1, 3, 1, len(rgb)] from (r, g, b) tuples."""
    return torch.tensor(rgb, dtype=torch.uint8).T.reshape(1, 3, 1, len(rgb))


def pillow_rgb(path) -> torch.Tensor:
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def shipped():
    return colorize.load_model()[0]


# ---------------------------------------------------------------- the measures
def test_psnr_is_capped_known_and_of_the_datasets_mse():
    x = random_images()
    assert psnr(x, x).tolist() == [PSNR_CAP_DB] * 4
    target = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    pred = target.clone()
    pred[0] = 1  # MSE 1
    pred[1] = 10  # MSE 100
    assert mse_per_image(pred, target).tolist() == [1.0, 100.0]
    one = target[:1].clone()
    one[0, 0, 0, 0] = 1  # the smallest error of a 32x32 image: 82.9 dB, under the cap
    assert psnr(one, target[:1]).item() == pytest.approx(10 * math.log10(255 ** 2 * 3072))
    scores = MethodScores()
    scores.update(pred, target, with_ssim=False)
    result = scores.result(truth_colourfulness=1.0)
    assert result["psnr_mean_db"] == pytest.approx((10 * math.log10(255 ** 2) + 10 * math.log10(255 ** 2 / 100)) / 2)
    assert result["psnr_dataset_db"] == pytest.approx(10 * math.log10(255 ** 2 / 50.5))
    assert psnr_from_mse(torch.tensor(0.0)).item() == PSNR_CAP_DB


def test_ssim_and_colourfulness():
    x = random_images(size=32)
    assert ssim(x, x).tolist() == pytest.approx([1.0] * 4) and (ssim(x, random_images(size=32, seed=1)) < 0.2).all()
    gray = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8).expand(-1, 3, -1, -1)
    assert colourfulness(gray).tolist() == [0.0, 0.0, 0.0]
    # one red and one blue pixel: rg = (255, 0), yb = (127.5, -255)
    expected = math.sqrt(127.5 ** 2 + 191.25 ** 2) + 0.3 * math.sqrt(127.5 ** 2 + 63.75 ** 2)
    assert colourfulness(pixels((255, 0, 0), (0, 0, 255))).item() == pytest.approx(expected)


@pytest.mark.parametrize("rgb, lab", [((255, 255, 255), (100.0, 0.0, 0.0)), ((128, 128, 128), (53.59, 0.0, 0.0)),
                                      ((255, 0, 0), (53.24, 80.09, 67.20)), ((0, 0, 255), (32.30, 79.19, -107.86))])
def test_srgb_to_lab_of_known_colours(rgb, lab):
    assert srgb_to_lab(pixels(rgb)).flatten().tolist() == pytest.approx(lab, abs=0.01)  # skimage's rgb2lab values


def test_pixel_accuracy_and_shapes():
    x = random_images()
    assert pixel_accuracy(x, x).tolist() == [1.0] * 4
    assert pixel_accuracy(pixels((255, 255, 255), (0, 0, 0)), pixels((0, 0, 0), (0, 0, 0))).item() == 0.5
    near = pixels((120, 120, 120), (10, 200, 90))
    assert pixel_accuracy(near + 1, near).item() == 1.0  # one level is well within 2%
    assert pixel_accuracy(pixels((128, 128, 128)), pixels((200, 90, 90))).item() == 0.0
    with pytest.raises(MetricsError, match="same shape"):
        psnr(random_images(size=8), random_images(size=16))


# ---------------------------------------------------------------- labels
def test_labels_are_matched_by_name_and_labels_outside_the_class_list_refused(tiny_classifier):
    judge = load_classifier(tiny_classifier[0])
    mapped, note = judge_labels(torch.tensor([0, 1, 2, -1]), ["dog", "cat", "unicorn"], judge)
    assert mapped.tolist() == [judge.classes.index("dog"), judge.classes.index("cat"), -1, -1]
    assert "left out of it: unicorn" in note
    with pytest.raises(MetricsError, match="labels up to 12 but only 3 classes"):
        judge_labels(torch.tensor([0, 12]), ["dog", "cat", "unicorn"], judge)
    with pytest.raises(MetricsError, match="labels up to 10 for a classifier of 10 classes"):
        evaluate_methods({GRAY_METHOD: gray_baseline}, random_images(2, 32), torch.tensor([1, 10]), judge)


# ---------------------------------------------------------------- the scoring path
def test_the_working_resolution_is_the_images_own_below_the_render_size(shipped):
    seen = []
    hook = shipped.stem.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    try:
        for size in [(32, 32), (40, 40), (32, 48), (300, 200)]:
            colorize.colorize_luma(torch.rand(*size), shipped)  # the default render size, 64
    finally:
        hook.remove()
    assert seen == [(1, 1, 32, 32), (1, 1, 32, 32), (1, 1, 32, 48), (1, 1, 96, 64)]


def test_what_is_scored_is_what_the_command_writes(shipped, data_dir, tmp_path, capsys):
    root = tmp_path / "cifar" / "test"
    for class_dir in sorted(p for p in (data_dir / "test").iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir(parents=True)
        for jpg in sorted(class_dir.glob("*.jpg"))[:2]:
            shutil.copyfile(jpg, root / class_dir.name / jpg.name)
    code, _, stderr = run_cli(capsys, "colorize", root, "-o", tmp_path / "out", "--no-progress")
    assert code == 0, stderr
    test = load_split(str(root.parent), "test")
    files = sorted(root.rglob("*.jpg"))  # the loader's order: classes, then names
    assert command_outputs(test.images, shipped) == [(tmp_path / "out" / f.relative_to(root)).read_bytes()
                                                     for f in files]
    decoded = torch.stack([pillow_rgb(tmp_path / "out" / f.relative_to(root)) for f in files])
    assert torch.equal(colorize_method(shipped)(test.images), decoded)
    # photos of one size are colorized together: the same bytes as alone
    photos = [colorize.GrayPhoto(torch.rand(32, 32)) for _ in range(3)] + [colorize.GrayPhoto(torch.rand(40, 24))]
    assert colorize.colorized_files(photos, shipped) == [colorize.colorized_files([p], shipped)[0] for p in photos]


# ---------------------------------------------------------------- evaluate
def test_evaluate_a_run_and_keep_the_full_evaluation(smoke_run_copy, small_folder, tiny_classifier, capsys):
    code, stdout, _ = run_cli(capsys, "evaluate", "--run-dir", smoke_run_copy, "--classifier", tiny_classifier[0],
                              "--data", small_folder, "--device", "cpu", "--no-progress")
    assert code == 0 and "wrote" in stdout
    report = json.loads((smoke_run_copy / "metrics.json").read_text())
    through = f"{smoke_run_copy.name} through colorize"
    assert set(report["methods"]) == {GRAY_METHOD, smoke_run_copy.name, through}
    assert all(isinstance(report["methods"][through][key], float) for key in
               ("psnr_dataset_db", "psnr_colour_mean_db", "ssim", "colourfulness", "pixel_accuracy",
                "semantic_accuracy", "feature_fd"))
    assert report["methods"][GRAY_METHOD]["colourfulness"] == 0.0
    assert str(small_folder) not in (smoke_run_copy / "metrics.json").read_text()  # no local paths
    # another scope never replaces the full evaluation: it goes beside it
    assert run_cli(capsys, "evaluate", "--run-dir", smoke_run_copy, "--data", small_folder, "--limit", "5",
                   "--device", "cpu", "--no-progress")[0] == 0
    assert json.loads((smoke_run_copy / "metrics.json").read_text())["scope"] == "data-cifar_small"
    assert json.loads((smoke_run_copy / "metrics-data-cifar_small-limit5.json").read_text())["data"]["images"] == 5


def test_evaluate_on_a_read_only_run_says_so_before_the_work_and_writes_to_out(smoke_run, capsys):
    with tempfile.TemporaryDirectory() as tmp:  # world-readable, unlike pytest's tmp_path
        run = Path(tmp) / "run"
        shutil.copytree(smoke_run.run_dir, run)
        Path(tmp).chmod(0o777)
        for path in (run, *run.rglob("*")):
            path.chmod(0o555 if path.is_dir() else 0o444)  # a read-only run
        argv = ["evaluate", "--run-dir", run, "--data", MINI_DATA, "--limit", "4", "--device", "cpu",
                "--no-progress"]
        try:
            with without_root():
                code, _, stderr = run_cli(capsys, *argv)
                assert code == 2 and "pass --out DIR" in one_line(stderr) and "nothing was scored" in stderr
                code, _, stderr = run_cli(capsys, *argv, "--out", Path(tmp) / "scores")
        finally:
            for path in (run, *run.rglob("*")):
                path.chmod(0o755)
        assert code == 0 and os.listdir(Path(tmp) / "scores") == ["metrics.json"], stderr


def a_report(run_db: float, colour: float, epochs: int) -> dict:
    scored = lambda db, c: {"psnr_dataset_db": db, "colourfulness": c}  # noqa: E731
    return {"method": "quick", "run": {"preset": "quick", "epochs_done": epochs}, "data": {"images": 1000},
            "ground_truth": {"colourfulness": 30.0}, "methods": {GRAY_METHOD: scored(22.24, 0.0), "quick":
                                                                  scored(20.0, colour),
                                                                  "quick through colorize": scored(run_db, colour)}}


def test_versus_gray_says_above_or_below_by_how_much_and_why():
    short = versus_gray(a_report(21.90, 12.0, 8))
    assert short.startswith("**`quick`** (preset `quick`, 8 epochs) scores 21.90 dB through `colorize` on these "
                            "1,000 test images: 0.34 dB below the gray copy's 22.24 dB.")
    assert "A run of 8 epochs has not learned" in short and "raw output scores 20.00 dB" in short
    assert "0.56 dB above" in versus_gray(a_report(22.80, 21.0, 100))
    assert "nearly gray" in versus_gray(a_report(22.25, 0.8, 2))
    assert "wrong more often than right" in versus_gray(a_report(21.0, 25.0, 100))


def test_shown_evaluation_reuses_a_file_of_the_run_as_it_is(tmp_path):
    rundir.write_json(tmp_path / "config.json", make_config("smoke").to_dict())
    rundir.write_json(tmp_path / "run.json", {"status": "finished", "epochs_done": 2})
    report = {"format": METRICS_FORMAT, "scope": "full", "run": {"epochs_done": 2}, "data": {"images": 10000}}
    rundir.write_json(tmp_path / "metrics.json", report)
    assert shown_evaluation(tmp_path, None, None) == (report, "scored before, on 10,000 test images, on this run as "
                                                              "it is now: metrics.json (delete it to score again)")
    got, note = shown_evaluation(tmp_path, None, 500)  # shipped with its scores, no generator: those
    assert got == report and note.startswith("scores shipped in the run's metrics.json, on 10,000 test images")


def test_shown_evaluation_scores_a_run_once(smoke_run_copy, small_folder, capsys):
    report, note = shown_evaluation(smoke_run_copy, str(small_folder), 5, "cpu")
    assert note == "scored now, on 5 test images (a seeded random subset, limit=5): written to metrics.json"
    assert "scoring 3 methods" in capsys.readouterr().err  # tqdm's bar, over the images
    again, note = shown_evaluation(smoke_run_copy, str(small_folder), 5, "cpu")
    assert note.startswith("scored before") and again["methods"] == report["methods"]
