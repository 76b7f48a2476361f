"""Nothing lost when the machine misbehaves (issue 19):

1. advice that is safe to follow: a folder with files of a run but no config.json is never
   overwritten, and every suggestion of engine/resume.py's and runs/rundir.py's messages works
   when it is followed;
2. a training refused for bad data leaves nothing behind, so the corrected command runs;
3. SIGTERM and SIGHUP stop a training as Ctrl-C does: saved at the iteration boundary, lock
   released, run.json `interrupted`, exit status 143 / 129 (128 + the signal), packed runs too;
4. one policy for the machine's refusals (a full or read-only disk, a path too long or through a
   file, a permission, a vanished file, a closed pipe, an ASCII terminal): one `error:` line naming
   the path and what to do, exit 2 (1 where work was kept), in every command, no traceback;
5. a resume stays exact: the training images and the precision are recorded, and a change of
   either is named and refused unless accepted (`--accept-change data|precision`);
6. the data path uses no deprecated API (`python -W error -m colorlib ...`), with torchvision's
   pixels;
7. malformed sweep plans and papermill parameters are one line, and no method name escapes --out.
"""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch

from colorlib.cli import main as cli_main
from colorlib.engine.trainer import Trainer
from colorlib.lab.validation import validator_for
from colorlib.runs import rundir
from colorlib.runs.config import ConfigError
from conftest import one_line, run_cli, without_root
from test_reliability_runs import assert_same_run, files_and_bytes, load_ckpt, train_args, write_lock

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINED_FILES = ("history.csv", "epochs.csv", "run.json", "checkpoints/last.pt", "checkpoints/best.pt",
                 "checkpoints/generator.pt", "samples/truth.png", "samples/epoch_0001.png")


def smoke(data, run, *extra) -> list[str]:
    """A one-epoch smoke training on the CPU, fast: what following a "start a new run" advice costs."""
    return ["train", "--preset", "smoke", "--data", str(data), "--device", "cpu", "--epochs", "1",
            "--run-dir", str(run), "--no-progress", *extra]


def python_m_colorlib(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`python ARGS...` in a fresh process (float32 pinned: no precision calibration), output captured."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "COLORLIB_CPU_BF16": "0",
           **(env or {})}
    options = {"capture_output": True, "text": True, "env": env, "cwd": REPO_ROOT, "timeout": 600, **kwargs}
    return subprocess.run([sys.executable, *map(str, args)], **options)


