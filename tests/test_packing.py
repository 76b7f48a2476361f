"""Packed training (colorlib.lab.packing): several runs side by side compute what each computes alone."""
from __future__ import annotations

import json
import math

import pytest
import torch

from colorlib.runs import rundir
from colorlib.cli import main as cli_main
from colorlib.lab.packing import train_packed
from colorlib.engine.trainer import Trainer

pytestmark = pytest.mark.slow


def _state(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return ckpt


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            # "reason": the words why a thread count or precision was chosen; for the threads they
            # hold a reading of the machine at that moment (cores other programs kept busy), not
            # something the runs compute (the counts and precisions themselves are compared)
            if k not in ("wall_time", "reason"):
                _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_packed_runs_equal_the_same_runs_trained_one_by_one(smoke_config, tmp_path):
    # two different recipes (and seeds) in one pack: the paper's, and a chroma-only one with a
    # spectral-norm D and an EMA generator
    configs = {"a": smoke_config(seed=0, epochs=2),
               "b": smoke_config(seed=1, epochs=2, output="ycbcr", d_norm="spectral", ema_decay=0.9, lr=2e-4)}
    for name, cfg in configs.items():
        Trainer(cfg, tmp_path / "alone" / name, progress=False).fit()
    cache: dict = {}
    trainers = [Trainer(cfg, tmp_path / "packed" / name, progress=False, data_cache=cache)
                for name, cfg in configs.items()]
    result = train_packed(trainers, progress=False)
    assert result["runs"] == 2 and result["failed"] == {}
    assert result["images"] == 2 * 2 * trainers[0].iterations_per_epoch * 50
    for name in configs:
        alone, packed = tmp_path / "alone" / name, tmp_path / "packed" / name
        _assert_same(_state(alone), _state(packed))
        for f in ("history.csv", "epochs.csv"):
            assert (alone / f).read_text() == (packed / f).read_text()
        assert rundir.read_run_info(packed)["status"] == "finished"


def test_a_failing_run_is_reported_and_the_others_finish(smoke_config, tmp_path):
    cache: dict = {}
    good = Trainer(smoke_config(epochs=1), tmp_path / "good", progress=False, data_cache=cache)
    bad = Trainer(smoke_config(epochs=1, lr=1e30), tmp_path / "bad", progress=False, data_cache=cache)
    lines = []
    result = train_packed([bad, good], progress=False, log=lines.append)
    assert list(result["failed"]) == [str(tmp_path / "bad")]
    assert "diverged" in result["failed"][str(tmp_path / "bad")]
    assert any("the others go on" in line for line in lines)
    assert rundir.read_run_info(tmp_path / "good")["status"] == "finished"
    with pytest.raises(Exception, match="diverged"):  # without a log, the failure propagates
        train_packed([Trainer(smoke_config(epochs=1, lr=1e30), tmp_path / "bad2", progress=False)],
                     progress=False)


def test_a_time_budget_cuts_every_run_to_the_same_epochs_and_says_so(smoke_config, tmp_path):
    cache: dict = {}
    trainers = [Trainer(smoke_config(seed=s, epochs=50), tmp_path / f"s{s}", progress=False, data_cache=cache)
                for s in (0, 1)]
    result = train_packed(trainers, progress=False, time_budget=0.5, fit_epochs=True)
    done = {t.epoch for t in trainers}
    assert len(done) == 1 and done.pop() < 50
    for t in trainers:
        cfg = json.loads((t.run_dir / "config.json").read_text())
        assert cfg["epochs"] == t.epoch  # the run says how long it really trained
        assert rundir.read_run_info(t.run_dir)["status"] == "finished"
    assert result["planned_epochs"][str(trainers[0].run_dir)] == 50


def test_sweep_command_trains_a_plan_and_skips_finished_runs(data_dir, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"preset": "smoke", "seeds": [0, 1], "set": {"epochs": 1, "device": "cpu"},
                                "methods": {"paper": {}, "l1": "unet-l1"}}))
    out = tmp_path / "runs"
    assert cli_main(["sweep", str(plan), "--out", str(out), "--data", str(data_dir), "--no-progress"]) == 0
    for method in ("paper", "l1"):
        for seed in (0, 1):
            run = out / method / f"seed{seed}"
            assert rundir.read_run_info(run)["status"] == "finished"
            assert rundir.read_config(run).seed == seed
    assert rundir.read_config(out / "l1" / "seed0").adv_weight == 0.0  # the baselines method by name
    before = (out / "paper" / "seed0" / "checkpoints" / "last.pt").read_bytes()
    assert cli_main(["sweep", str(plan), "--out", str(out), "--data", str(data_dir), "--no-progress"]) == 0
    assert (out / "paper" / "seed0" / "checkpoints" / "last.pt").read_bytes() == before  # finished: kept


@pytest.mark.parametrize("content, message", [("{", "not readable JSON"),
                                              ('{"methods": {"x": "nope"}}', "not a baselines method"),
                                              ("[]", "needs a \"methods\" object")])
def test_a_bad_plan_file_is_one_clear_line(tmp_path, capsys, content, message):
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    assert cli_main(["sweep", str(plan), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_study_scores_every_method_over_seeds_and_chooses_on_validation(data_dir, tmp_path):
    from colorlib.lab.study import run_study
    figures = tmp_path / "figures"
    report = run_study("smoke", tmp_path / "runs", figures, seeds=2, methods=["paper", "unet-l1"],
                       data=str(data_dir), device="cpu", overrides={"epochs": 1}, progress=False,
                       test_limit=60, log=lambda *_: None)
    for name in ("paper", "unet-l1"):
        r = report["methods"][name]
        assert [s["seed"] for s in r["seeds"]] == [0, 1]
        psnr = r["test"]["colorize"]["psnr_dataset_db"]
        per_seed = [s["test"]["colorize"]["psnr_dataset_db"] for s in r["seeds"]]
        assert psnr["n"] == 2 and psnr["mean"] == pytest.approx(sum(per_seed) / 2)
        assert psnr["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / math.sqrt(2))
        assert (tmp_path / "runs" / name / "seed1" / "scores.json").exists()
    # the choice follows the stated rule on the validation split alone
    gray = report["gray"]["val"]["psnr_dataset_db"]["mean"]
    eligible = {m: r["val"]["colorize"]["feature_fd"]["mean"] for m, r in report["methods"].items()
                if r["val"]["colorize"]["psnr_dataset_db"]["mean"] > gray}
    assert report["chosen"] == (min(eligible, key=eligible.get) if eligible else None)
    assert report["test_images"] == 60 and report["val_images"] == 50
    for f in ("metrics.json", "metrics.md", "frontier.png", "collapse.png", "study_bench.json"):
        assert (figures / f).stat().st_size > 0
    assert "leaves out the" in (figures / "metrics.md").read_text()
