"""run_baselines: every method trained at one budget, scored and compared; a second call continues
or skips what is already there instead of training again."""
from __future__ import annotations

import math
import os
import signal

import pytest

from colorlib.engine.trainer import Trainer, TrainingInterrupted
from colorlib.lab.baselines import METHODS, run_baselines
from colorlib.runs import rundir
from colorlib.runs.config import ConfigError, make_config


def test_an_unknown_method_is_refused_with_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown method") as err:
        run_baselines("smoke", tmp_path / "out", methods=["paper", "no-such-method"], device="cpu", progress=False)
    assert "no-such-method" in str(err.value) and all(name in str(err.value) for name in METHODS)
    assert not (tmp_path / "out").exists()  # refused before anything was trained


def stopped_run(cfg, run_dir, at: int, stop) -> None:
    """Train `cfg` into `run_dir`, calling `stop()` at the `at`-th iteration."""
    trainer = Trainer(cfg, run_dir, progress=False)
    step, calls = trainer.train_step, []

    def counting(index):
        calls.append(index)
        if len(calls) == at:
            stop()
        return step(index)

    trainer.train_step = counting
    with trainer, pytest.raises((RuntimeError, TrainingInterrupted)):
        trainer.fit()


@pytest.mark.slow
def test_methods_are_trained_scored_compared_continued_and_kept(data_dir, tmp_path):
    out, names = tmp_path / "out", ("unet-l1", "paper")
    cfgs = {n: make_config("smoke", data=str(data_dir), device="cpu", **METHODS[n]) for n in names}
    stopped_run(cfgs["unet-l1"], out / "unet-l1", 6, lambda: os.kill(os.getpid(), signal.SIGINT))
    assert rundir.read_run_info(out / "unet-l1")["status"] == "interrupted"  # saved after 6 iterations
    saved_rows = (out / "unet-l1" / "history.csv").read_text().splitlines()

    def crash():
        raise RuntimeError("killed")
    stopped_run(cfgs["paper"], out / "paper", 1, crash)  # before its first checkpoint: started over
    assert not (out / "paper" / "checkpoints" / "last.pt").exists()

    def baselines():
        return run_baselines("smoke", out, data=str(data_dir), methods=list(names), limit=50, device="cpu",
                             progress=False)
    written = baselines()
    assert {p.name for p in written} == {"metrics.md", "metrics.png"}
    for name in names:
        run, report = out / name, rundir.read_json(out / name / "metrics.json")
        assert rundir.read_run_info(run)["status"] == "finished"
        assert rundir.read_config(run).to_dict() == cfgs[name].to_dict()
        assert report["method"] == name and report["data"]["images"] == 50
        assert all(math.isfinite(report["methods"][name][k]) for k in ("psnr_dataset_db", "ssim", "colourfulness"))
        assert f"| {name} |" in (out / "metrics.md").read_text()
    rows = (out / "unet-l1" / "history.csv").read_text().splitlines()
    assert rows[:len(saved_rows)] == saved_rows and len(rows) == 1 + 2 * 4  # continued, not trained again

    kept = {p: p.stat().st_mtime_ns for name in names for p in (out / name).rglob("*") if p.is_file()}
    table = (out / "metrics.md").stat().st_mtime_ns
    baselines()  # everything finished and scored: nothing is trained or scored again, the table is redrawn
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert (out / "metrics.md").stat().st_mtime_ns > table
    with pytest.raises(ConfigError, match="preset='quick'"):  # another preset over these runs: refused
        run_baselines("quick", out, data=str(data_dir), methods=list(names), device="cpu", progress=False)
