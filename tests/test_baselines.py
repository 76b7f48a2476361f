"""run_baselines: every method trained at one budget, scored, and compared; a second call
continues or skips what is already there instead of training again."""
from __future__ import annotations

import json
import math

import pytest

from colorlib.runs import rundir
from colorlib.lab.baselines import METHODS, run_baselines
from colorlib.runs.config import make_config
from colorlib.engine.trainer import Trainer

METHODS_RUN = ("unet-l1", "paper")
LIMIT = 50  # test images scored per method


def baselines(data_dir, out, methods=METHODS_RUN):
    return run_baselines("smoke", out, data=str(data_dir), methods=list(methods), limit=LIMIT, device="cpu",
                         progress=False)


def run_files(run) -> dict:
    """What a retraining or a re-evaluation would rewrite, by modification time."""
    return {name: (run / name).stat().st_mtime_ns
            for name in ("checkpoints/last.pt", "checkpoints/generator.pt", "history.csv", "run.json",
                         "metrics.json")}


def test_an_unknown_method_is_refused_with_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown method") as err:
        run_baselines("smoke", tmp_path / "out", methods=["paper", "no-such-method"], device="cpu", progress=False)
    assert "no-such-method" in str(err.value)
    assert all(name in str(err.value) for name in METHODS)
    assert not (tmp_path / "out").exists()  # refused before anything was trained


@pytest.mark.slow
def test_two_methods_are_trained_scored_compared_and_kept(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    # one run was stopped before its first checkpoint: config.json and run.json, no last.pt
    crashed = Trainer(make_config("smoke", data=str(data_dir), device="cpu", **METHODS["paper"]), out / "paper",
                      progress=False)
    calls = 0

    def crash(*args):
        nonlocal calls
        calls += 1
        raise RuntimeError("killed")

    monkeypatch.setattr(crashed, "step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        crashed.fit()
    crashed.close()
    assert rundir.read_run_info(out / "paper")["status"] == "failed"
    assert not (out / "paper" / "checkpoints" / "last.pt").exists()

    written = baselines(data_dir, out)  # ... is started over, the other trained from nothing

    assert {p.name for p in written} == {"metrics.md", "metrics.png"} and all(p.exists() for p in written)
    table = (out / "metrics.md").read_text()
    for name in METHODS_RUN:
        run = out / name
        info = rundir.read_run_info(run)
        cfg = rundir.read_config(run)
        assert info["status"] == "finished" and info["epochs_done"] == cfg.epochs
        assert cfg.to_dict() == make_config("smoke", data=str(data_dir), device="cpu", **METHODS[name]).to_dict()
        report = json.loads((run / "metrics.json").read_text())
        assert report["method"] == name and report["data"]["images"] == LIMIT
        scores = [report["methods"][name][k] for k in ("psnr_dataset_db", "ssim", "colourfulness")]
        assert all(isinstance(v, float) and math.isfinite(v) for v in scores), scores
        assert f"| {name} |" in table

    before = {name: run_files(out / name) for name in METHODS_RUN}
    table_before = (out / "metrics.md").stat().st_mtime_ns
    baselines(data_dir, out)  # everything finished and scored: nothing is trained or scored again
    assert {name: run_files(out / name) for name in METHODS_RUN} == before
    assert (out / "metrics.md").stat().st_mtime_ns > table_before  # the comparison is written again
    assert all(f"| {name} |" in (out / "metrics.md").read_text() for name in METHODS_RUN)


@pytest.mark.slow
def test_an_interrupted_method_is_continued_not_restarted(data_dir, tmp_path):
    out = tmp_path / "out"
    cfg = make_config("smoke", data=str(data_dir), device="cpu", **METHODS["unet-l1"])
    steps = Trainer(cfg, out / "unet-l1", progress=False).iterate()
    for _ in range(5):  # one epoch of four iterations and one of the next
        next(steps)
    steps.close()  # saved where it stood
    info = rundir.read_run_info(out / "unet-l1")
    assert (info["status"], info["epochs_done"], info["iteration_in_epoch"]) == ("interrupted", 1, 1)
    first_rows = (out / "unet-l1" / "history.csv").read_text().splitlines()

    baselines(data_dir, out, methods=["unet-l1"])

    info = rundir.read_run_info(out / "unet-l1")
    assert (info["status"], info["epochs_done"]) == ("finished", cfg.epochs)
    rows = (out / "unet-l1" / "history.csv").read_text().splitlines()
    assert rows[:len(first_rows)] == first_rows  # the saved iterations were kept, not trained again
    assert len(rows) == 1 + cfg.epochs * 4
