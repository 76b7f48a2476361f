"""The command layer, colorlib/cli/: one parser, one exit-code policy (cli.exit_status), one line per
error, and no command-line code anywhere else in the library."""
from __future__ import annotations

import errno
import importlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from colorlib import cli
from colorlib.cli import ERRORS, build_parser, main
from colorlib.paper.config import PRESETS
from conftest import one_line, run_cli

PACKAGE = Path(__file__).resolve().parent.parent / "colorlib"


@pytest.fixture
def pack_raising(monkeypatch):
    """`pack` with data.pack_folder replaced by one that raises the given exception."""
    def install(exc: BaseException):
        def pack_folder(*_):
            raise exc
        monkeypatch.setattr("colorlib.runs.data.pack_folder", pack_folder)
    return install


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
])
def test_the_exit_status_policy(tmp_path, capsys, pack_raising, exc, status, line):
    pack_raising(exc)
    code, stdout, stderr = run_cli(capsys, "pack", "--data", tmp_path, "--out", tmp_path / "p.pt")
    assert (code, stdout, one_line(stderr)) == (status, "", line)


def test_any_other_exception_is_a_bug_and_keeps_its_traceback(tmp_path, pack_raising):
    pack_raising(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["pack", "--data", str(tmp_path), "--out", str(tmp_path / "p.pt")])


def test_every_command_is_documented_and_its_help_exits_0(capsys):
    names = list(next(a for a in build_parser()._actions if a.dest == "command").choices)
    assert set(re.findall(r"python -m colorlib ([\w-]+)", cli.__doc__)) - {"COMMAND"} == set(names)
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
    monkeypatch.setattr("colorlib.runs.data.pack_folder", lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    code, stdout, stderr = run_cli(capsys, "pack", "--data", tmp_path, "--out", tmp_path / "p.pt")
    assert (code, one_line(stderr)) == (143, "interrupted (SIGTERM)")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command's handler is gone with it


def test_the_command_line_imports_no_pytorch_and_lives_only_in_colorlib_cli():
    code = "import sys, colorlib.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
    offenders = [f"{path.relative_to(PACKAGE)}: {needle}" for path in sorted(PACKAGE.rglob("*.py"))
                 if (PACKAGE / "cli") not in path.parents
                 for needle in ("argparse", "add_parser(", "add_argument(", "def cmd_") if needle in path.read_text()]
    assert offenders == []
