"""Fault injection: `python -m colorlib train` killed again and again, and resumed each time.

A tiny run (the smoke networks on 100 images, two iterations per epoch, three epochs, CPU, bf16
off so that it is bitwise repeatable) is stopped with SIGKILL or SIGINT, chosen by a seeded
random generator, at random moments: while Python and PyTorch start, in the middle of training,
before the first checkpoint, and while a checkpoint's files are being written. After every kill
the run directory must be consistent: each file whole, last.pt loadable and covering exactly the
history rows it carries, history.csv and run.json never ahead of it or at odds with it, and
after a Ctrl-C all of them agreeing exactly, with no lock or temporary file left behind. Every
run, resumed with `--resume` until it finishes, must end bitwise identical (weights, optimizer
states, history.csv, epochs.csv, samples) to the same run trained without interruption.

    COLORLIB_FAULT_KILLS   kills in all (default 8, split over checkpoint_every 1 and 2);
                           `make soak` runs 50
    COLORLIB_FAULT_SEED    the random generator's seed (default 0)
    COLORLIB_ENV_FAULTS    environment faults (SIGTERM, a full disk, a read-only disk) in the last
                           test (default 6; `make soak` runs 30)
"""
from __future__ import annotations

import collections
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from colorlib.runs import rundir
from colorlib.cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("COLORLIB_FAULT_KILLS", "8"))
SEED = int(os.environ.get("COLORLIB_FAULT_SEED", "0"))
ITERS = 2  # 100 images, batch 50
WRITES = (".last.pt.", ".history.csv.", ".epochs.csv.", ".run.json.")  # temporary names of atomic writes
COMPARED = ("generator", "discriminator", "g_opt", "d_opt", "epoch", "iteration", "history", "epoch_rows",
            "best_fd", "config")


def args(data_dir, run: Path, checkpoint_every: int) -> list[str]:
    return ["train", "--preset", "smoke", "--data", str(data_dir), "--device", "cpu", "--epochs", "3",
            "--set", "train_size=100", "--set", "val_size=0", "--set", "amp=false", "--set", "threads=1",
            "--set", f"checkpoint_every={checkpoint_every}", "--run-dir", str(run), "--no-progress"]


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def temporary_files(run: Path) -> list[str]:
    return sorted(p.name for folder in (run, run / "checkpoints", run / "samples") if folder.is_dir()
                  for p in folder.iterdir() if p.name.endswith(".tmp"))


def rendered(write, *rows_args) -> list[bytes]:
    """The lines rundir writes for these rows (history.csv / epochs.csv)."""
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp, *rows_args)
        return next(Path(tmp).iterdir()).read_bytes().splitlines()


def check_consistent(run: Path, sigint_saved: bool) -> str:
    """Assert the run directory is consistent after a kill; returns 'agrees', 'checkpoint ahead'
    (killed between last.pt and the files that describe it) or 'no checkpoint'."""
    if not rundir.is_run_dir(run):
        return "no run"
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else None
    history = (run / "history.csv").read_bytes().splitlines() if (run / "history.csv").exists() else None
    epochs = (run / "epochs.csv").read_bytes().splitlines() if (run / "epochs.csv").exists() else None
    # each file whole; absent only where run.json counts nothing for it (killed before its first write)
    if history is not None:
        rundir.read_history(run, repair=False)
    else:
        assert info is None or info["history_rows"] == 0, info
    if epochs is not None:
        rundir.read_epochs(run, repair=False)
    else:
        assert info is None or info["epochs_done"] == 0, info
    last = run / "checkpoints" / "last.pt"
    if not last.exists():
        assert info is None or (info["epochs_done"], info["iterations_done"]) == (0, 0), info
        assert history is None or len(history) == 1
        assert not sigint_saved
        return "no checkpoint"
    ckpt = rundir.load_checkpoint(last)
    rows = ckpt["epoch"] * ITERS + ckpt["iteration"]
    assert ckpt["history"].shape == (rows, len(rundir.HISTORY_COLUMNS))
    assert len(ckpt["epoch_rows"]) == ckpt["epoch"]
    expected = rendered(rundir.write_history, ckpt["history"])
    expected_epochs = rendered(lambda d, r: rundir.write_epochs(d, tuple(ckpt["epoch_columns"]), r),
                               ckpt["epoch_rows"])
    # history.csv: never ahead of last.pt nor at odds with it; epochs.csv may run ahead between checkpoints
    history = history if history is not None else expected[:1]
    epochs = epochs if epochs is not None else expected_epochs[:1]
    assert history == expected[:len(history)]
    assert epochs[:len(expected_epochs)] == expected_epochs[:len(epochs)]
    info = info if info is not None else {"history_rows": 0, "iterations_done": 0, "epochs_done": 0,
                                          "iteration_in_epoch": 0}
    assert info["history_rows"] <= rows == len(expected) - 1
    assert info["iterations_done"] == info["history_rows"] <= len(history) - 1
    assert info["epochs_done"] * ITERS + info["iteration_in_epoch"] == info["history_rows"]
    agrees = (history == expected and info["history_rows"] == rows and len(epochs) >= len(expected_epochs)
              and (info["epochs_done"], info["iteration_in_epoch"]) == (ckpt["epoch"], ckpt["iteration"]))
    if sigint_saved:  # Ctrl-C: saved at an iteration boundary, every file says so
        assert agrees and epochs == expected_epochs and info["status"] == "interrupted", info
    return "agrees" if agrees else "checkpoint ahead"


