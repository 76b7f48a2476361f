"""The command layer, colorlib/cli/: one parser, one exit-code policy (cli.exit_status), and no
command-line code anywhere else in the library."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from colorlib import cli
from colorlib.cli import ERRORS, build_parser, main
from colorlib.paper.config import PRESETS
from conftest import one_line, run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "colorlib"


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


# ---------------------------------------------------------------- 2: bad input
def test_unknown_preset_is_one_error_line_naming_the_presets(tmp_path, capsys):
    code, stdout, stderr = run_cli(capsys, "train", "--preset", "nope", "--run-dir", tmp_path / "run", "--no-progress")
    assert code == cli.EXIT_BAD_INPUT == 2 and stdout == ""
    line = one_line(stderr)
    assert line.startswith("error: unknown preset 'nope'")
    assert all(name in line for name in PRESETS)
    assert not (tmp_path / "run").exists()


def test_colorize_refusal_is_bad_input(tmp_path, capsys):
    Image.new("L", (24, 16), 90).save(tmp_path / "a.png")  # its output, tmp_path/a.png, would overwrite it
    code, stdout, stderr = run_cli(capsys, "colorize", tmp_path / "a.png", "-o", tmp_path, "--no-progress")
    assert code == 2 and stdout == ""
    assert one_line(stderr).startswith(f"error: refusing to write into {tmp_path}: the output")


def test_train_classifier_bad_input_is_2_like_every_command(tmp_path, capsys):
    code, stdout, stderr = run_cli(capsys, "train-classifier", "--epochs", "0", "--out", tmp_path / "c.pt")
    assert code == 2 and stdout == ""
    assert one_line(stderr) == "error: epochs must be at least 1, got 0"
    assert not (tmp_path / "c.pt").exists()


# ---------------------------------------------------------------- 1: partial failure
def test_colorize_with_a_missing_photo_is_a_partial_failure(tmp_path, capsys):
    # colorize's documented statuses: 0 all colorized, 1 some photos failed, 2 nothing was done
    Image.new("L", (24, 16), 90).save(tmp_path / "a.png")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "colorize", tmp_path / "a.png", tmp_path / "nowhere.jpg", "-o", out,
                               "--no-progress")
    assert code == cli.EXIT_PARTIAL == 1
    assert one_line(stderr) == f"FAILED {tmp_path / 'nowhere.jpg'}: no such file or folder"
    assert stdout.strip() == f"colorized 1 of 1 photo(s) into {out}; 1 failed"
    assert os.listdir(out) == ["a.png"]


# ---------------------------------------------------------------- the table, row by row
@pytest.fixture
def pack_raising(monkeypatch):
    """`pack` with data.pack_folder replaced by one that raises the given exception."""
    def install(exc: BaseException):
        def pack_folder(*_):
            raise exc
        monkeypatch.setattr("colorlib.runs.data.pack_folder", pack_folder)
    return install


@pytest.mark.parametrize("module, name, status", ERRORS)
def test_every_error_of_the_policy(tmp_path, capsys, pack_raising, module, name, status):
    pack_raising(getattr(importlib.import_module(module), name)("what went wrong, and what to do"))
    code, stdout, stderr = run_cli(capsys, "pack", "--data", tmp_path, "--out", tmp_path / "p.pt")
    assert code == status and stdout == ""
    assert one_line(stderr) == "error: what went wrong, and what to do"


def test_the_policy_has_one_status_per_error():
    assert {status for *_, status in ERRORS} == {cli.EXIT_PARTIAL, cli.EXIT_BAD_INPUT}
    assert len({(module, name) for module, name, _ in ERRORS}) == len(ERRORS)


# ---------------------------------------------------------------- 130: interrupted
def test_ctrl_c_is_130_with_one_line(tmp_path, capsys, pack_raising):
    pack_raising(KeyboardInterrupt())
    code, stdout, stderr = run_cli(capsys, "pack", "--data", tmp_path, "--out", tmp_path / "p.pt")
    assert code == cli.EXIT_INTERRUPTED == 130 and stdout == ""
    assert one_line(stderr) == "interrupted (Ctrl-C)"


def test_an_interruption_that_says_what_was_kept_is_printed_as_it_is(tmp_path, capsys, pack_raising):
    from colorlib.engine.interrupts import TrainingInterrupted
    pack_raising(TrainingInterrupted("interrupted at epoch 2; continue with --resume"))
    code, _, stderr = run_cli(capsys, "pack", "--data", tmp_path, "--out", tmp_path / "p.pt")
    assert code == 130 and one_line(stderr) == "interrupted at epoch 2; continue with --resume"


def test_any_other_exception_is_a_bug_and_keeps_its_traceback(tmp_path, pack_raising):
    pack_raising(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["pack", "--data", str(tmp_path), "--out", str(tmp_path / "p.pt")])


# ---------------------------------------------------------------- 0: help
def test_every_command_is_documented_and_its_help_exits_0(capsys):
    names = commands()
    assert names == ["train", "figures", "pack", "colorize", "vividness-calibrate", "vividness-frontier",
                     "vividness-study",
                     "evaluate", "compare", "train-classifier", "ship",
                     "baselines", "sweep", "study", "bench"]
    documented = re.findall(r"python -m colorlib ([\w-]+)", cli.__doc__)
    assert set(documented) - {"COMMAND"} == set(names)
    for status in ("0 success", "1 partial failure", "2 bad input", "130 interrupted"):
        assert status in " ".join(cli.__doc__.split())
    for name in [None, *names]:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"] if name else ["--help"])
        assert exit_.value.code == 0, name
        assert "usage: python -m colorlib" in capsys.readouterr().out


def test_a_usage_error_is_argparse_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------- structure
def test_importing_the_command_line_does_not_import_pytorch():
    code = "import sys, colorlib.cli; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert "torch" not in result.stdout, result.stdout


def test_command_line_code_lives_only_in_colorlib_cli():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "cli") in path.parents:
            continue
        text = path.read_text()
        for needle in ("argparse", "register_cli", "add_parser(", "add_argument(", "def cmd_"):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO_ROOT)}: {needle}")
    assert offenders == []
    assert not (PACKAGE / "cli.py").exists()
    assert (PACKAGE / "cli" / "__init__.py").exists()
