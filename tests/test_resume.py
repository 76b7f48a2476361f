"""Continuing a run: one rule for what may differ (resume.run_config), exact resume from any
iteration, and the checks made on the run's files before anything is built from them."""
from __future__ import annotations

import json
import pathlib

import pytest
import torch

from colorlib.engine import trainer as trainer_module
from colorlib.engine.resume import run_config
from colorlib.engine.trainer import Trainer, TrainingInterrupted
from colorlib.runs import rundir
from colorlib.runs.config import RESUMABLE_FIELDS, ConfigError, make_config
from conftest import one_line, run_cli


def test_a_new_run_never_overwrites_a_run(smoke_run_copy, smoke_config):
    with pytest.raises(rundir.RunDirError, match="already holds a run"):
        run_config(smoke_run_copy, smoke_config(), resume=False)
    (smoke_run_copy / "config.json").unlink()
    with pytest.raises(rundir.RunDirError, match="holds files of a run"):
        run_config(smoke_run_copy, smoke_config(), resume=False)
    with pytest.raises(rundir.RunDirError, match="holds no run"):
        run_config(smoke_run_copy, None, resume=True)


def test_resume_takes_the_resumable_fields_and_refuses_the_rest(smoke_run_copy, smoke_config):
    cfg, resuming = run_config(smoke_run_copy, smoke_config(epochs=9, threads=1), resume=True)
    assert resuming and (cfg.epochs, cfg.threads) == (9, 1)
    assert run_config(smoke_run_copy, None, resume="auto")[0] == rundir.read_config(smoke_run_copy)
    assert {"epochs", "threads", "device", "data"} <= RESUMABLE_FIELDS and "lam" not in RESUMABLE_FIELDS
    for resume in (True, "auto"):  # every command that continues runs: train --resume, sweep, study, notebook 04
        with pytest.raises(ConfigError, match=r"lam=10.0 \(the run has 100.0\).*keep lam as the run has it"):
            run_config(smoke_run_copy, smoke_config(lam=10.0), resume=resume)
        with pytest.raises(ConfigError, match="keep the preset as the run has it"):  # train --preset quick --resume
            run_config(smoke_run_copy, overrides={"preset": "quick"}, resume=resume)
        with pytest.raises(ConfigError, match="preset='quick'.*keep the preset"):
            run_config(smoke_run_copy, make_config("quick", **{k: v for k, v in smoke_config().to_dict().items()
                                                                 if k in RESUMABLE_FIELDS}), resume=resume)


def test_train_resume_with_another_preset_or_lam_is_one_line_and_changes_nothing(smoke_run_copy, capsys):
    files = {p: p.read_bytes() for p in smoke_run_copy.rglob("*") if p.is_file()}
    for change, keep in ((["--preset", "quick"], "the preset"), (["--set", "lam=10"], "lam")):
        code, _, err = run_cli(capsys, "train", *change, "--resume", "--run-dir", smoke_run_copy, "--no-progress")
        assert code == 2 and f"keep {keep} as the run has it" in one_line(err)
    assert {p: p.read_bytes() for p in smoke_run_copy.rglob("*") if p.is_file()} == files
    code, _, err = run_cli(capsys, "train", "--preset", "smoke", "--resume", "--run-dir", smoke_run_copy,
                           "--no-progress")  # its own preset is no change
    assert code == 0, err


@pytest.mark.parametrize("text", ["[1, 2]", '{"preset": "smo', '{"lr": -5}'])
def test_a_damaged_config_json_is_one_line_exit_2(smoke_run_copy, capsys, text):
    (smoke_run_copy / "config.json").write_text(text)
    code, _, err = run_cli(capsys, "train", "--run-dir", smoke_run_copy, "--resume", "--no-progress")
    line = one_line(err)
    assert code == 2 and ("config.json" in line or "lr=-5" in line), line


def test_a_config_json_that_does_not_fit_last_pt_is_refused_before_building(smoke_run_copy):
    cfg = json.loads((smoke_run_copy / "config.json").read_text())
    (smoke_run_copy / "config.json").write_text(json.dumps({**cfg, "g_width": 100000}))
    with pytest.raises(rundir.RunDirError, match="does not fit the generator"):
        Trainer(None, smoke_run_copy, resume=True, progress=False)


