"""Runs that are stopped, crashed, shared, shortened or damaged lose nothing and say what they keep:

1. Ctrl-C or a crash at any moment, the first epoch included, leaves a run that `--resume`
   continues, bitwise as if it had never stopped;
2. one training at a time writes a run directory (RUN/train.lock), the lock is released on every
   way out and a stale one is taken over;
3. run.json always describes what last.pt holds;
4. `--resume --epochs N` below what is done is refused and the run left as it was;
5. a damaged or missing history.csv / epochs.csv is rebuilt from the checkpoint, or refused with
   one line where it cannot be.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colorlib.runs import rundir
from colorlib.cli import main as cli_main
from colorlib.runs.config import ConfigError
from colorlib.lab.validation import validator_for
from colorlib.engine.trainer import Trainer, TrainingDiverged
from colorlib.engine.interrupts import TrainingInterrupted

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("generator", "discriminator", "g_opt", "d_opt", "epoch", "iteration", "history", "epoch_rows",
            "best_fd")


# ---------------------------------------------------------------- helpers
def same(a, b) -> bool:
    """Bitwise equality of nested state (NaN equal to NaN: epochs.csv rows without validation)."""
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def load_ckpt(run_dir, name="last.pt") -> dict:
    return torch.load(Path(run_dir) / "checkpoints" / name, map_location="cpu", weights_only=True)


def assert_same_run(run: Path, reference: Path) -> None:
    """Weights, optimizer states, history and epoch table bitwise those of `reference`."""
    for name in ("history.csv", "epochs.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    ours, theirs = load_ckpt(run), load_ckpt(reference)
    for part in COMPARED:
        assert same(ours[part], theirs[part]), part
    assert same(load_ckpt(run, "generator.pt")["generator"], load_ckpt(reference, "generator.pt")["generator"])
    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"], info["iteration_in_epoch"]) == ("finished", ours["epoch"], 0)
    assert not (run / rundir.LOCK_NAME).exists()


def files_and_bytes(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stop_at(trainer_or_class, monkeypatch, call: int, how: str) -> None:
    """Make the `call`-th training step (1-based) stop the run: `sigint` sends this process a real
    SIGINT in the middle of the step (Ctrl-C), `at_once` raises KeyboardInterrupt inside it (a
    second Ctrl-C), `crash` raises an error in it."""
    is_class = isinstance(trainer_or_class, type)
    original = trainer_or_class.step
    calls = 0

    def step(*args):
        nonlocal calls
        calls += 1
        if calls == call:
            if how == "sigint":
                # never a real Ctrl-C to the test process unless the trainer holds it back
                assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
                os.kill(os.getpid(), signal.SIGINT)
            elif how == "at_once":
                raise KeyboardInterrupt
            elif how == "crash":
                raise RuntimeError("CUDA out of memory (simulated)")
        return original(*args)

    monkeypatch.setattr(trainer_or_class, "step", (lambda self, *a: step(self, *a)) if is_class else step)


def run_info(run: Path) -> tuple:
    info = rundir.read_run_info(run)
    return info["status"], info["epochs_done"], info["iteration_in_epoch"], info["iterations_done"]


def train_args(data_dir, run, *extra) -> list[str]:
    return ["train", "--preset", "smoke", "--data", str(data_dir), "--device", "cpu", "--epochs", "3",
            "--run-dir", str(run), "--no-progress", *extra]


# ---------------------------------------------------------------- 1: every interruption is resumable
@pytest.mark.slow
def test_ctrl_c_in_the_first_epoch_saves_that_iteration_and_resume_is_bitwise(smoke_run, data_dir, tmp_path,
                                                                            monkeypatch, capsys):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        stop_at(Trainer, patch, call=2, how="sigint")
        assert cli_main(train_args(data_dir, run)) == 130
    err = capsys.readouterr().err
    assert "keeps 0 of 3 epochs and 2 of 4 iterations of epoch 1 (run.json agrees)" in err
    assert "continue with --resume" in err and "Traceback" not in err
    assert run_info(run) == ("interrupted", 0, 2, 2)
    ckpt = load_ckpt(run)
    assert (ckpt["epoch"], ckpt["iteration"], ckpt["history"].shape[0]) == (0, 2, 2)
    assert len(rundir.read_history(run)["iteration"]) == 2
    assert not (run / rundir.LOCK_NAME).exists()

    assert cli_main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every, call, kept", [(5, 7, (1, 3)), (2, 10, (2, 2))])
def test_ctrl_c_between_sparse_checkpoints_is_saved_where_it_stopped(smoke_run, smoke_config, tmp_path, monkeypatch,
                                                                     checkpoint_every, call, kept):
    # the paper preset checkpoints every 5 epochs: its first 5 epochs were a dead end
    run = tmp_path / "run"
    trainer = Trainer(smoke_config(checkpoint_every=checkpoint_every), run, progress=False, validator=validator_for)
    stop_at(trainer, monkeypatch, call=call, how="sigint")
    with pytest.raises(TrainingInterrupted, match=f"keeps {kept[0]} of 3 epochs and {kept[1]} of 4 iterations"):
        trainer.fit()
    assert run_info(run) == ("interrupted", *kept, kept[0] * 4 + kept[1])
    resumed = Trainer(None, run, resume=True, progress=False, validator=validator_for)
    assert (resumed.epoch, resumed.iteration) == kept
    resumed.fit()
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.slow
def test_a_crash_before_the_first_checkpoint_restarts_on_resume(smoke_run, smoke_config, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(smoke_config(), run, progress=False, validator=validator_for)
    stop_at(trainer, monkeypatch, call=3, how="crash")
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.fit()
    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"], info["iterations_done"]) == ("failed", 0, 0)
    assert "out of memory" in info["error"]
    assert not (run / "checkpoints" / "last.pt").exists() and not (run / rundir.LOCK_NAME).exists()

    # from iteration 0, the same config
    resumed = Trainer(None, run, resume=True, progress=False, validator=validator_for)
    assert (resumed.epoch, resumed.iteration, resumed.cfg) == (0, 0, smoke_run.cfg)
    resumed.fit()
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.slow
def test_ctrl_c_before_training_began_resumes_from_the_start(smoke_run, data_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    save_strip = rundir.save_strip

    def interrupted(*args):  # Ctrl-C right after config.json was written, while the samples are
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(rundir, "save_strip", interrupted)
        assert cli_main(train_args(data_dir, run)) == 130
    assert capsys.readouterr().err.strip() == (f"interrupted before training began; continue the run in {run} "
                                               f"with --resume")
    assert rundir.is_run_dir(run) and not (run / rundir.LOCK_NAME).exists()
    assert rundir.save_strip is save_strip
    assert cli_main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(smoke_run, smoke_config, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(smoke_config(), run, progress=False, validator=validator_for)
    stop_at(trainer, monkeypatch, call=6, how="at_once")  # in the middle of epoch 2's second step
    with pytest.raises(TrainingInterrupted, match="keeps 1 of 3 epochs \\(run.json agrees\\)"):
        trainer.fit()
    assert run_info(run) == ("interrupted", 1, 0, 4)
    Trainer(None, run, resume=True, progress=False, validator=validator_for).fit()
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.slow
def test_a_training_stopped_between_iterations_is_saved_there(smoke_run, smoke_config, tmp_path):
    # what packing.train_packed does to the other runs when one of them stops
    run = tmp_path / "run"
    steps = Trainer(smoke_config(), run, progress=False, validator=validator_for).iterate()
    for _ in range(5):
        next(steps)
    steps.close()
    assert run_info(run) == ("interrupted", 1, 1, 5)
    Trainer(None, run, resume=True, progress=False, validator=validator_for).fit()
    assert_same_run(run, smoke_run.run_dir)


# ---------------------------------------------------------------- 2: one training per run directory
def write_lock(run: Path, **owner) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / rundir.LOCK_NAME
    path.write_text(json.dumps({"host": socket.gethostname(), "started": "2024-01-01 12:00:00",
                                "command": "python -m colorlib train --preset quick", **owner}))
    return path


@pytest.mark.slow
def test_a_second_training_into_a_run_directory_in_use_is_refused(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "colorlib", *train_args(data_dir, run),
                              "--set", "train_size=2000", "--set", "val_size=0", "--epochs", "50"],
                             cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (run / "run.json").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        for extra in ([], ["--resume"]):
            assert cli_main([*train_args(data_dir, run), *extra]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith(f"error: {run} is in use by another training (process "
                                                           f"{first.pid} on {socket.gethostname()}")
            assert "python -m colorlib train --preset smoke" in err
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
    finally:
        first.kill()
    assert rundir.read_run_info(run)["status"] == "interrupted"
    assert not (run / rundir.LOCK_NAME).exists()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
@pytest.mark.parametrize("owner", ["dead", "reused pid", "unreadable"])
def test_a_stale_lock_is_taken_over(smoke_config, tmp_path, owner):
    run = tmp_path / "run"
    if owner == "dead":
        write_lock(run, pid=dead_pid(), process_start=None)
    elif owner == "reused pid":  # a live process, but not the one that wrote the lock
        write_lock(run, pid=os.getppid(), process_start=1)
    else:
        write_lock(run).write_text("{ half")
        os.utime(run / rundir.LOCK_NAME, (time.time() - 60,) * 2)
    (run / ".history.csv.abc123.tmp").write_text("left by a killed training")
    trainer = Trainer(smoke_config(epochs=1), run, progress=False, validator=validator_for)
    assert json.loads((run / rundir.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (run / ".history.csv.abc123.tmp").exists()
    trainer.fit()
    assert not (run / rundir.LOCK_NAME).exists()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.json", "epochs.csv", "history.csv",
                                                     "run.json", "samples"]


def test_a_lock_from_another_host_is_refused_saying_how_to_clear_it(smoke_config, tmp_path):
    run = tmp_path / "run"
    lock = write_lock(run, pid=12345, host="gpu-node-7")
    with pytest.raises(rundir.RunDirError, match="in use by another training \\(process 12345 on gpu-node-7") as err:
        Trainer(smoke_config(), run, progress=False, validator=validator_for)
    assert f"no longer running on another host, delete {lock}" in str(err.value)
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_NAME]


@pytest.mark.slow
def test_within_one_process_a_run_directory_in_training_is_refused(smoke_config, tmp_path):
    run = tmp_path / "run"
    steps = Trainer(smoke_config(), run, progress=False, validator=validator_for).iterate()
    next(steps)
    with pytest.raises(rundir.RunDirError, match=f"process {os.getpid()} "):
        Trainer(None, run, resume=True, progress=False, validator=validator_for)
    steps.close()
    assert not (run / rundir.LOCK_NAME).exists()
    # a Trainer that does not train (a notebook cell run again) hands the directory over
    idle = Trainer(None, run, resume=True, progress=False, validator=validator_for)
    again = Trainer(None, run, resume=True, progress=False, validator=validator_for)
    assert again.iteration == 1
    again.fit()
    idle.release_lock()
    assert not (run / rundir.LOCK_NAME).exists()


@pytest.mark.parametrize("way_out", ["finished", "ctrl_c", "at_once", "crash", "diverged", "bad data",
                                     "fewer epochs"])
@pytest.mark.slow
def test_the_lock_is_released_on_every_way_out(smoke_config, smoke_run_copy, tmp_path, monkeypatch, way_out):
    run = tmp_path / "fresh"
    if way_out == "bad data":
        with pytest.raises(Exception, match="does not exist"):
            Trainer(smoke_config(data=str(tmp_path / "nothing")), run, progress=False, validator=validator_for)
        assert not run.exists()  # not even the folder the lock was made in
        return
    if way_out == "fewer epochs":
        with pytest.raises(ConfigError):
            Trainer(smoke_config(epochs=2), smoke_run_copy, resume=True, progress=False, validator=validator_for)
        assert not (smoke_run_copy / rundir.LOCK_NAME).exists()
        return
    trainer = Trainer(smoke_config(epochs=1, lr=1e30 if way_out == "diverged" else 1e-3), run, progress=False,
                      validator=validator_for)
    assert (run / rundir.LOCK_NAME).exists()
    expected = {"finished": None, "ctrl_c": TrainingInterrupted, "at_once": TrainingInterrupted,
                "crash": RuntimeError, "diverged": TrainingDiverged}[way_out]
    if way_out in ("ctrl_c", "at_once", "crash"):
        stop_at(trainer, monkeypatch, call=2, how={"ctrl_c": "sigint"}.get(way_out, way_out))
    if expected is None:
        trainer.fit()
    else:
        with pytest.raises(expected):
            trainer.fit()
    assert not (run / rundir.LOCK_NAME).exists()


# ---------------------------------------------------------------- 3: run.json agrees with last.pt
@pytest.mark.slow
@pytest.mark.parametrize("how, kept", [("at_once", (2, 0)), ("sigint", (2, 3))])
def test_run_json_and_evaluate_agree_with_the_checkpoint_after_ctrl_c(smoke_config, tmp_path, monkeypatch,
                                                                      capsys, how, kept):
    from colorlib.lab.metrics import evaluate_run
    run = tmp_path / "run"
    trainer = Trainer(smoke_config(checkpoint_every=2), run, progress=False, validator=validator_for)
    stop_at(trainer, monkeypatch, call=11, how=how)  # epoch 3, iteration 3: epoch 2 is the last checkpoint
    with pytest.raises(TrainingInterrupted) as err:
        trainer.fit()
    ckpt = load_ckpt(run)
    assert (ckpt["epoch"], ckpt["iteration"]) == kept
    assert run_info(run) == ("interrupted", *kept, kept[0] * 4 + kept[1])
    assert f"keeps {kept[0]} of 3 epochs" in str(err.value)
    assert len(rundir.read_history(run)["iteration"]) == kept[0] * 4 + kept[1]
    assert len(rundir.read_epochs(run)["epoch"]) == kept[0]
    report = evaluate_run(run, limit=20, device="cpu", progress=False, log=lambda *a: None)
    assert report["run"]["epochs_done"] == ckpt["epoch"]


# ---------------------------------------------------------------- 4: --resume --epochs below what is done
@pytest.mark.slow
@pytest.mark.parametrize("interrupted", [False, True])
def test_resume_with_fewer_epochs_than_done_is_refused_and_changes_nothing(smoke_run_copy, smoke_config, tmp_path,
                                                                          monkeypatch, capsys, interrupted):
    run, epochs, least = smoke_run_copy, "2", "3"
    if interrupted:  # 1 epoch and 2 iterations done: epochs=1 would drop the updates of those two
        run = tmp_path / "interrupted"
        trainer = Trainer(smoke_config(), run, progress=False, validator=validator_for)
        stop_at(trainer, monkeypatch, call=6, how="sigint")
        with pytest.raises(TrainingInterrupted):
            trainer.fit()
        epochs, least = "1", "2"
    before = files_and_bytes(run)
    capsys.readouterr()
    assert cli_main(["train", "--run-dir", str(run), "--resume", "--epochs", epochs, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot resume {run} with epochs={epochs}" in err
    assert f"Ask for epochs={least} or more; the run was left as it was" in err
    assert files_and_bytes(run) == before


# ---------------------------------------------------------------- 5: damaged history.csv and epochs.csv
def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif how == "cut at a line":
        path.write_bytes(b"".join(data.splitlines(keepends=True)[:-3]))
    elif how == "garbled":
        lines = data.splitlines(keepends=True)
        lines[2] = b"3,1,garbage,not,numbers,x,y\n"
        path.write_bytes(b"".join(lines))
    elif how == "deleted":
        path.unlink()


@pytest.mark.parametrize("name", ["history.csv", "epochs.csv"])
@pytest.mark.parametrize("how", ["truncated", "cut at a line", "garbled", "deleted"])
def test_figures_rebuild_a_damaged_table_from_the_checkpoint(smoke_run_copy, tmp_path, capsys, name, how):
    original = (smoke_run_copy / name).read_bytes()
    damage(smoke_run_copy / name, how)
    code = cli_main(["figures", "--run-dir", str(smoke_run_copy), "--out", str(tmp_path / "figures")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith(f"note: {smoke_run_copy / name} is damaged (")
    assert f"rewritten from {smoke_run_copy / 'checkpoints' / 'last.pt'}" in err
    assert (smoke_run_copy / name).read_bytes() == original
    assert (tmp_path / "figures" / "loss_curves.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["history.csv", "epochs.csv"])
def test_resume_rebuilds_a_damaged_table_and_ends_bitwise(smoke_run, smoke_config, tmp_path, monkeypatch, capsys,
                                                          name):
    run = tmp_path / "run"
    trainer = Trainer(smoke_config(), run, progress=False, validator=validator_for)
    stop_at(trainer, monkeypatch, call=11, how="sigint")  # epochs.csv then has two rows
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    damage(run / name, "garbled")
    capsys.readouterr()
    assert cli_main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"note: {run / name} was damaged (it did not match the checkpoint); rewritten from" in err
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.parametrize("missing", ["checkpoint", "history in an older checkpoint"])
def test_a_table_that_cannot_be_rebuilt_stops_with_one_line(smoke_run_copy, tmp_path, capsys, missing):
    last = smoke_run_copy / "checkpoints" / "last.pt"
    if missing == "checkpoint":
        last.unlink()
    else:
        ckpt = load_ckpt(smoke_run_copy)
        del ckpt["history"]
        torch.save(ckpt, last)
    damage(smoke_run_copy / "history.csv", "garbled")
    before = files_and_bytes(smoke_run_copy)
    code = cli_main(["figures", "--run-dir", str(smoke_run_copy), "--out", str(tmp_path / "figures")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {smoke_run_copy / 'history.csv'} is damaged (line 3 is garbled)")
    assert "Restore the file from a copy or train the run again" in err
    if missing != "checkpoint":  # and training cannot resume over it either
        code = cli_main(["train", "--run-dir", str(smoke_run_copy), "--resume", "--epochs", "4", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "history.csv is damaged (line 3 is garbled)" in err
    assert files_and_bytes(smoke_run_copy) == before
    assert not (tmp_path / "figures").exists()