def wait_for(condition, proc, timeout=120.0, poll=0.0005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("the training neither reached the moment nor ended")


def lock_of(run: Path, pid: int) -> bool:
    try:
        return json.loads((run / rundir.LOCK_NAME).read_text()).get("pid") == pid
    except (OSError, ValueError):
        return False


def attempt(cmd, run: Path, plan) -> dict:
    """Run one training process; with a plan (signal, moment, detail), stop it at that moment."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    left_over = set(temporary_files(run))  # by a process killed before: not this one's writes
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "colorlib", *cmd], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = {"plan": plan, "signalled": False, "mid_write": None}
    try:
        if plan is not None:
            sig, moment, detail = plan
            if moment == "startup":
                reached = wait_for(lambda: time.monotonic() - started > detail, proc)
            elif moment in ("training", "before the first checkpoint"):
                reached = wait_for(lambda: lock_of(run, proc.pid), proc)
                if reached:
                    time.sleep(detail)
                    reached = proc.poll() is None
                    if moment == "before the first checkpoint":
                        reached = reached and not (run / "checkpoints" / "last.pt").exists()
            else:  # the n-th write of one of a checkpoint's files (n = skip + 1)
                prefix, skip = detail
                seen = set()

                def writing():
                    hit = [n for n in temporary_files(run) if n.startswith(prefix) and n not in left_over]
                    seen.update(hit)
                    if hit and len(seen) > skip:
                        out["mid_write"] = hit[0]
                        return True
                    return False
                reached = wait_for(writing, proc)
            if reached:
                proc.send_signal(sig)
                out["signalled"] = True
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    out.update(rc=proc.returncode, stderr=stderr, seconds=time.monotonic() - started, pid=proc.pid)
    if out["mid_write"]:  # still there after the kill: the write was cut off before its rename
        out["mid_write"] = out["mid_write"] in temporary_files(run)
    return out


def choose(rng: random.Random, run: Path, index: int):
    sig = rng.choice([signal.SIGKILL, signal.SIGINT])
    if index == 0:  # every variant includes a kill before the first checkpoint and one inside a write
        return sig, "before the first checkpoint", rng.uniform(0.0, 0.3)
    if index == 1:
        return sig, "checkpoint write", (rng.choice(WRITES), rng.randrange(3))
    moment = rng.choice(["startup", "training", "training", "checkpoint write"])
    if moment == "startup":  # 0.05 s: Python's own Ctrl-C handler is in place
        return sig, moment, rng.uniform(0.05, 3.0)
    if moment == "training":
        return sig, moment, rng.uniform(0.0, 1.0)
    return sig, moment, (rng.choice(WRITES), rng.randrange(3))


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_killed_at_random_moments_the_run_ends_bitwise_identical(data_dir, tmp_path, checkpoint_every, capsys):
    kills_wanted = math.ceil(KILLS / 2)
    rng = random.Random(SEED * 1000 + checkpoint_every)
    began = time.monotonic()
    reference = tmp_path / "reference"
    assert cli_main(args(data_dir, reference, checkpoint_every)) == 0  # in this process, never interrupted
    reference_ckpt = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)

    kills, states, runs = [], collections.Counter(), 0
    while len(kills) < kills_wanted:
        run = tmp_path / f"run{runs}"
        runs += 1
        for _ in range(4 * kills_wanted + 10):
            cmd = (["train", "--run-dir", str(run), "--resume", "--no-progress"] if rundir.is_run_dir(run)
                   else args(data_dir, run, checkpoint_every))
            plan = choose(rng, run, len(kills)) if len(kills) < kills_wanted else None
            result = attempt(cmd, run, plan)
            stderr, rc = result["stderr"], result["rc"]
            assert "Traceback" not in stderr, stderr
            if not result["signalled"]:  # it finished before the moment came
                assert rc == 0, stderr
                break
            sig = plan[0]
            if sig == signal.SIGKILL:
                assert rc == -signal.SIGKILL
            else:
                # 0: the signal came as it finished; -SIGINT: in the milliseconds before Python's own
                # Ctrl-C handler is in place or after the interpreter put the default action back at
                # exit (nothing is being written then; the state is checked below all the same)
                assert rc in (130, 0, -signal.SIGINT), stderr
                # no lock or temporary file of its own left; one that a killed process left is cleared
                # when the next training takes the run directory, which this one may not have reached
                lock = run / rundir.LOCK_NAME
                assert not lock_of(run, result["pid"]), stderr
                assert not temporary_files(run) or lock.exists(), (temporary_files(run), stderr)
                if rc == 130:
                    last = stderr.strip().splitlines()[-1]
                    assert last.startswith("interrupted") and ("--resume" in last or last == "interrupted (Ctrl-C)")
            saved = sig == signal.SIGINT and rc == 130 and " keeps " in stderr
            state = check_consistent(run, saved)
            kills.append((signal.Signals(sig).name, plan[1], result["mid_write"], state))
            states[state] += 1
            if rc == 0:
                break
        else:
            raise AssertionError("the run never finished")
        for name in ("history.csv", "epochs.csv"):
            assert (run / name).read_bytes() == (reference / name).read_bytes(), name
        ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        for part in COMPARED:
            assert same(ckpt[part], reference_ckpt[part]), part
        assert same(torch.load(run / "checkpoints" / "generator.pt", weights_only=True)["generator"],
                    torch.load(reference / "checkpoints" / "generator.pt", weights_only=True)["generator"])
        for png in sorted((reference / "samples").iterdir()):
            assert (run / "samples" / png.name).read_bytes() == png.read_bytes(), png.name
        info = rundir.read_run_info(run)
        assert (info["status"], info["epochs_done"], info["iterations_done"]) == ("finished", 3, 3 * ITERS)
        assert not (run / rundir.LOCK_NAME).exists() and not temporary_files(run)

    by_signal = collections.Counter(k[0] for k in kills)
    by_moment = collections.Counter(k[1] for k in kills)
    mid_write = sum(1 for k in kills if k[2])
    summary = (f"checkpoint_every={checkpoint_every}: {len(kills)} kills ({dict(by_signal)}; {dict(by_moment)}; "
               f"{mid_write} cut a write short; after the kill the run {dict(states)}), {runs} runs resumed to "
               f"bitwise identity, {time.monotonic() - began:.0f} s")
    with capsys.disabled():
        print(f"\n{summary}")
    assert by_moment["before the first checkpoint"] >= 1 and by_moment["checkpoint write"] >= 1


# ---------------------------------------------------------------- the machine misbehaving
# `make soak` for the environment: SIGTERM (what kill, docker stop and schedulers send), a small disk
# that fills up, a read-only remount (or, where mounting is not allowed, a permission flip), each at a
# random moment of a training, then the fault removed and the run resumed: it must end bitwise as the
# uninterrupted run, every file whole after every fault, and every failure one line, no traceback.
ENV_FAULTS = int(os.environ.get("COLORLIB_ENV_FAULTS", "6"))  # `make soak` runs 30
# COLORLIB_SOAK_DISK=plain: the folder without a tmpfs even as root (a file-size limit for the full disk)


@pytest.fixture
def small_disk():
    """A 64 MiB tmpfs to fill and remount read-only (as root where mounting works), else a plain
    folder whose permissions are flipped and whose fills are a file-size limit: (folder, "tmpfs" | "plain")."""
    folder = Path(tempfile.mkdtemp(prefix="colorlib-disk-"))
    mounted = os.geteuid() == 0 and os.environ.get("COLORLIB_SOAK_DISK") != "plain" and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield folder, ("tmpfs" if mounted else "plain")
    finally:
        if mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], capture_output=True)
            subprocess.run(["umount", str(folder)], capture_output=True)
        subprocess.run(["chmod", "-R", "u+w", str(folder)], capture_output=True)
        subprocess.run(["rm", "-rf", str(folder)], capture_output=True)


class DiskFault:
    """One fault of `kind` on the disk at `disk`, put in place with `start()` and taken away with `stop()`."""

    def __init__(self, kind: str, disk: Path, mode: str):
        self.kind, self.disk, self.mode = kind, disk, mode
        self.filler = disk / "filler"

    def start(self) -> None:
        if self.kind == "disk full" and self.mode == "tmpfs":
            try:  # every free block, as another program filling the disk would
                with open(self.filler, "wb", buffering=0) as f:
                    while f.write(b"\0" * (1 << 16)):
                        pass
            except OSError:  # ENOSPC: the disk is full
                pass
        elif self.kind == "read-only" and self.mode == "tmpfs":
            subprocess.run(["mount", "-o", "remount,ro", str(self.disk)], check=True)
        elif self.kind == "read-only":
            subprocess.run(["chmod", "-R", "a-w", str(self.disk)], check=True)

    def stop(self) -> None:
        if self.kind == "read-only" and self.mode == "tmpfs":
            subprocess.run(["mount", "-o", "remount,rw", str(self.disk)], check=True)
        elif self.kind == "read-only":
            subprocess.run(["chmod", "-R", "u+w", str(self.disk)], check=True)
        self.filler.unlink(missing_ok=True)


def faulted_attempt(cmd, run: Path, fault: DiskFault, delay: float) -> dict:
    """One training process; `delay` s after it takes the run's lock, the fault starts; it is stopped
    once the process has ended. A plain folder's "disk full" is a file-size limit (EFBIG) from the start."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}

    def limit_file_size():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a small disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))

    fsize = fault.kind == "disk full" and fault.mode == "plain"
    proc = subprocess.Popen([sys.executable, "-m", "colorlib", *cmd], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=limit_file_size if fsize else None)
    started = False
    try:
        if not fsize and wait_for(lambda: lock_of(run, proc.pid), proc):
            time.sleep(delay)
            if proc.poll() is None:
                fault.start()
                started = True
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
        fault.stop()
    return {"rc": proc.returncode, "stderr": stderr, "faulted": started or fsize, "pid": proc.pid}