def test_a_pickle_is_never_unpickled_and_said_so(smoke_run_copy):
    last = smoke_run_copy / "checkpoints" / "last.pt"
    torch.save({"format": rundir.CHECKPOINT_FORMAT, "code": pathlib.Path("x")}, last)  # needs the full unpickler
    with pytest.raises(rundir.RunDirError) as caught:
        Trainer(None, smoke_run_copy, resume=True, progress=False)
    assert str(caught.value) == f"{str(last)!r} is not a plain-weights file; load it only if you trust it"


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing"])
def test_a_damaged_or_missing_checkpoint_is_one_line(smoke_run_copy, how):
    last = smoke_run_copy / "checkpoints" / "last.pt"
    if how == "missing":
        last.unlink()
    else:
        last.write_bytes(last.read_bytes()[:1000] if how == "truncated" else b"not a checkpoint")
    with pytest.raises(rundir.RunDirError, match="damaged|missing") as caught:
        Trainer(None, smoke_run_copy, resume=True, progress=False)
    assert "\n" not in str(caught.value)


def test_fewer_epochs_than_done_or_other_images_are_refused(smoke_run_copy, smoke_config, monkeypatch):
    with pytest.raises(ConfigError, match="already holds 3 epochs"):
        Trainer(smoke_config(epochs=2), smoke_run_copy, resume=True, progress=False)
    monkeypatch.setattr(trainer_module, "fingerprint", lambda images, available: {"images": 200, "sha256": "other"})
    with pytest.raises(ConfigError, match="training images changed"):
        Trainer(smoke_config(epochs=4), smoke_run_copy, resume=True, progress=False)


def test_other_images_or_precision_continue_only_when_accepted_and_are_recorded(smoke_run_copy, smoke_config,
                                                                                monkeypatch):
    monkeypatch.setattr(trainer_module, "fingerprint", lambda images, available: {"images": 200, "sha256": "other"})
    monkeypatch.setattr(trainer_module, "bf16_autocast", lambda device: (False, "test"))
    if torch.load(smoke_run_copy / "checkpoints" / "last.pt", weights_only=True)["precision"]["precision"] == "float32":
        monkeypatch.setattr(trainer_module, "bf16_autocast", lambda device: (True, "test"))
    with pytest.raises(ConfigError, match="cannot resume .* exactly"):
        Trainer(smoke_config(epochs=4), smoke_run_copy, resume=True, progress=False, accept_changes=("data",))
    with Trainer(smoke_config(epochs=4), smoke_run_copy, resume=True, progress=False,
                 accept_changes=("data", "precision")) as t:
        t.fit()
    assert len(rundir.read_run_info(smoke_run_copy)["accepted_changes"]) == 2


def stop_at(monkeypatch, call: int) -> None:
    """Ctrl-C (a real SIGINT) during the `call`-th training step."""
    import os
    import signal
    real, calls = Trainer.train_step, [0]

    def step(self, index):
        calls[0] += 1
        if calls[0] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, index)
    monkeypatch.setattr(Trainer, "train_step", step)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every, call", [(1, 6), (2, 3)])
def test_ctrl_c_mid_epoch_saves_there_and_resume_ends_bitwise(smoke_run, smoke_config, tmp_path, monkeypatch,
                                                               checkpoint_every, call):
    run = tmp_path / "run"
    stop_at(monkeypatch, call)
    with pytest.raises(TrainingInterrupted, match="keeps"):
        Trainer(smoke_config(checkpoint_every=checkpoint_every), run, progress=False).fit()
    info = rundir.read_run_info(run)
    assert info["status"] == "interrupted" and info["iterations_done"] == call
    monkeypatch.undo()
    with Trainer(smoke_config(checkpoint_every=checkpoint_every), run, resume=True, progress=False) as t:
        t.fit()
    a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True) for r in (run, smoke_run.run_dir))
    for name in ("generator", "discriminator", "history"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in b[name]) if name != "history" else \
            torch.equal(a[name], b[name]), name
    assert all(torch.equal(x, y) for x, y in zip(a["g_opt"]["state"][0].values(), b["g_opt"]["state"][0].values()))
    assert (run / "history.csv").read_bytes() == (smoke_run.run_dir / "history.csv").read_bytes()
