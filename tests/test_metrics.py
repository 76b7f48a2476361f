"""Metrics against hand-computed values; evaluate and compare."""
from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import random_images

from colorlib.variants.cifar_classifier import load_classifier
from colorlib.cli import main as cli_main
from colorlib.lab.metrics import (GRAY_METHOD, PSNR_CAP_DB, MethodScores, colourfulness, evaluate_methods,
                                  gray_baseline, mse_per_image, pixel_accuracy, psnr, psnr_from_mse,
                                  srgb_to_lab, ssim)


def pixels(*rgb) -> torch.Tensor:
    """uint8 image [1, 3, 1, len(rgb)] from (r, g, b) tuples."""
    return torch.tensor(rgb, dtype=torch.uint8).T.reshape(1, 3, 1, len(rgb))


# ---------------------------------------------------------------- PSNR
def test_psnr_of_identical_images_is_capped():
    x = random_images()
    assert psnr(x, x).tolist() == [PSNR_CAP_DB] * 4


def test_psnr_of_a_known_mse():
    target = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    pred = torch.full_like(target, 5)  # every value off by 5: MSE = 25
    assert mse_per_image(pred, target).tolist() == [25.0, 25.0]
    expected = 10 * math.log10(255 ** 2 / 25)  # 34.151 dB
    assert psnr(pred, target).tolist() == pytest.approx([expected, expected])


def test_smallest_error_of_a_32x32_image_stays_below_the_cap():
    target = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    pred = target.clone()
    pred[0, 0, 0, 0] = 1  # MSE = 1 / 3072
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(255 ** 2 * 3072))  # 82.9 dB
    assert psnr(pred, target).item() < PSNR_CAP_DB


def test_dataset_psnr_comes_from_the_total_mse_not_the_mean_of_psnrs():
    target = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    pred = target.clone()
    pred[0] = 1   # MSE 1
    pred[1] = 10  # MSE 100
    scores = MethodScores()
    scores.update(pred, target, with_ssim=False)
    result = scores.result(truth_colourfulness=1.0, with_labels=False)
    mean_of_psnrs = (10 * math.log10(255 ** 2 / 1) + 10 * math.log10(255 ** 2 / 100)) / 2
    assert result["psnr_mean_db"] == pytest.approx(mean_of_psnrs)
    assert result["psnr_dataset_db"] == pytest.approx(10 * math.log10(255 ** 2 / 50.5))
    assert psnr_from_mse(torch.tensor(0.0)).item() == PSNR_CAP_DB


# ---------------------------------------------------------------- SSIM
def test_ssim_is_one_for_identical_images_and_lower_otherwise():
    x = random_images(size=32)
    assert ssim(x, x).tolist() == pytest.approx([1.0] * 4)
    assert (ssim(x, random_images(size=32, seed=1)) < 0.2).all()


# ---------------------------------------------------------------- colourfulness
def test_colourfulness_of_gray_images_is_zero():
    gray = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8).expand(-1, 3, -1, -1)
    assert colourfulness(gray).tolist() == [0.0, 0.0, 0.0]


def test_colourfulness_by_hand():
    # one red and one blue pixel: rg = (255, 0), yb = (127.5, -255)
    # var(rg) = 127.5^2, var(yb) = 191.25^2, mean(rg) = 127.5, mean(yb) = -63.75
    sigma = math.sqrt(127.5 ** 2 + 191.25 ** 2)
    mu = math.sqrt(127.5 ** 2 + 63.75 ** 2)
    assert colourfulness(pixels((255, 0, 0), (0, 0, 255))).item() == pytest.approx(sigma + 0.3 * mu)
    # a flat red image has no spread, only the mean term: rg = 255, yb = 127.5
    assert colourfulness(pixels((255, 0, 0), (255, 0, 0))).item() == pytest.approx(0.3 * math.hypot(255, 127.5))


# ---------------------------------------------------------------- Lab and pixel accuracy
@pytest.mark.parametrize("rgb, lab", [
    ((255, 255, 255), (100.0, 0.0, 0.0)),
    ((0, 0, 0), (0.0, 0.0, 0.0)),
    ((128, 128, 128), (53.59, 0.0, 0.0)),
    ((255, 0, 0), (53.24, 80.09, 67.20)),   # the standard sRGB (D65) values, e.g. skimage.color.rgb2lab
    ((0, 255, 0), (87.74, -86.18, 83.18)),
    ((0, 0, 255), (32.30, 79.19, -107.86)),
])
def test_srgb_to_lab_of_known_colours(rgb, lab):
    got = srgb_to_lab(pixels(rgb)).flatten().tolist()
    assert got == pytest.approx(lab, abs=0.01)
    # float input in [0, 1] means the same colour
    as_float = srgb_to_lab(pixels(rgb).float() / 255).flatten().tolist()
    assert as_float == pytest.approx(got, abs=1e-4)  # float32 input rounding