def image_folder(data_dir: Path, root: Path, train_per_class: int, test_per_class: int = 1) -> Path:
    """A small copy of CIFAR-10: `train_per_class` training and `test_per_class` test JPEGs per class."""
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for class_dir in sorted(p for p in (data_dir / split).iterdir() if p.is_dir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for jpg in sorted(class_dir.glob("*.jpg"))[:per_class]:
                shutil.copyfile(jpg, target / jpg.name)
    return root


# ---------------------------------------------------------------- 1: a run is never overwritten
@pytest.mark.slow
def test_a_new_run_into_a_run_without_config_json_is_refused_and_resume_restores_it(smoke_run_copy, data_dir,
                                                                                 tmp_path, capsys):
    run = smoke_run_copy
    config = (run / "config.json").read_bytes()
    (run / "config.json").unlink()
    before = files_and_bytes(run)
    code, stdout, stderr = run_cli(capsys, *train_args(data_dir, run))
    assert code == 2 and stdout == ""
    line = one_line(stderr)
    assert line.startswith(f"error: {run} holds files of a run (run.json, history.csv, epochs.csv, "
                           f"checkpoints/last.pt and ")
    assert "but no config.json: a new run there would overwrite them, so nothing was written" in line
    assert files_and_bytes(run) == before  # before: last.pt, best.pt, generator.pt, history.csv, ... replaced

    # following the advice: --resume restores the configuration from last.pt, and loses nothing
    assert "pass --resume (resume=True): its configuration is restored from checkpoints/last.pt" in line
    code, _, stderr = run_cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 0, stderr
    assert one_line(stderr) == (f"note: {run / 'config.json'} was missing; the run's configuration is restored "
                                f"from {run / 'checkpoints' / 'last.pt'}")
    assert (run / "config.json").read_bytes() == config
    after = files_and_bytes(run)
    assert all(after[Path(name)] == before[Path(name)] for name in TRAINED_FILES if name != "run.json")
    # ... and the other advice: a new run goes into another run directory
    assert "To start a new run, choose another run directory" in line
    assert cli_main(smoke(data_dir, tmp_path / "another")) == 0


@pytest.mark.parametrize("kept", ["history.csv", "samples/truth.png", "checkpoints/generator.pt", "metrics.json"])
def test_files_of_a_run_without_a_checkpoint_are_never_overwritten(smoke_run, data_dir, tmp_path, capsys, kept):
    run = tmp_path / "run"
    (run / kept).parent.mkdir(parents=True)
    shutil.copyfile(smoke_run.run_dir / kept if kept != "metrics.json" else smoke_run.run_dir / "run.json",
                    run / kept)
    before = files_and_bytes(run)
    for resume in ([], ["--resume"]):
        code, _, stderr = run_cli(capsys, *smoke(data_dir, run, *resume))
        assert code == 2, stderr
        line = one_line(stderr)
        assert f"({kept})" in line and "config.json" in line
        assert files_and_bytes(run) == before
    assert ("neither config.json nor checkpoints/last.pt, so there is nothing to continue from. Start a new run "
            "in another run directory; nothing was changed here") in line
    # following the advice of the new run's refusal: move the files away, then the new run starts
    code, _, stderr = run_cli(capsys, *smoke(data_dir, run))
    assert "Choose another run directory, or move those files out of this one first." in stderr
    shutil.move(run / kept, tmp_path / "moved")
    assert cli_main(smoke(data_dir, run)) == 0
    assert rundir.read_run_info(run)["status"] == "finished"


@pytest.mark.slow
def test_resume_into_an_empty_folder_says_to_start_a_new_run_and_that_works(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, stderr = run_cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 2
    assert one_line(stderr) == (f"error: cannot resume: {run} holds no run (no config.json). Start a new run there "
                                f"without --resume.")
    assert not run.exists()
    assert cli_main(smoke(data_dir, run)) == 0


@pytest.mark.slow
def test_the_advice_for_a_finished_run_is_to_resume_it_longer(smoke_run_copy, data_dir, capsys):
    code, _, stderr = run_cli(capsys, *train_args(data_dir, smoke_run_copy))
    assert code == 2
    assert "Pass --resume (resume=True) to continue it (to train it longer: --resume --epochs N)" in one_line(stderr)
    assert cli_main(["train", "--run-dir", str(smoke_run_copy), "--resume", "--epochs", "4", "--no-progress"]) == 0
    assert rundir.read_run_info(smoke_run_copy)["epochs_done"] == 4


def test_a_changed_configuration_is_to_go_into_a_new_run_directory(smoke_run_copy, data_dir, tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "train", "--run-dir", smoke_run_copy, "--resume", "--set", "lr=2e-4")
    assert code == 2
    assert one_line(stderr).endswith("Start a new run directory for a different configuration.")
    assert cli_main(smoke(data_dir, tmp_path / "new", "--set", "lr=2e-4")) == 0


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_missing_or_damaged_checkpoint_says_restore_it_and_that_works(smoke_run_copy, data_dir, tmp_path,
                                                                        capsys, damage):
    last = smoke_run_copy / "checkpoints" / "last.pt"
    shutil.copyfile(last, tmp_path / "last.pt.copy")
    if damage == "deleted":
        last.unlink()
    else:
        last.write_bytes(last.read_bytes()[:1000])
    code, _, stderr = run_cli(capsys, "train", "--run-dir", smoke_run_copy, "--resume", "--epochs", "4",
                              "--no-progress")
    assert code == 2
    line = one_line(stderr)
    assert line.startswith(f"error: cannot resume {smoke_run_copy}: ")
    assert line.endswith(f"Restore {last} from a copy, or train the run again in another run directory; nothing "
                         f"was changed here.")
    shutil.copyfile(tmp_path / "last.pt.copy", last)  # following it: a copy ...
    assert cli_main(["train", "--run-dir", str(smoke_run_copy), "--resume", "--epochs", "4", "--no-progress"]) == 0
    assert cli_main(smoke(data_dir, tmp_path / "again")) == 0  # ... or another run directory


@pytest.mark.parametrize("damage", ['{"preset": "smo', '{"preset": "smoke", "lr": -5}'])
def test_a_damaged_config_json_is_restored_from_last_pt_and_kept_beside(smoke_run_copy, capsys, damage):
    run = smoke_run_copy
    config = (run / "config.json").read_bytes()
    (run / "config.json").write_text(damage)  # not JSON / not a valid configuration
    # a new run there is refused (it holds a run); the advice is --resume, and following it works
    code, _, stderr = run_cli(capsys, "train", "--preset", "smoke", "--run-dir", run, "--no-progress")
    assert code == 2 and "Pass --resume (resume=True) to continue it" in one_line(stderr)
    code, _, stderr = run_cli(capsys, "train", "--run-dir", run, "--resume", "--epochs", "3", "--no-progress")
    assert code == 0, stderr
    assert one_line(stderr) == (f"note: {run / 'config.json'} was damaged; the run's configuration is restored "
                                f"from {run / 'checkpoints' / 'last.pt'} (training keeps the damaged file beside "
                                f"it, as config.json.damaged)")
    assert (run / "config.json.damaged").read_text() == damage  # before: "the run directory is damaged", no way on
    assert json.loads((run / "config.json").read_bytes()) == {**json.loads(config), "epochs": 3}
    assert rundir.read_run_info(run)["epochs_done"] == 3


def test_a_damaged_config_json_without_a_checkpoint_says_start_elsewhere(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{")
    code, _, stderr = run_cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 2
    line = one_line(stderr)
    assert line.startswith(f"error: cannot resume {run}: {run / 'config.json'} is not valid JSON")
    assert line.endswith("no checkpoints/last.pt to restore the configuration from. Start a new run in another run "
                         "directory; nothing was changed here.")
    assert cli_main(smoke(data_dir, tmp_path / "another")) == 0


def test_a_table_that_cannot_be_rebuilt_says_what_works(smoke_run_copy, tmp_path, capsys):
    history = smoke_run_copy / "history.csv"
    original = history.read_bytes()
    (smoke_run_copy / "checkpoints" / "last.pt").unlink()
    history.write_bytes(original[:100])
    code, _, stderr = run_cli(capsys, "figures", "--run-dir", smoke_run_copy, "--out", tmp_path / "figures")
    assert code == 2
    assert one_line(stderr).endswith("Restore the file from a copy or train the run again in another run "
                                     "directory.")
    history.write_bytes(original)  # following it
    assert cli_main(["figures", "--run-dir", str(smoke_run_copy), "--out", str(tmp_path / "figures")]) == 0


@pytest.mark.slow
def test_a_lock_from_another_host_can_be_deleted_as_the_message_says(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    lock = write_lock(run, pid=12345, host="gpu-node-7")
    code, _, stderr = run_cli(capsys, *smoke(data_dir, run))
    assert code == 2 and one_line(stderr).endswith(f"if that training is no longer running on another host, "
                                                   f"delete {lock}.")
    lock.unlink()
    assert cli_main(smoke(data_dir, run)) == 0


# ---------------------------------------------------------------- 2: a refused training leaves nothing
@pytest.mark.slow
def test_a_training_refused_for_its_data_leaves_nothing_and_the_fixed_command_runs(data_dir, tmp_path, capsys):
    data = image_folder(data_dir, tmp_path / "ten", train_per_class=1)  # 10 training images
    run = tmp_path / "run"
    code, _, stderr = run_cli(capsys, *smoke(data, run))  # smoke holds out 50 for validation
    assert code == 2
    assert "val_size=50 leaves no training images out of 10; use a smaller val_size" in one_line(stderr)
    assert not run.exists()
    code, _, stderr = run_cli(capsys, *smoke(data, run, "--set", "val_size=0"))
    assert code == 2
    assert one_line(stderr) == ("error: 10 training images make no batch of 50: use more images (--data, "
                                "train_size) or a smaller batch (--set batch_size=10); nothing was written")
    assert not run.exists()  # before: config.json and run.json, and the next command was refused
    assert cli_main(smoke(data, run, "--set", "val_size=0", "--set", "batch_size=10")) == 0
    assert rundir.read_run_info(run)["status"] == "finished"


def test_a_new_run_that_cannot_write_its_first_files_leaves_nothing(data_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "save_strip", disk_full)  # config.json is written, the samples are not
    code, stdout, stderr = run_cli(capsys, *smoke(data_dir, run))
    assert code == 2 and stdout == ""
    assert one_line(stderr).startswith("error: No space left on device (ENOSPC); the disk is full")
    assert not run.exists()


# ---------------------------------------------------------------- 3: SIGTERM and SIGHUP are Ctrl-C
def send_during_step(monkeypatch, signum: int, call: int) -> None:
    """This process sends itself `signum` in the middle of the `call`-th training step."""
    original, calls = Trainer.step, []

    def step(self, *args):
        calls.append(1)
        if len(calls) == call:
            # never a real SIGTERM to the test process unless the trainer holds it back
            assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.SIG_IGN)
            os.kill(os.getpid(), signum)
        return original(self, *args)

    monkeypatch.setattr(Trainer, "step", step)


@pytest.fixture
def default_stop_signals():
    """SIGTERM and SIGHUP with the operating system's default action, as in a terminal (a test run
    under `nohup` ignores SIGHUP), put back as they were afterwards."""
    previous = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)


@pytest.mark.slow
@pytest.mark.parametrize("signum, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_sigterm_and_sighup_save_at_the_iteration_boundary_like_ctrl_c(smoke_run, data_dir, tmp_path, monkeypatch,
                                                                       capsys, default_stop_signals, signum, status,
                                                                       name):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        send_during_step(patch, signum, call=6)
        code, _, stderr = run_cli(capsys, *train_args(data_dir, run))
    assert code == status
    assert stderr.splitlines() == [
        f"colorlib: {name}: stopping after this iteration to save the run there ({name} again to stop at once)",
        f"interrupted ({name}): {run / 'checkpoints' / 'last.pt'} keeps 1 of 3 epochs and 2 of 4 iterations of "
        f"epoch 2 (run.json agrees); continue with --resume (resume=True)"]
    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"], info["iteration_in_epoch"]) == ("interrupted", 1, 2)
    assert not (run / rundir.LOCK_NAME).exists()
    assert signal.getsignal(signum) is signal.SIG_DFL  # the command put the handler back
    assert cli_main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.slow
def test_sigterm_from_another_process_stops_a_real_training_cleanly(data_dir, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "COLORLIB_CPU_BF16": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "colorlib", *train_args(data_dir, run), "--epochs", "50",
                             "--set", "train_size=2000", "--set", "val_size=0"],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (run / "run.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # training has begun once run.json says so
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == 143
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted (SIGTERM): ")
    assert rundir.read_run_info(run)["status"] == "interrupted"
    assert not (run / rundir.LOCK_NAME).exists()


@pytest.mark.slow
def test_sigterm_stops_a_packed_sweep_saving_every_run(data_dir, tmp_path, monkeypatch, capsys, default_stop_signals):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"preset": "smoke", "methods": {"a": {}, "b": {"lr": 2e-4}},
                                "set": {"epochs": 2, "val_size": 0}}))
    out = tmp_path / "sweep"
    command = ["sweep", plan, "--out", out, "--data", data_dir, "--device", "cpu", "--no-progress"]
    with monkeypatch.context() as patch:
        send_during_step(patch, signal.SIGTERM, call=3)
        code, _, stderr = run_cli(capsys, *command)
    assert code == 143
    assert stderr.strip().splitlines()[-1] == (f"interrupted (SIGTERM): every unfinished run in {out} was saved "
                                               f"where it stopped; run the same command again to continue them")
    for method in ("a", "b"):
        run = out / method / "seed0"
        assert rundir.read_run_info(run)["status"] == "interrupted" and not (run / rundir.LOCK_NAME).exists()
        assert load_ckpt(run)["iteration"] > 0
    code, _, stderr = run_cli(capsys, *command)  # the same command continues them
    assert code == 0, stderr
    assert all(rundir.read_run_info(out / m / "seed0")["status"] == "finished" for m in ("a", "b"))


# ---------------------------------------------------------------- 4: the machine's refusals
def fail_replace(monkeypatch, code: int, when=lambda dst: True) -> None:
    """os.replace, as rundir's atomic writes call it, fails with `code` for the files `when` picks."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if when(str(dst)):
            raise OSError(code, os.strerror(code))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(rundir.os, "replace", replace)


@pytest.mark.slow
def test_a_full_disk_after_an_epoch_keeps_it_exit_1_and_resume_ends_bitwise(smoke_run, data_dir, tmp_path,
                                                                           monkeypatch, capsys):
    run, writes = tmp_path / "run", []

    def second_checkpoint(dst: str) -> bool:
        writes.append(dst)
        return dst.endswith("last.pt") and sum(w.endswith("last.pt") for w in writes) == 2

    with monkeypatch.context() as patch:
        fail_replace(patch, errno.ENOSPC, second_checkpoint)
        code, _, stderr = run_cli(capsys, *train_args(data_dir, run))
    assert code == 1
    last = run / "checkpoints" / "last.pt"
    assert one_line(stderr) == (f"error: {last}: No space left on device (ENOSPC); the disk is full: free some "
                                f"space, or write to another disk, and run the command again. {last} keeps 1 of 3 "
                                f"epochs: once that is fixed, continue with --resume")
    assert not (run / rundir.LOCK_NAME).exists() and not list(run.rglob("*.tmp"))
    assert rundir.read_run_info(run)["status"] == "failed"
    assert cli_main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert_same_run(run, smoke_run.run_dir)


@pytest.mark.parametrize("code, name, advice", [
    (errno.ENOSPC, "ENOSPC", "the disk is full"), (errno.EFBIG, "EFBIG", "larger than this file system allows"),
    (errno.EROFS, "EROFS", "read-only: choose a location you can write to"),
    (errno.EACCES, "EACCES", "permission denied"), (errno.EDQUOT, "EDQUOT", "quota")])
@pytest.mark.parametrize("command", ["figures", "pack", "train", "sweep"])
def test_every_command_turns_a_refused_write_into_one_line(smoke_run, small_folder, tmp_path, monkeypatch, capsys,
                                                          command, code, name, advice):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"preset": "smoke", "methods": {"a": {}}, "set": {"epochs": 1}}))
    argv = {"figures": ["figures", "--run-dir", smoke_run.run_dir, "--out", tmp_path / "out"],
            "pack": ["pack", "--data", small_folder, "--out", tmp_path / "out" / "pack.pt"],
            "train": smoke(small_folder, tmp_path / "out" / "run"),
            "sweep": ["sweep", plan, "--out", tmp_path / "out", "--data", small_folder, "--device", "cpu",
                      "--no-progress"]}[command]
    fail_replace(monkeypatch, code)
    status, stdout, stderr = run_cli(capsys, *argv)
    assert status == 2, stderr
    line = one_line(stderr)
    assert line.startswith(f"error: {tmp_path / 'out'}") and f"({name}); " in line and advice in line
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # nothing written, nothing half written


def test_a_disk_that_fills_halfway_through_figures_keeps_those_written_exit_1(smoke_run, tmp_path, monkeypatch,
                                                                              capsys):
    out, writes = tmp_path / "out", []

    def third_file(dst: str) -> bool:
        writes.append(dst)
        return len(writes) >= 3

    with monkeypatch.context() as patch:
        fail_replace(patch, errno.ENOSPC, third_file)
        status, _, stderr = run_cli(capsys, "figures", "--run-dir", smoke_run.run_dir, "--out", out)
    assert status == 1  # before: 2, "nothing was written", with two figures written
    kept = sorted(p.name for p in out.iterdir())
    assert len(kept) == 2 and not list(out.rglob("*.tmp"))
    assert one_line(stderr).endswith(f"the disk is full: free some space, or write to another disk, and run the "
                                     f"command again. 2 figure file(s) written to {out} before it are kept; run "
                                     f"the same command again to write them all")
    assert run_cli(capsys, "figures", "--run-dir", smoke_run.run_dir, "--out", out)[0] == 0


def test_a_real_read_only_folder_is_one_line(data_dir, capsys):
    with tempfile.TemporaryDirectory() as tmp:  # world-readable, unlike pytest's tmp_path
        tmp = Path(tmp)
        tmp.chmod(0o755)
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        with without_root():  # root writes anywhere: the test acts as a normal user
            code, _, stderr = run_cli(capsys, *smoke(data_dir, locked / "run"))
        assert code == 2
        assert one_line(stderr) == (f"error: {locked / 'run' / rundir.LOCK_NAME}: Permission denied (EACCES); "
                                    f"permission denied: choose a location you may use, or change its permissions")
        assert os.listdir(locked) == []


def test_a_path_too_long_or_through_a_file_is_one_line(smoke_run, small_folder, tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "pack", "--data", small_folder, "--out", tmp_path / ("x" * 300 + ".pt"))
    assert code == 2
    assert "File name too long (ENAMETOOLONG); the path is longer than the file system allows" in one_line(stderr)
    (tmp_path / "a_file").write_text("x")
    code, _, stderr = run_cli(capsys, "figures", "--run-dir", smoke_run.run_dir, "--out", tmp_path / "a_file" / "figs")
    assert code == 2
    assert one_line(stderr).startswith(f"error: {tmp_path / 'a_file'}")
    assert "(ENOTDIR); a part of the path is a file, not a folder" in stderr


def test_a_file_vanishing_while_pack_reads_the_folder_is_one_line(small_folder, tmp_path, monkeypatch, capsys):
    from colorlib.runs import data
    folder = tmp_path / "data"
    shutil.copytree(small_folder, folder)
    listed = data._folder_files
    gone = []

    def then_one_vanishes(path, split):
        found = listed(path, split)
        gone.append(found[0][3])
        found[0][3].unlink()
        return found

    monkeypatch.setattr(data, "_folder_files", then_one_vanishes)
    code, _, stderr = run_cli(capsys, "pack", "--data", folder, "--out", tmp_path / "pack.pt")
    assert code == 2
    assert one_line(stderr) == (f"error: {str(gone[0])!r} disappeared while the data were being read (it was "
                                f"listed a moment before): is something changing the folder? Run again once it "
                                f"is complete.")
    assert not (tmp_path / "pack.pt").exists()


def closed_pipe() -> int:
    """A pipe's write end whose reader is gone: every write to it fails with EPIPE (`... | head`)."""
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.slow
def test_output_into_a_closed_pipe_is_one_line_and_the_work_is_kept(smoke_run, small_folder, tmp_path):
    pipe = closed_pipe()
    try:
        proc = python_m_colorlib("-m", "colorlib", "figures", "--run-dir", smoke_run.run_dir, "--out",
                                 tmp_path / "figures", stdout=pipe, stderr=subprocess.PIPE, capture_output=False)
        run = tmp_path / "run"
        trained = python_m_colorlib("-m", "colorlib", *smoke(small_folder, run, "--epochs", "2"), stdout=pipe,
                                    stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(pipe)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == ("error: the output pipe was closed before the command finished writing to it "
                                   "(a reader such as `| head` stopped early); what the command wrote to files is kept")
    assert (tmp_path / "figures" / "loss_curves.png").exists()
    # training prints a line after each epoch, once that epoch is saved
    assert trained.returncode == 1, trained.stderr
    assert "Traceback" not in trained.stderr and trained.stderr.count("\n") == 1
    assert trained.stderr.strip().endswith(f"{run / 'checkpoints' / 'last.pt'} keeps 1 of 2 epochs: once that is "
                                           f"fixed, continue with --resume")
    assert not (run / rundir.LOCK_NAME).exists()


def test_a_path_an_ascii_terminal_cannot_show_does_not_fail_the_command(small_folder, tmp_path):
    out = tmp_path / "café" / "pack.pt"
    proc = python_m_colorlib("-m", "colorlib", "pack", "--data", small_folder, "--out", out,
                             env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # before: UnicodeEncodeError, traceback
    assert proc.stdout.strip().endswith("caf\\xe9/pack.pt")
    assert out.exists()


def test_an_encoding_error_that_reaches_the_command_line_is_one_line(tmp_path, capsys, monkeypatch):
    def pack_folder(*_):
        "é".encode("ascii")

    monkeypatch.setattr("colorlib.runs.data.pack_folder", pack_folder)
    code, _, stderr = run_cli(capsys, "pack", "--data", tmp_path, "--out", tmp_path / "p.pt")
    assert code == 2
    assert one_line(stderr) == ("error: cannot write 'é' in the ascii encoding of this terminal or file: set "
                                "PYTHONIOENCODING=utf-8 (or a UTF-8 locale, e.g. LANG=C.UTF-8) and run the command "
                                "again")


# ---------------------------------------------------------------- 5: a resume stays exact
@pytest.mark.slow
def test_removed_images_are_named_on_resume_and_putting_them_back_resumes(data_dir, tmp_path, capsys):
    data = image_folder(data_dir, tmp_path / "data", train_per_class=15)  # 150: 100 train after the 50 held out
    run = tmp_path / "run"
    assert cli_main(smoke(data, run, "--set", "train_size=100")) == 0
    info, ckpt = rundir.read_run_info(run), load_ckpt(run)
    assert info["train_data"] == ckpt["train_data"] and info["train_data"]["images"] == 100
    assert info["train_data"]["available"] == 150 and len(info["train_data"]["sha256"]) == 64
    assert info["precision"] == ckpt["precision"] and info["precision"]["precision"] in ("bfloat16", "float32")
    removed = sorted((data / "train" / "cat").glob("*.jpg"))[:10]
    for path in removed:
        shutil.move(path, tmp_path / path.name)
    before = files_and_bytes(run)
    resume = ["train", "--run-dir", run, "--resume", "--epochs", "2", "--no-progress"]
    code, _, stderr = run_cli(capsys, *resume)
    assert code == 2
    line = one_line(stderr)  # before: "checkpoint ... is damaged: its history does not cover epoch 1"
    assert line.startswith(f"error: cannot resume {run}: its training images changed: its training split holds "
                           f"140 images where it held 150 (images were removed). The run was trained on 100 "
                           f"images of 150 (sha256 {info['train_data']['sha256'][:12]})")
    assert "Point --data at the images it was trained on, or pass --accept-change data" in line
    code, _, stderr = run_cli(capsys, *resume, "--accept-change", "data")  # 90 images: one batch an epoch, not 2
    assert code == 2 and "an epoch would have 1 iterations where the checkpoint's had 2" in one_line(stderr)
    assert files_and_bytes(run) == before
    for path in removed:  # following the advice: the images it was trained on
        shutil.move(tmp_path / path.name, path)
    assert cli_main([str(a) for a in resume]) == 0
    assert rundir.read_run_info(run)["epochs_done"] == 2


@pytest.mark.slow
def test_added_images_are_refused_unless_accepted_and_then_recorded(data_dir, tmp_path, capsys):
    data = image_folder(data_dir, tmp_path / "data", train_per_class=15)
    run = tmp_path / "run"
    assert cli_main(smoke(data, run, "--set", "train_size=100")) == 0
    extra = sorted((data_dir / "train" / "dog").glob("*.jpg"))[100:110]
    for path in extra:
        shutil.copyfile(path, data / "train" / "dog" / path.name)
    resume = ["train", "--run-dir", run, "--resume", "--epochs", "2", "--no-progress"]
    code, _, stderr = run_cli(capsys, *resume)
    assert code == 2  # before: resumed silently on another 100 of the 160
    assert "holds 160 images where it held 150 (images were added)" in one_line(stderr)
    assert cli_main([str(a) for a in resume] + ["--accept-change", "data"]) == 0
    info = rundir.read_run_info(run)
    assert info["epochs_done"] == 2 and info["train_data"]["available"] == 160
    assert len(info["accepted_changes"]) == 1
    assert info["accepted_changes"][0].startswith("epoch 1, iteration 0: training images changed from 100 images "
                                                  "of 150")
    assert load_ckpt(run)["accepted_changes"] == info["accepted_changes"]


@pytest.mark.slow
@pytest.mark.parametrize("began, follow", [("0", ["--set", "amp=false"]), ("0", ["--accept-change", "precision"]),
                                           ("1", [])])
def test_a_changed_precision_is_refused_and_each_way_out_works(data_dir, tmp_path, monkeypatch, capsys, began,
                                                              follow):
    run = tmp_path / "run"
    monkeypatch.setenv("COLORLIB_CPU_BF16", began)
    assert cli_main(smoke(data_dir, run)) == 0
    was = "float32" if began == "0" else "bfloat16"
    recorded = rundir.read_run_info(run)["precision"]
    assert {k: recorded[k] for k in ("precision", "reason")} == {"precision": was,
                                                                 "reason": f"pinned by $COLORLIB_CPU_BF16={began}"}
    assert recorded["matmul_convs"] == []  # the smoke networks have no layer the matmul form pays for
    other = "1" if began == "0" else "0"
    monkeypatch.setenv("COLORLIB_CPU_BF16", other)
    resume = ["train", "--run-dir", run, "--resume", "--epochs", "2", "--no-progress"]
    before = files_and_bytes(run)
    code, _, stderr = run_cli(capsys, *resume)
    assert code == 2 and files_and_bytes(run) == before
    now = "bfloat16" if began == "0" else "float32"
    keep = "--set amp=false" if began == "0" else "--set amp=true and $COLORLIB_CPU_BF16=1"
    assert one_line(stderr) == (
        f"error: cannot resume {run} exactly: it was trained in {was} (pinned by $COLORLIB_CPU_BF16={began}) and "
        f"would continue in {now} (pinned by $COLORLIB_CPU_BF16={other}). Resume with {keep} to keep {was}, or "
        f"pass --accept-change precision (accept_changes=('precision',)) to continue in {now}; nothing was "
        f"changed here.")
    if began == "1":  # following "$COLORLIB_CPU_BF16=1"
        monkeypatch.setenv("COLORLIB_CPU_BF16", "1")
    assert cli_main([str(a) for a in resume] + follow) == 0
    info = rundir.read_run_info(run)
    assert info["epochs_done"] == 2
    assert ("accepted_changes" in info) == ("--accept-change" in follow)
    if "--accept-change" in follow:
        assert info["precision"]["precision"] == "bfloat16"
        assert "precision changed from float32 to bfloat16" in info["accepted_changes"][0]


@pytest.mark.slow
@pytest.mark.parametrize("began", ["0", "1"])
def test_an_unpinned_resume_keeps_the_recorded_precision(data_dir, tmp_path, monkeypatch, capsys, began):
    """Unpinned, bf16 or float32 is a speed choice a busy CPU's calibration can tip either way:
    the resume keeps what the run was trained in (before: refused whenever the calibration differed)."""
    from colorlib.engine import precision
    if began == "1" and not precision.cpu_has_bf16_units():
        pytest.skip("this CPU has no bf16 units")
    run = tmp_path / "run"
    monkeypatch.setenv("COLORLIB_CPU_BF16", began)
    assert cli_main(smoke(data_dir, run)) == 0
    monkeypatch.delenv("COLORLIB_CPU_BF16")
    monkeypatch.setattr(precision, "_cpu_bf16", (began == "0", "calibrated the other way (test)"))
    assert cli_main(["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    info = rundir.read_run_info(run)
    assert info["precision"]["precision"] == ("float32" if began == "0" else "bfloat16")
    assert info["precision"]["reason"] == f"kept from the checkpoint: pinned by $COLORLIB_CPU_BF16={began}"
    assert "accepted_changes" not in info and info["epochs_done"] == 2


@pytest.mark.parametrize("amp", ["true", "false"])
def test_an_invalid_cpu_bf16_pin_is_one_line_never_ignored(data_dir, tmp_path, monkeypatch, capsys, amp):
    monkeypatch.setenv("COLORLIB_CPU_BF16", "maybe")
    code, _, stderr = run_cli(capsys, *smoke(data_dir, tmp_path / "run", "--set", f"amp={amp}"))
    assert code == 2
    assert one_line(stderr) == ("error: $COLORLIB_CPU_BF16='maybe' is not valid: use 1 (bf16 autocast on the CPU) "
                                "or 0 (float32), or unset it to let colorlib decide")
    assert not (tmp_path / "run").exists()


def test_accept_change_is_only_for_resume(data_dir, tmp_path, capsys):
    code, _, stderr = run_cli(capsys, *smoke(data_dir, tmp_path / "run", "--accept-change", "data"))
    assert code == 2 and one_line(stderr) == "error: --accept-change is for --resume: a new run has nothing to change"
    with pytest.raises(ConfigError, match="unknown change"):
        Trainer(None, tmp_path / "run", resume=True, accept_changes=("colour",), validator=validator_for)


@pytest.mark.parametrize("command", ["study", "baselines"])
def test_the_many_run_commands_take_accept_change_as_the_advice_says(tmp_path, monkeypatch, capsys, command):
    """A run of a study or baselines folder whose images changed is refused with "pass --accept-change
    data": those commands take it too, and hand it to every run they continue."""
    passed = {}

    def stop(*args, accept_changes=(), **kwargs):
        passed["accept_changes"] = accept_changes
        raise ConfigError("stopped here (test)")

    if command == "study":
        import colorlib.lab.packing as packing
        import colorlib.lab.study as study
        monkeypatch.setattr(study, "measure_sequential", lambda *a, **k: {"steady_images_per_s": 1.0})
        monkeypatch.setattr(packing, "make_trainers", stop)
        argv = ["study", "--preset", "smoke", "--methods", "paper", "--out", tmp_path / "out", "--figures",
                tmp_path / "figures", "--device", "cpu"]
    else:
        monkeypatch.setattr("colorlib.engine.trainer.train", stop)
        argv = ["baselines", "--preset", "smoke", "--methods", "paper", "--out", tmp_path / "out", "--device", "cpu"]
    code, _, stderr = run_cli(capsys, *argv, "--accept-change", "data")
    assert code == 2 and one_line(stderr) == "error: stopped here (test)"
    assert tuple(passed["accept_changes"]) == ("data",)


# ---------------------------------------------------------------- 6: no deprecated API on the data path
@pytest.mark.slow
def test_training_and_figures_run_with_every_warning_an_error(small_folder, tmp_path):
    run = tmp_path / "run"
    proc = python_m_colorlib("-W", "error", "-m", "colorlib", *smoke(small_folder, run, "--set", "val_size=20"))
    assert proc.returncode == 0, proc.stderr  # before: torchvision.io's DeprecationWarning stopped it
    proc = python_m_colorlib("-W", "error", "-m", "colorlib", "figures", "--run-dir", run, "--out", tmp_path / "f")
    assert proc.returncode == 0, proc.stderr
    proc = python_m_colorlib("-W", "error", "-m", "colorlib", "pack", "--data", small_folder, "--out",
                             tmp_path / "p.pt")
    assert proc.returncode == 0, proc.stderr


def test_decoded_pixels_are_torchvisions(data_dir):
    from torchvision.io import ImageReadMode, decode_jpeg

    from colorlib.runs.data import decode_image_bytes, list_images
    files = list_images(data_dir / "test")[::10]  # 1,000 real CIFAR-10 JPEGs
    blobs = [path.read_bytes() for path in files]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = decode_jpeg([torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs],
                             mode=ImageReadMode.RGB)
    assert all(torch.equal(decode_image_bytes(b), t) for b, t in zip(blobs, theirs))


def test_sample_strips_round_trip_exactly(tmp_path):
    from conftest import random_images
    images = random_images(5, 32)
    rundir.save_strip(tmp_path / "strip.png", images)
    assert torch.equal(rundir.load_strip(tmp_path / "strip.png"), images)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(rundir.RunDirError, match="is damaged or unreadable"):
        rundir.load_strip(tmp_path / "bad.png")


# ---------------------------------------------------------------- 7: plans and parameters
@pytest.mark.parametrize("plan, message", [
    ({"methods": {"a": 5}}, "method 'a' must be an object of config overrides (e.g. {\"lr\": 1e-4}) or the name of "
                            "a baselines method, not 5"),
    ({"methods": {"a": {}}, "seeds": 3}, "\"seeds\" must be a list of whole numbers, e.g. [0, 1, 2], not 3"),
    ({"methods": {"a": {}}, "set": "epochs=2"}, "\"set\" must be an object of config overrides"),
    ({"methods": {"a": {}}, "preset": ["smoke"]}, "\"preset\" must be a preset's name"),
    ({"methods": [3]}, "a \"methods\" list must hold baselines method names"),
])
def test_a_malformed_plan_is_one_line(tmp_path, capsys, plan, message):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    code, _, stderr = run_cli(capsys, "sweep", path, "--out", tmp_path / "out", "--no-progress")
    assert code == 2
    assert one_line(stderr).startswith(f"error: plan file {str(path)!r}: {message}")  # before: a TypeError
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../../escape", "..", "a/b", ""])
def test_a_method_name_never_writes_outside_out(tmp_path, capsys, name):
    path = tmp_path / "deep" / "plan.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"preset": "smoke", "methods": {name: {}}, "set": {"epochs": 1}}))
    out = tmp_path / "deep" / "out"
    code, _, stderr = run_cli(capsys, "sweep", path, "--out", out, "--device", "cpu", "--no-progress")
    assert code == 2
    assert f"method name {name!r} must be a plain folder name" in one_line(stderr)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "plan.json"]
    from colorlib.lab.packing import RunSpec, make_trainers
    with pytest.raises(ConfigError, match="plain folder name"):  # the library refuses it too
        make_trainers([RunSpec(name or "..", 0)], "smoke", out)


@pytest.fixture(scope="module")
def pipeline():
    spec = importlib.util.spec_from_file_location("pipeline", REPO_ROOT / "notebooks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, message", [
    (["-p", "overrides", "notadict"], "parameter overrides must be a mapping (pass it as YAML, e.g. -y 'overrides: "
                                      "{lam: 10.0}'), not 'notadict'"),
    (["-y", "overrides: {lamm: 3}"], "parameter overrides: unknown config field(s) lamm; valid fields: "),
    (["-p", "resume", "maybe"], "parameter resume must be True or False, not 'maybe'"),
    (["-p", "no_such", "1"], "no notebook declares a parameter 'no_such'; they declare "),
    (["-y", "[1, 2]"], "-y '[1, 2]' must be a mapping of parameter names to values"),
])
def test_the_pipeline_checks_parameters_before_any_notebook_runs(pipeline, tmp_path, capsys, monkeypatch, argv,
                                                                 message):
    monkeypatch.setattr(pipeline, "execute", lambda *a: pytest.fail("a notebook ran"))
    code = pipeline.main(["--preset", "smoke", "--run-dir", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err).startswith(f"error: {message}")
    assert not (tmp_path / "run").exists()
