"""colorlib.lab.ship: a generator becomes colorize's default only when it beats the one that ships."""
from __future__ import annotations

import shutil

import pytest
import torch

from colorlib.runs import rundir
from colorlib.inference.colorize import DEFAULT_CHECKPOINT, load_model
from colorlib.runs.rundir import RunDirError
from colorlib.lab.ship import MEASURES, PHOTO_MEASURES, candidate_file, decide, ship, verdict


def _scores(**changes) -> dict:
    base = {"val_psnr_dataset_db": 23.0, "val_colourfulness_gap": 10.0, "val_semantic_accuracy": 0.86,
            "val_feature_fd": 1.5, "photos_beat_gray": 0.7, "photos_colour_missing": 0.3}
    return {**base, **changes}


def test_beating_means_no_worse_anywhere_and_better_somewhere():
    default = _scores()
    assert verdict(_scores(val_feature_fd=1.2), default)[0]  # lower FD, the rest the same
    assert verdict(_scores(photos_colour_missing=0.1, val_psnr_dataset_db=23.5), default)[0]
    assert not verdict(_scores(), default)[0]  # the same everywhere: nothing to gain
    # better fidelity bought with colour that users see on their photos is not a win
    beats, rows = verdict(_scores(val_psnr_dataset_db=24.0, photos_colour_missing=0.5), default)
    assert not beats
    assert {r["measure"]: r["verdict"] for r in rows} == {
        "val_psnr_dataset_db": "better", "val_colourfulness_gap": "same", "val_semantic_accuracy": "same",
        "val_feature_fd": "same", "photos_beat_gray": "same", "photos_colour_missing": "worse"}
    assert [r["measure"] for r in rows] == [key for key, _, _ in MEASURES]


def test_against_a_default_that_trained_on_the_validation_images_the_photos_decide():
    default = _scores(val_psnr_dataset_db=26.4, val_feature_fd=1.3)  # the images it was trained on
    candidate = _scores(photos_beat_gray=0.8)
    assert not decide(candidate, default, gray_val_psnr=22.2, validation_decides=True)[0]
    beats, rows, above_gray = decide(candidate, default, gray_val_psnr=22.2, validation_decides=False)
    assert beats and above_gray
    assert {r["measure"] for r in rows if r["decides"]} == set(PHOTO_MEASURES)
    # livelier photos never excuse a colorizer worse than the gray copy on CIFAR-10
    beats, _, above_gray = decide(candidate, default, gray_val_psnr=23.5, validation_decides=False)
    assert not beats and not above_gray


def test_a_candidate_is_a_run_directory_or_a_checkpoint_file(smoke_run_copy, tmp_path):
    assert candidate_file(smoke_run_copy).name == "best.pt"  # the epoch with the lowest validation FD
    (smoke_run_copy / "checkpoints" / "best.pt").unlink()
    assert candidate_file(smoke_run_copy).name == "generator.pt"
    with pytest.raises(RunDirError, match="holds no checkpoint"):
        candidate_file(tmp_path)
    with pytest.raises(RunDirError, match="does not exist"):
        candidate_file(tmp_path / "missing.pt")


@pytest.mark.slow
def test_a_weak_candidate_is_not_shipped_and_nothing_is_written(smoke_run, data_dir, tmp_path):
    out = tmp_path / "generator.pt"
    report = ship(smoke_run.run_dir, str(data_dir), out=out, val_limit=200, device="cpu", log=lambda *a: None)
    assert not report["beats_default"] and report["written"] is None and not out.exists()
    assert any(r["verdict"] == "worse" for r in report["rows"])
    for side in ("candidate", "default"):  # both scored the same way: validation and photos
        scores = report["scores"][side]
        # the candidate's own validation split, which its run held out (the smoke preset's is small)
        assert scores["validation"]["images"] == min(200, smoke_run.cfg.val_size) and scores["photos"]["photos"] == 9
        assert 10 < scores["val_psnr_dataset_db"] < 40 and scores["val_feature_fd"] > 0
    # the shipped default was trained on every training image: its validation scores cannot decide
    assert not report["validation_decides"] and "trained on" in report["why_validation_does_not_decide"]


@pytest.mark.slow
def test_a_winner_is_written_with_its_scores_and_the_replaced_file_kept(smoke_run, data_dir, tmp_path):
    weak = tmp_path / "generator.pt"  # stands in for today's default: the tiny smoke generator
    shutil.copy(smoke_run.run_dir / "checkpoints" / "generator.pt", weak)
    before = weak.read_bytes()
    report = ship(DEFAULT_CHECKPOINT, str(data_dir), out=weak, against=weak, val_limit=200, test_limit=200,
                  device="cpu", log=lambda *a: None)
    assert report["beats_default"] and report["written"] == str(weak)
    assert (tmp_path / "generator.previous.pt").read_bytes() == before  # nothing lost
    shipped = rundir.load_checkpoint(weak)
    assert all(v.dtype == torch.float16 for v in shipped["generator"].values() if v.is_floating_point())
    assert shipped["ship"]["beats_default"] and shipped["metrics"]["data"]["images"] == 200
    assert "generator through colorize" in shipped["metrics"]["methods"]
    assert shipped["vividness"]["knots"]  # shipped with its vividness dial calibrated
    G, cfg = load_model(weak)  # colorize takes it as it takes any generator
    assert cfg.preset == "paper"
    assert G(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_bad_inputs_are_refused_before_anything_is_scored(smoke_run, tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(b"not mine")
    with pytest.raises(RunDirError, match="exists and is not the generator being replaced"):
        ship(smoke_run.run_dir, out=other, log=lambda *a: None)
    assert other.read_bytes() == b"not mine"
    with pytest.raises(RunDirError, match="no default to compare with"):
        ship(smoke_run.run_dir, against=tmp_path / "missing.pt", out=tmp_path / "new.pt", log=lambda *a: None)