def test_pixel_accuracy():
    x = random_images()
    assert pixel_accuracy(x, x).tolist() == [1.0] * 4
    black, white = pixels((0, 0, 0), (0, 0, 0)), pixels((255, 255, 255), (0, 0, 0))
    assert pixel_accuracy(white, black).item() == 0.5  # one of the two pixels is right
    # one 8-bit level changes L by well under 2 units of 100: still right
    near = pixels((120, 120, 120), (10, 200, 90))
    assert pixel_accuracy(near + 1, near).item() == 1.0
    # mid-gray vs a saturated red of the same luminance is wrong
    assert pixel_accuracy(pixels((128, 128, 128)), pixels((200, 90, 90))).item() == 0.0


def test_metrics_refuse_mismatched_shapes():
    from colorlib.lab.metrics import MetricsError
    with pytest.raises(MetricsError, match="same shape"):
        psnr(random_images(size=8), random_images(size=16))


# ---------------------------------------------------------------- a perfect and a gray method
def test_perfect_colorization_scores_perfectly():
    x = random_images(n=8, size=32)
    scores = MethodScores()
    scores.update(x, x)
    r = scores.result(colourfulness(x).mean().item(), with_labels=False)
    assert r["psnr_mean_db"] == PSNR_CAP_DB and r["psnr_dataset_db"] == PSNR_CAP_DB
    assert r["ssim"] == pytest.approx(1.0) and r["pixel_accuracy"] == 1.0
    assert r["colourfulness_gap"] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------- evaluate and compare
def test_gray_baseline_has_no_colour_and_classifier_sees_it(small_folder, tiny_classifier):
    from colorlib.runs.data import load_split
    test = load_split(str(small_folder), "test")
    result = evaluate_methods({GRAY_METHOD: gray_baseline}, test.images, test.labels,
                              load_classifier(tiny_classifier[0]), batch_size=7)
    gray = result["methods"][GRAY_METHOD]
    assert gray["images"] == len(test) == 20
    assert gray["colourfulness"] == 0.0 and gray["colourfulness_gap_pct"] == -100.0
    assert 15 < gray["psnr_mean_db"] < 40 and 0 <= gray["semantic_accuracy"] <= 1
    assert gray["feature_fd"] is not None and gray["feature_fd"] >= 0
    assert result["ground_truth"]["colourfulness"] > 0


def test_evaluate_and_compare_on_a_smoke_run(smoke_run_copy, small_folder, tiny_classifier, tmp_path):
    code = cli_main(["evaluate", "--run-dir", str(smoke_run_copy), "--classifier", str(tiny_classifier[0]),
                     "--data", str(small_folder), "--device", "cpu", "--no-progress"])
    assert code == 0
    report = json.loads((smoke_run_copy / "metrics.json").read_text())
    assert report["data"]["images"] == 20 and report["classifier"]["file"] == "classifier.pt"
    through = f"{smoke_run_copy.name} through colorize"  # what users get: the input's luma, the network's chroma
    assert set(report["methods"]) == {GRAY_METHOD, smoke_run_copy.name, through}
    for model in (report["methods"][smoke_run_copy.name], report["methods"][through]):
        for key in ("psnr_mean_db", "psnr_colour_mean_db", "psnr_dataset_db", "ssim", "colourfulness",
                    "pixel_accuracy", "semantic_accuracy", "feature_fd"):
            assert isinstance(model[key], float), key
    # two scorings of one RGB generator: with its own luma and with the input's
    assert report["methods"][through]["psnr_dataset_db"] != report["methods"][smoke_run_copy.name]["psnr_dataset_db"]
    assert str(small_folder) not in (smoke_run_copy / "metrics.json").read_text()  # no local paths

    out = tmp_path / "compare"
    assert cli_main(["compare", str(smoke_run_copy), "--out", str(out)]) == 0
    table = (out / "metrics.md").read_text()
    assert "| ground truth |" in table and f"| {GRAY_METHOD} |" in table and f"| {through} |" in table
    assert "PSNR per image*" in table and "PSNR mean" not in table  # the robust per-image PSNR, not the capped one
    assert (out / "metrics.png").stat().st_size > 10_000


