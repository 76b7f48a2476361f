"""sweep and study (colorlib.lab.study): methods x seeds trained one after another, continued by the
same command, refused where a run would continue with other maths; the study scores, aggregates and
chooses on validation, and a study stopped during scoring is finished by running it again."""
from __future__ import annotations

import json
import math
import shutil

import pytest

from colorlib.lab import study
from colorlib.runs import rundir
from conftest import MINI_DATA, one_line, run_cli


def test_sweep_trains_a_plan_continues_it_and_refuses_other_maths(data_dir, tmp_path, capsys):
    plan, out = tmp_path / "plan.json", tmp_path / "runs"
    plan.write_text(json.dumps({"preset": "smoke", "seeds": [1], "set": {"epochs": 1, "val_size": 0},
                                "methods": {"paper": {}, "l1": "unet-l1"}}))
    sweep = ["sweep", plan, "--out", out, "--data", data_dir, "--device", "cpu", "--no-progress"]
    assert run_cli(capsys, *sweep)[0] == 0
    for method in ("paper", "l1"):
        assert rundir.read_run_info(out / method / "seed1")["status"] == "finished"
        assert rundir.read_config(out / method / "seed1").seed == 1
    assert rundir.read_config(out / "l1" / "seed1").adv_weight == 0.0  # the baselines method by name
    last = out / "paper" / "seed1" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    assert run_cli(capsys, *sweep)[0] == 0 and last.read_bytes() == before  # finished: left as it is
    code, _, stderr = run_cli(capsys, *sweep, "--set", "lam=10")  # before: quietly went on with lam=100
    assert code == 2 and "lam=10.0 (the run has 100.0)" in one_line(stderr)
    assert last.read_bytes() == before


@pytest.mark.parametrize("content, message", [("{", "cannot be read as JSON"),
                                              ('{"methods": {"x": "nope"}}', "unknown method(s) nope"),
                                              ("[]", "needs a \"methods\" object"),
                                              ('{"methods": {"../up": {}}}', "must be a plain folder name")])
def test_a_bad_plan_file_is_one_clear_line(tmp_path, capsys, content, message):
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    code, _, stderr = run_cli(capsys, "sweep", plan, "--out", tmp_path / "runs")
    assert code == 2 and message in one_line(stderr)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_study_stopped_while_scoring_is_finished_by_running_it_again(data_dir, tmp_path, monkeypatch):
    figures, runs = tmp_path / "figures", tmp_path / "runs"

    def run():
        return study.run_study("smoke", runs, figures, seeds=2, methods=["paper", "unet-l1"], data=str(data_dir),
                               device="cpu", overrides={"epochs": 1}, progress=False, test_limit=60,
                               log=lambda *_: None)
    score_run, scored = study.score_run, []

    def stop_after_two(*args):
        if len(scored) == 2:
            raise KeyboardInterrupt
        scored.append(args[0])
        return score_run(*args)

    monkeypatch.setattr(study, "score_run", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(study, "score_run", score_run)
    kept = (scored[0] / "scores.json").stat().st_mtime_ns
    report = run()  # before: KeyError 'steady_images_per_s'
    assert (scored[0] / "scores.json").stat().st_mtime_ns == kept  # the scores already there are reused
    for r in report["methods"].values():  # mean and sample std over the seeds
        a, b = (s["test"]["colorize"]["psnr_dataset_db"] for s in r["seeds"])
        assert r["test"]["colorize"]["psnr_dataset_db"] == pytest.approx(
            {"mean": (a + b) / 2, "std": abs(a - b) / math.sqrt(2), "n": 2})
    gray = report["gray"]["val"]["psnr_dataset_db"]["mean"]  # the choice: the stated rule, validation only
    eligible = {m: r["val"]["colorize"]["feature_fd"]["mean"] for m, r in report["methods"].items()
                if r["val"]["colorize"]["psnr_dataset_db"]["mean"] > gray}
    assert report["chosen"] == (min(eligible, key=eligible.get) if eligible else None)
    assert report["test_images"] == 60 and report["val_images"] == 50
    assert "leaves out the" in (figures / "metrics.md").read_text()
    drawn = {f: (figures / f).stat().st_mtime_ns for f in ("metrics.json", "frontier.png", "collapse.png")}
    last = (runs / "paper" / "seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns
    again = run()  # a finished study: scored from what is kept, and drawn again
    assert again["chosen"] == report["chosen"]
    assert all(again["methods"][m]["test"] == report["methods"][m]["test"] for m in report["methods"])
    assert all((figures / f).stat().st_mtime_ns > t for f, t in drawn.items())
    assert (runs / "paper" / "seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns == last


@pytest.mark.slow
def test_a_study_of_a_plan_scores_the_plans_own_methods(data_dir, tmp_path, capsys):
    plan, figures = tmp_path / "plan.json", tmp_path / "figures"
    plan.write_text(json.dumps({"preset": "smoke", "seeds": [0], "out": str(tmp_path / "runs"), "set": {"epochs": 1},
                                "methods": {"lam-10": {"lam": 10.0}}}))
    assert run_cli(capsys, "study", plan, "--figures", figures, "--data", data_dir, "--device", "cpu",
                   "--test-limit", 60, "--no-progress")[0] == 0
    report = json.loads((figures / "metrics.json").read_text())
    assert list(report["methods"]) == ["lam-10"] and report["methods"]["lam-10"]["overrides"] == {"lam": 10.0}
    assert report["preset"] == "smoke" and report["seeds"] == 1
    assert rundir.read_config(tmp_path / "runs" / "lam-10" / "seed0").lam == 10.0


def test_study_options_win_over_the_plan_as_for_sweep(tmp_path, capsys, monkeypatch):
    asked = []
    monkeypatch.setattr(study, "run_study", lambda preset, out, _, seeds, *a, **k: asked.append((preset, out, seeds)))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"preset": "smoke", "seeds": [0], "out": "runs/x", "methods": {"lam-10": {}}}))
    assert run_cli(capsys, "study", plan)[0] == 0
    assert run_cli(capsys, "study", plan, "--preset", "quick", "--seeds", "2", "--out", "runs/y")[0] == 0
    assert run_cli(capsys, "study", "--methods", "paper")[0] == 0
    assert asked == [("smoke", "runs/x", [0]), ("quick", "runs/y", 2), ("paper", "runs/study", 3)]


def test_a_study_on_a_folder_of_other_classes_scores_them_by_name(tmp_path, monkeypatch):
    data = tmp_path / "data"  # two classes: the folder calls them 0 and 1, the judge 3 and 9
    for split in ("train", "test"):
        for name in ("cat", "truck"):
            shutil.copytree(MINI_DATA / split / name, data / split / name)
    judged = []

    def scores(methods, images, labels, *args, **kwargs):
        judged.append(labels.unique().tolist())
        raise KeyboardInterrupt  # stop at the first scoring
    monkeypatch.setattr(study, "train_runs", lambda *args: {})
    monkeypatch.setattr(study, "evaluate_methods", scores)
    with pytest.raises(KeyboardInterrupt):
        study.run_study("smoke", tmp_path / "runs", tmp_path / "figures", seeds=1, methods=["paper"], data=str(data),
                        device="cpu", overrides={"val_size": 10}, log=lambda *_: None)
    assert judged == [[3, 9]]  # before: semantic accuracy judged them as airplanes and cars
