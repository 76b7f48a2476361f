"""A training stopped any way at all ends, once resumed, bitwise as the run that never stopped.

`python -m colorlib train` is stopped with SIGKILL, SIGINT, SIGTERM or SIGHUP at random moments (start-up,
training, checkpoint writes) and resumed until it finishes; the machine refuses writes (a full or
read-only disk) at a random write; each time the run directory must hold whole files, a loadable
last.pt, one error line, and in the end the uninterrupted run's bits (same machine, same kernels).
The run lock: a second training into a run is refused; a killed process's lock is released.

    COLORLIB_FAULT_KILLS  signals in all, over checkpoint_every 1 and 2 (default 6; `make soak` runs 50)
    COLORLIB_ENV_FAULTS   refused writes in all (default 2; `make soak` runs 30)
    COLORLIB_FAULT_SEED   the random generator's seed (default 0)
"""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colorlib.cli import main as cli_main
from colorlib.engine.trainer import Trainer, TrainingInterrupted
from colorlib.runs import rundir
from conftest import one_line

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("COLORLIB_FAULT_KILLS", "6"))
ENV_FAULTS = int(os.environ.get("COLORLIB_ENV_FAULTS", "2"))
SEED = int(os.environ.get("COLORLIB_FAULT_SEED", "0"))
COMPARED = ("generator", "discriminator", "g_opt", "d_opt", "epoch", "iteration", "history", "epoch_rows")


def args(data_dir, run: Path, checkpoint_every: int = 1) -> list[str]:
    return ["train", "--preset", "smoke", "--data", str(data_dir), "--device", "cpu", "--epochs", "3",
            "--set", "train_size=100", "--set", "val_size=0", "--set", "amp=false", "--set", "threads=1",
            "--set", f"checkpoint_every={checkpoint_every}", "--run-dir", str(run), "--no-progress"]


def resume_args(run: Path) -> list[str]:
    return ["train", "--run-dir", str(run), "--resume", "--no-progress"]


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    return a == b or (a != a and b != b)  # NaN scores of a run without validation


def load(run: Path, name="last.pt") -> dict:
    return torch.load(run / "checkpoints" / name, weights_only=True)


def assert_same_run(run: Path, reference: Path) -> None:
    ckpt, want = load(run), load(reference)
    assert all(same(ckpt[k], want[k]) for k in COMPARED), [k for k in COMPARED if not same(ckpt[k], want[k])]
    assert same(load(run, "generator.pt")["generator"], load(reference, "generator.pt")["generator"])
    for name in ("history.csv", "epochs.csv", *(f"samples/{p.name}" for p in (reference / "samples").iterdir())):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    assert rundir.read_run_info(run)["status"] == "finished"
    assert not list(run.rglob(rundir.TEMP_PREFIX + "*")) and not (run / rundir.LOCK_NAME).exists()


def assert_consistent(run: Path, may_lag: bool) -> bool:
    """After any stop: last.pt (if any) loads and run.json describes exactly it (True). A SIGKILL between
    last.pt and run.json leaves run.json describing the save before, until a later start reaches training
    and rewrites it: `may_lag` allows that (False returned). history.csv holds the rows run.json counts."""
    if not (run / "checkpoints" / "last.pt").exists():
        return True
    ckpt, info = load(run), rundir.read_run_info(run)
    described, saved = (info["epochs_done"], info["iteration_in_epoch"]), (ckpt["epoch"], ckpt["iteration"])
    assert described <= saved if may_lag else described == saved, (described, saved)
    assert rundir.history_tensor(run).shape[0] >= info["history_rows"]
    return described == saved


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    assert cli_main(args(data_dir, run)) == 0
    return run


