"""colorlib.lab.ship: a generator becomes colorize's default only when it beats the one that ships,
and the default it replaces is never lost."""
from __future__ import annotations

import shutil

import pytest
import torch

from colorlib.inference import vividness as dial
from colorlib.inference.colorize import DEFAULT_CHECKPOINT, load_model
from colorlib.lab import ship as shipping
from colorlib.lab.ship import MEASURES, PHOTO_MEASURES, candidate_file, decide, ship
from colorlib.runs import rundir
from colorlib.runs.rundir import RunDirError


def _scores(**changes) -> dict:
    base = {"val_psnr_dataset_db": 23.0, "val_colourfulness_gap": 10.0, "val_semantic_accuracy": 0.86,
            "val_feature_fd": 1.5, "photos_beat_gray": 0.7, "photos_colour_missing": 0.3}
    return {**base, **changes}


def test_beating_means_no_worse_on_any_deciding_measure_and_better_on_one():
    default = _scores()
    assert decide(_scores(val_feature_fd=1.2), default, gray_val_psnr=22.2)[0]
    assert not decide(_scores(), default, gray_val_psnr=22.2)[0]  # the same everywhere: nothing to gain
    beats, rows, _ = decide(_scores(val_psnr_dataset_db=24.0, photos_colour_missing=0.5), default, 22.2)
    assert not beats and [r["measure"] for r in rows] == [m[0] for m in MEASURES]
    # against a default trained on the validation images, only the photos decide; never below the gray copy
    candidate = _scores(photos_beat_gray=0.8)
    trained_on = _scores(val_psnr_dataset_db=26.4)
    assert not decide(candidate, trained_on, gray_val_psnr=22.2, validation_decides=True)[0]
    beats, rows, _ = decide(candidate, trained_on, gray_val_psnr=22.2, validation_decides=False)
    assert beats and {r["measure"] for r in rows if r["decides"]} == set(PHOTO_MEASURES)
    assert not decide(candidate, trained_on, gray_val_psnr=23.5, validation_decides=False)[0]


def test_a_candidate_is_a_run_directory_or_a_checkpoint_file(smoke_run_copy, tmp_path):
    assert candidate_file(smoke_run_copy).name == "best.pt"
    (smoke_run_copy / "checkpoints" / "best.pt").unlink()
    assert candidate_file(smoke_run_copy).name == "generator.pt"
    with pytest.raises(RunDirError, match="does not exist"):  # a missing file: refused before any work
        ship(tmp_path / "missing.pt", out=tmp_path / "new.pt", log=lambda *a: None)


def test_bad_inputs_are_refused_before_anything_is_scored(smoke_run, tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(b"not mine")
    with pytest.raises(RunDirError, match="exists and is not the generator being replaced"):
        ship(smoke_run.run_dir, out=other, log=lambda *a: None)
    assert other.read_bytes() == b"not mine"
    with pytest.raises(RunDirError, match="no default to compare with"):
        ship(smoke_run.run_dir, against=tmp_path / "missing.pt", out=tmp_path / "new.pt", log=lambda *a: None)


def test_the_replaced_default_is_never_overwritten_and_a_failed_ship_changes_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(shipping, "evaluate_generator", lambda *a, **k: {"test": "scores"})
    monkeypatch.setattr(shipping, "calibrate", lambda *a, **k: dial.UNCALIBRATED)
    out = tmp_path / "generator.pt"
    shutil.copyfile(DEFAULT_CHECKPOINT, out)
    original = out.read_bytes()
    G, cfg = load_model(out)
    ckpt = rundir.load_checkpoint(out)

    def one_ship():
        shipping.write_generator(G, cfg, ckpt, out, out, {"beats_default": True}, None, None, None, "cpu",
                                 lambda *a: None)

    one_ship()
    one_ship()
    assert (tmp_path / "generator.previous.pt").read_bytes() == original  # the original default, kept
    assert (tmp_path / "generator.previous-2.pt").exists()
    monkeypatch.setattr(shipping, "calibrate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        one_ship()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert all(v.dtype == torch.float16 for v in rundir.load_checkpoint(out)["generator"].values()
               if v.is_floating_point() and torch.isfinite(v).all())


@pytest.mark.slow
def test_a_weak_candidate_is_not_shipped_and_nothing_is_written(smoke_run, data_dir, tmp_path):
    out = tmp_path / "generator.pt"
    report = ship(smoke_run.run_dir, str(data_dir), out=out, val_limit=50, device="cpu", log=lambda *a: None)
    assert not report["beats_default"] and report["written"] is None and not out.exists()
    assert not report["validation_decides"]  # the shipped default trained on every training image
    assert 10 < report["scores"]["candidate"]["val_psnr_dataset_db"] < 40
