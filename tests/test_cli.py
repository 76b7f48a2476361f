"""The command layer, colorlib/cli/: one parser, one exit-code policy (cli.exit_status), one line per
error, and no command-line code anywhere else in the library; start-up (no PyTorch until a command
needs it, Ctrl-C while it loads), a closed output pipe, an ASCII terminal, warnings as errors; the
figures command."""
from __future__ import annotations

import errno
import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from colorlib import cli
from colorlib.cli import ERRORS, build_parser, main
from colorlib.paper.config import PRESETS
from conftest import one_line, run_cli

PACKAGE = Path(__file__).resolve().parent.parent / "colorlib"


def python_m_colorlib(*args, env: dict | None = None, flags=(), **kwargs) -> subprocess.CompletedProcess:
    """`python FLAGS -m colorlib ARGS...` in a fresh interpreter: the real entry point."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent), **(env or {})}
    kwargs = {"capture_output": True, "cwd": PACKAGE.parent, **kwargs}
    return subprocess.run([sys.executable, *flags, "-m", "colorlib", *map(str, args)], text=True, env=env,
                          timeout=300, **kwargs)


def test_unknown_preset_is_one_error_line_naming_the_presets(tmp_path, capsys):
    code, stdout, stderr = run_cli(capsys, "train", "--preset", "nope", "--run-dir", tmp_path / "run", "--no-progress")
    line = one_line(stderr)
    assert code == 2 and stdout == "" and line.startswith("error: unknown preset 'nope'")
    assert all(name in line for name in PRESETS) and not (tmp_path / "run").exists()


class Terminated(KeyboardInterrupt):
    signum = signal.SIGTERM


@pytest.mark.parametrize("exc, status, line", [
    *((getattr(importlib.import_module(m), n)("what went wrong, and what to do"), s,
       "error: what went wrong, and what to do") for m, n, s in ERRORS),
    (KeyboardInterrupt(), 130, "interrupted (Ctrl-C)"),
    (Terminated(), 143, "interrupted (SIGTERM)"),
    (KeyboardInterrupt("interrupted at epoch 2; continue with --resume"), 130,
     "interrupted at epoch 2; continue with --resume"),
    (OSError(errno.ENOSPC, "No space left on device", "/x/p.pt"), 2,
     "error: /x/p.pt: No space left on device (ENOSPC); the disk is full: free some space, or write to another "
     "disk, and run the command again"),
    (OSError(errno.EROFS, "Read-only file system", "/x"), 2,
     "error: /x: Read-only file system (EROFS); the file system is read-only: choose a location you can write to"),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), 1,
     "error: the output pipe was closed before the command finished writing to it; its files are kept"),
    (ZeroDivisionError("a bug"), None, None),  # any other exception is a bug: main re-raises it, traceback kept
])
def test_the_exit_status_policy(exc, status, line):
    assert cli.exit_status(exc) == (None if status is None else (status, line))


def test_every_command_has_help_that_exits_0(capsys):
    names = list(next(a for a in build_parser()._actions if a.dest == "command").choices)
    for status in ("0 success", "1 partial failure", "2 bad input", "130 interrupted", "143"):
        assert status in " ".join(cli.__doc__.split())
    for name in [None, *names]:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"] if name else ["--help"])
        assert exit_.value.code == 0 and "usage: python -m colorlib" in capsys.readouterr().out, name
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_a_real_sigterm_ends_a_command_with_one_line_and_143(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("colorlib.lab.plots.save_figures", lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    code, stdout, stderr = run_cli(capsys, "figures", "--run-dir", tmp_path, "--out", tmp_path / "figures")
    assert (code, one_line(stderr)) == (143, "interrupted (SIGTERM)")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command's handler is gone with it


def test_any_other_exception_is_a_bug_and_keeps_its_traceback(tmp_path, monkeypatch):
    def bug(*_):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("colorlib.lab.plots.save_figures", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):  # main re-raises it: no one-line disguise
        main(["figures", "--run-dir", str(tmp_path), "--out", str(tmp_path / "figures")])


def test_set_help_lists_the_fields_but_not_the_preset():
    train = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    fields = next(a for a in train._actions if a.dest == "set").help.split("fields: ")[1].split(", ")
    assert "lr" in fields and "preset" not in fields  # chosen with --preset


def test_version_names_colorlib_and_pytorch_and_is_quiet_into_a_closed_pipe(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert re.fullmatch(r"colorlib \d+\.\d+\.\d+, torch \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)
    read, write = os.pipe()  # `| head -0`: a pipe whose reader is gone
    os.close(read)
    with open(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        with pytest.raises(SystemExit) as exit_:
            main(["--version"])
        monkeypatch.undo()
    assert exit_.value.code == 0 and capsys.readouterr() == ("", "")


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["evaluate", "--limit", "-5"], "argument --limit: must be at least 1, got -5"),
    (["evaluate", "--limit", "many"], "argument --limit: expected a whole number, got 'many'"),
    (["evaluate", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["bench", "--iters", "0"], "argument --iters: must be at least 1, got 0"),
    (["bench", "--train-size", "-1"], "argument --train-size: must be at least 1, got -1"),
])
def test_counts_must_be_positive(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *(["--run-dir", str(tmp_path / "run")] if argv[0] == "evaluate" else
                       ["--out", str(tmp_path / "bench.json")])])
    assert exit_.value.code == 2 and message in capsys.readouterr().err and os.listdir(tmp_path) == []


def test_the_command_line_imports_no_pytorch_and_lives_only_in_colorlib_cli():
    # the console script runs `from colorlib.cli import main` outside any handler: it must be light
    code = "import sys, colorlib.cli, colorlib.runs.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
    offenders = [f"{path.relative_to(PACKAGE)}: {needle}" for path in sorted(PACKAGE.rglob("*.py"))
                 if (PACKAGE / "cli") not in path.parents
                 for needle in ("argparse", "add_parser(", "add_argument(", "def cmd_") if needle in path.read_text()]
    assert offenders == []


def fake_torch(folder: Path, body: str) -> dict:
    """The environment of a Python whose `import torch` runs `body`."""
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text(body)
    return {"PYTHONPATH": f"{folder}{os.pathsep}{PACKAGE.parent}"}


@pytest.mark.parametrize("command", [["evaluate", "--run-dir", "x"], ["train", "--preset", "smoke"],
                                     ["colorize", "a.jpg", "-o", "out"]])
def test_ctrl_c_while_importing_pytorch(tmp_path, command):
    result = python_m_colorlib(*command, env=fake_torch(tmp_path / "fake", "raise KeyboardInterrupt\n"), cwd=tmp_path)
    assert result.returncode == 130 and one_line(result.stderr) == "interrupted (Ctrl-C)"
    assert os.listdir(tmp_path) == ["fake"]


def test_a_real_sigint_while_importing_pytorch(tmp_path):
    # an import that takes a while, as `import torch` does on a cold start
    env = {**os.environ, **fake_torch(tmp_path / "fake", f"import pathlib, time\n"
                                                         f"pathlib.Path({str(tmp_path / 'importing')!r}).touch()\n"
                                                         f"time.sleep(60)\n")}
    proc = subprocess.Popen([sys.executable, "-m", "colorlib", "evaluate", "--run-dir", "x"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "importing").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and one_line(stderr) == "interrupted (Ctrl-C)"


def test_a_closed_pipe_an_ascii_terminal_and_warnings_as_errors_are_one_line_and_the_work_kept(smoke_run, tmp_path):
    out = tmp_path / "café" / "figures"  # a name an ASCII terminal cannot show: printed escaped, not an error
    read, pipe = os.pipe()  # `| head -0`: the reader is gone
    os.close(read)
    try:
        result = python_m_colorlib("figures", "--run-dir", smoke_run.run_dir, "--out", out, flags=["-W", "error"],
                                   env={"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}, stdout=pipe,
                                   stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(pipe)
    assert result.returncode == 1 and (out / "loss_curves.png").is_file() and one_line(result.stderr) == (
        "error: the output pipe was closed before the command finished writing to it; its files are kept")


@pytest.mark.parametrize("damaged, kept", [
    ("epoch_0002.png", ["across_epochs.png", "loss_curves.png", "provenance.json", "samples_epoch_0001.png",
                        "samples_epoch_0003.png"]),
    ("truth.png", ["loss_curves.png", "provenance.json"])])
def test_figures_name_and_leave_out_a_damaged_sample_exit_1(smoke_run_copy, tmp_path, capsys, damaged, kept):
    sample, out = smoke_run_copy / "samples" / damaged, tmp_path / "figures"
    sample.write_bytes(sample.read_bytes()[:100])
    code, stdout, stderr = run_cli(capsys, "figures", "--run-dir", smoke_run_copy, "--out", out)
    line = one_line(stderr)
    assert code == 1 and line.startswith("warning: sample image ") and f"{damaged} is damaged or unreadable" in line
    assert "epoch 2 is left out" in line or damaged == "truth.png"
    assert sorted(os.listdir(out)) == kept and sorted(stdout.split()) == [str(out / name) for name in kept]


def test_figures_of_epochs_without_samples_write_nothing(smoke_run, tmp_path, capsys):
    out = tmp_path / "figures"
    code, _, stderr = run_cli(capsys, "figures", "--run-dir", smoke_run.run_dir, "--out", out, "--sample-epochs",
                              "1", "9")
    assert code == 2 and one_line(stderr) == "error: no samples for epoch(s) [9]; available: [1, 2, 3]"
    assert not out.exists()


def test_figures_are_written_whole_or_not_at_all(smoke_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "loss_curves.png").write_bytes(b"the previous figure")

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("colorlib.runs.rundir.os.replace", disk_full)
    code, stdout, stderr = run_cli(capsys, "figures", "--run-dir", smoke_run.run_dir, "--out", out)
    assert code == 2 and stdout == ""  # none written: the machine's refusal, one line
    assert one_line(stderr) == (f"error: {out / 'loss_curves.png'}: No space left on device (ENOSPC); the disk "
                                f"is full: free some space, or write to another disk, and run the command again")
    assert os.listdir(out) == ["loss_curves.png"] and (out / "loss_curves.png").read_bytes() == b"the previous figure"