def stop_once(cmd: list[str], run: Path, sig: int, delay: float) -> tuple[int, str]:
    """Start a training process and send it `sig` `delay` seconds after it locked the run."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "colorlib", *cmd], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            lock = run / rundir.LOCK_NAME
            if lock.exists() and lock.read_text().strip() == str(proc.pid):
                time.sleep(delay)
                proc.send_signal(sig)
                break
            time.sleep(0.002)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, stderr


def command(data_dir, run: Path, checkpoint_every: int = 1) -> list[str]:
    return resume_args(run) if rundir.is_run_dir(run) else args(data_dir, run, checkpoint_every)


@pytest.mark.parametrize("checkpoint_every", [1, 2])  # the final files do not depend on it
def test_signals_at_random_moments_then_resume_end_bitwise(data_dir, tmp_path, reference, checkpoint_every):
    rng, stops, runs = random.Random(SEED * 10 + checkpoint_every), 0, 0
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129, signal.SIGKILL: -signal.SIGKILL}
    order = [signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP][checkpoint_every - 1:]  # each, then random
    wanted = (KILLS + checkpoint_every - 1) // 2
    while stops < wanted:  # a run that finishes before its next stop is compared, and a new one begins
        run, runs, rc, lagging = tmp_path / f"run{runs}", runs + 1, None, False
        while rc != 0 and stops < wanted:
            sig = order[stops] if stops < len(order) else rng.choice(list(expected))
            rc, stderr = stop_once(command(data_dir, run, checkpoint_every), run, sig, rng.uniform(0.0, 1.5))
            stops += 1
            # -sig: the signal came as the interpreter exited, its handlers already put back (the run is done)
            assert "Traceback" not in stderr and rc in (0, expected[sig], -sig), stderr
            if rc in (129, 130, 143):
                last = stderr.strip().splitlines()[-1]
                named = {129: "interrupted (SIGHUP)", 143: "interrupted (SIGTERM)"}.get(rc, "interrupted")
                assert last.startswith(named), stderr
                assert not (run / rundir.LOCK_NAME).exists()  # released on the way out
            lagging = not assert_consistent(run, may_lag=lagging or rc == -signal.SIGKILL)
        if rc != 0:
            assert cli_main(command(data_dir, run, checkpoint_every)) == 0
        assert_same_run(run, reference)


def test_refused_writes_keep_the_last_checkpoint_and_resume_ends_bitwise(data_dir, tmp_path, reference,
                                                                         monkeypatch, capsys):
    rng, real_replace, faults, runs = random.Random(SEED + 1), os.replace, 0, 0
    while faults < ENV_FAULTS:
        run, runs, status = tmp_path / f"run{runs}", runs + 1, None
        while status != 0 and faults < ENV_FAULTS:
            code, left = rng.choice([errno.ENOSPC, errno.EROFS]), [rng.randrange(1, 12)]  # the write refused

            def replace(src, dst):
                left[0] -= 1
                if left[0] == 0:
                    raise OSError(code, os.strerror(code), str(src))
                real_replace(src, dst)
            monkeypatch.setattr(os, "replace", replace)
            before = load(run)["epoch"] if (run / "checkpoints" / "last.pt").exists() else 0
            status = cli_main(command(data_dir, run))
            monkeypatch.setattr(os, "replace", real_replace)
            err = capsys.readouterr().err
            if status == 0:  # finished before the fault came
                break
            faults += 1
            assert status in (1, 2) and os.strerror(code) in one_line(err), err
            assert not (run / "checkpoints" / "last.pt").exists() or load(run)["epoch"] >= before  # still whole
            assert_consistent(run, may_lag=False)
            if not rundir.is_run_dir(run) and run.exists():  # refused at its very first file: nothing left
                assert not any(p.is_file() for p in run.rglob("*"))
        if status != 0:
            assert cli_main(command(data_dir, run)) == 0
        capsys.readouterr()
        assert_same_run(run, reference)


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(smoke_config, tmp_path, monkeypatch):
    run, real, calls = tmp_path / "run", Trainer.train_step, [0]

    def step(self, index):  # in the sixth iteration (the second epoch's second): Ctrl-C twice
        calls[0] += 1
        if calls[0] == 6:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, index)
    monkeypatch.setattr(Trainer, "train_step", step)
    with pytest.raises(TrainingInterrupted, match="keeps 1 of 3 epochs; continue with --resume"):
        Trainer(smoke_config(), run, progress=False).fit()
    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"], info["iteration_in_epoch"], load(run)["epoch"]) == \
        ("interrupted", 1, 0, 1)
    assert not (run / rundir.LOCK_NAME).exists()


def test_a_second_training_into_a_locked_run_is_refused(smoke_config, tmp_path, capsys):
    run = tmp_path / "run"
    with Trainer(smoke_config(epochs=1), run, progress=False):
        code = cli_main(["train", "--run-dir", str(run), "--resume", "--no-progress"])
        line = one_line(capsys.readouterr().err)
        assert code == 2 and str(run) in line and "in use by another training" in line
    with Trainer(None, run, resume=True, progress=False) as again:  # released when the first closed
        again.fit()


def test_a_killed_process_releases_its_lock(smoke_config, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys; sys.path.insert(0, {str(REPO_ROOT)!r})
from colorlib.runs.rundir import RunLock
lock = RunLock({str(run)!r}); lock.acquire(); print("locked", flush=True); input()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(rundir.RunDirError, match="in use by another training"):
        Trainer(smoke_config(epochs=1), run, progress=False)
    holder.kill()
    holder.wait()
    with Trainer(smoke_config(epochs=1), run, progress=False) as trainer:  # the OS released the flock
        trainer.fit()
    assert rundir.read_run_info(run)["status"] == "finished"