def test_compare_needs_evaluated_runs(tmp_path, capsys):
    assert cli_main(["compare", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "colorlib evaluate" in capsys.readouterr().err


# ---------------------------------------------------------------- what 07_evaluation shows
def scored(psnr_db: float, colour: float) -> dict:
    return {"psnr_dataset_db": psnr_db, "colourfulness": colour}


def a_report(run_db: float, colour: float, epochs: int, raw_db: float = 20.0) -> dict:
    return {"method": "quick", "run": {"preset": "quick", "epochs_done": epochs},
            "data": {"images": 1000}, "ground_truth": {"colourfulness": 30.0},
            "methods": {GRAY_METHOD: scored(22.24, 0.0), "quick": scored(raw_db, colour),
                        "quick through colorize": scored(run_db, colour)}}


def test_versus_gray_says_above_or_below_by_how_much_and_why():
    from colorlib.lab.metrics import versus_gray
    short = versus_gray(a_report(21.90, 12.0, 8))
    assert short.startswith("**`quick`** (preset `quick`, 8 epochs) scores 21.90 dB through `colorize` on these "
                            "1,000 test images: 0.34 dB below the gray copy's 22.24 dB.")
    assert "A run of 8 epochs has not learned which colour goes where yet" in short
    assert "raw output scores 20.00 dB" in short
    above = versus_gray(a_report(22.80, 21.0, 100))
    assert "0.56 dB above the gray copy's 22.24 dB" in above and "mean-colour effect" in above
    assert "colourfulness 21.0 against the truth's 30.0" in above
    assert "nearly gray" in versus_gray(a_report(22.25, 0.8, 2))
    assert "wrong more often than right" in versus_gray(a_report(21.0, 25.0, 100))


def test_the_study_chart_reads_level_and_large_enough(repo_root):
    from colorlib.lab.metrics import comparison_chart
    from colorlib.lab.tutorial import SHIPPED_BASELINES, baselines_report, study_rows, study_title
    report, _, _ = baselines_report(SHIPPED_BASELINES, "paper", repo=repo_root)
    rows, truth, spreads = study_rows(report)
    fig = comparison_chart(rows, truth, study_title(report), spreads)
    assert fig.dpi >= 100
    first = fig.axes[0]
    labels = first.get_yticklabels()
    assert [t.get_text() for t in labels] == [name for name, _ in rows]  # the names on the left, level
    assert all(t.get_rotation() == 0 for t in labels) and len(first.patches) == len(rows)
    assert first.get_ylim()[0] > first.get_ylim()[1]  # the first row (the gray copy) on top
    values = [t.get_text().strip() for t in first.texts]
    assert values[0] == f"{dict(rows)[GRAY_METHOD]['psnr_dataset_db']:.2f}"  # each bar says its value
    texts = [t for ax in fig.axes for t in (*ax.texts, ax.title, *ax.get_xticklabels(), *ax.get_yticklabels())]
    assert min(t.get_fontsize() for t in texts if t.get_text()) >= 9


def test_shown_evaluation_reuses_a_file_of_the_run_as_it_is(tmp_path):
    from colorlib.lab.metrics import METRICS_FORMAT, shown_evaluation
    from colorlib.runs import rundir
    from colorlib.runs.config import make_config
    rundir.write_json(tmp_path / "config.json", make_config("smoke").to_dict())
    rundir.write_json(tmp_path / "run.json", {"status": "finished", "epochs_done": 2})
    report = {"format": METRICS_FORMAT, "scope": "full", "run": {"epochs_done": 2}, "data": {"images": 10000}}
    rundir.write_json(tmp_path / "metrics.json", report)
    assert shown_evaluation(tmp_path, None, None) == (report, "scored before, on 10,000 test images, on this run as "
                                                              "it is now: metrics.json (delete it to score again)")
    limited = {**report, "scope": "limit1000", "data": {"images": 1000, "limit": 1000}}
    rundir.write_json(tmp_path / "metrics-limit1000.json", limited)
    assert shown_evaluation(tmp_path, None, 1000) == (limited, "scored before, on 1,000 test images (a seeded random "
                                                          "subset, limit=1000), on this run as it is now: "
                                                          "metrics-limit1000.json (delete it to score again)")
    # a run shipped with its scores but no generator: those scores, whatever the limit
    got, note = shown_evaluation(tmp_path, None, 500)
    assert got == report and note.startswith("the run ships its scores (on 10,000 test images) but not its generator")


def test_shown_evaluation_scores_a_run_once_with_a_progress_bar(smoke_run_copy, small_folder, capsys):
    from colorlib.lab.metrics import shown_evaluation
    report, note = shown_evaluation(smoke_run_copy, str(small_folder), 5, "cpu")
    assert note == "scored now, on 5 test images (a seeded random subset, limit=5): written to metrics.json"
    assert report["data"]["images"] == 5
    assert "scoring 3 methods" in capsys.readouterr().err  # tqdm's bar, over the images
    again, note = shown_evaluation(smoke_run_copy, str(small_folder), 5, "cpu")
    assert note.startswith("scored before") and again["methods"] == report["methods"]