def finish_run_faulted(data_dir, run: Path, disk: Path, mode: str, rng: random.Random, wanted: int) -> list:
    """Train `run` to its end through up to `wanted` random faults; the faults that stopped it."""
    faults = []
    for _ in range(4 * wanted + 10):
        cmd = (["train", "--run-dir", str(run), "--resume", "--no-progress"] if rundir.is_run_dir(run)
               else args(data_dir, run, 1))
        kind = rng.choice(["SIGTERM", "disk full", "read-only"]) if len(faults) < wanted else None
        if kind == "SIGTERM":
            result = attempt(cmd, run, (signal.SIGTERM, *choose(rng, run, len(faults))[1:]))
            result["faulted"] = result["signalled"]
        elif kind:
            result = faulted_attempt(cmd, run, DiskFault(kind, disk, mode), rng.uniform(0.2, 2.5))
        else:
            result = attempt(cmd, run, None)
        stderr, rc = result["stderr"], result["rc"]
        assert "Traceback" not in stderr, stderr
        # SIGTERM: saved, 143; a refused write: one `error:` line, 1 (work kept) or 2; 0: finished first.
        # -SIGTERM: it came in the milliseconds before Python ran colorlib's first line or while the
        # interpreter shut down after the last (no handler can exist then; nothing is being written)
        assert rc in ((0, 143, -signal.SIGTERM) if kind == "SIGTERM" else (0, 1, 2)), stderr
        if rc in (1, 2):
            last = stderr.strip().splitlines()[-1]
            assert last.startswith("error: ") and any(f"({code})" in last for code in
                                                      ("ENOSPC", "EFBIG", "EROFS", "EACCES")), last
        if rc != 0:
            faults.append((kind, rc, check_consistent(run, kind == "SIGTERM" and rc == 143 and " keeps " in stderr)))
        if rc in (0, -signal.SIGTERM) and rundir.is_run_dir(run) and rundir.read_run_info(run)["status"] == "finished":
            return faults
    raise AssertionError("the run never finished")


@pytest.mark.slow
def test_environment_faults_at_random_moments_end_bitwise_identical(data_dir, tmp_path, small_disk, capsys):
    disk, mode = small_disk
    rng = random.Random(SEED * 1000 + 7)
    began = time.monotonic()
    reference = tmp_path / "reference"
    assert cli_main(args(data_dir, reference, 1)) == 0
    reference_ckpt = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    faults, runs = [], 0
    while len(faults) < ENV_FAULTS:
        run = disk / f"run{runs}"
        runs += 1
        faults += finish_run_faulted(data_dir, run, disk, mode, rng, ENV_FAULTS - len(faults))
        for name in ("history.csv", "epochs.csv"):
            assert (run / name).read_bytes() == (reference / name).read_bytes(), name
        ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        for part in COMPARED:
            assert same(ckpt[part], reference_ckpt[part]), part
        for png in sorted((reference / "samples").iterdir()):
            assert (run / "samples" / png.name).read_bytes() == png.read_bytes(), png.name
        assert not (run / rundir.LOCK_NAME).exists() and not temporary_files(run)
        shutil.rmtree(run)  # the small disk has room for one run at a time
    outcomes = collections.Counter(f"{kind}: exit {rc}" for kind, rc, _ in faults)
    with capsys.disabled():
        print(f"\nenvironment faults on a {mode} disk: {len(faults)} ({dict(outcomes)}) over {runs} runs, nothing "
              f"lost, each run bitwise identical to the uninterrupted one, {time.monotonic() - began:.0f} s")
