"""Bad input, damaged files and Ctrl-C: every command answers with one clear line and the exit
status of the command line's policy (0 done, 1 partly done, 2 bad input and nothing written,
130 interrupted), and never leaves a half-written file behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colorlib.runs import rundir
from colorlib.cli import main
from colorlib.runs.config import (FIELD_NAMES, ConfigError, Config, config_from_dict, make_config,
                                  parse_override)
from conftest import one_line, run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent


def python_m_colorlib(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "colorlib", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO_ROOT, timeout=300)


# ---------------------------------------------------------------- 7: train --set
@pytest.mark.parametrize("override, message", [
    ("preset=paper", "choose it with --preset"),
    ("lr=nan", "lr=nan is not valid: expected a finite number"),
    ("lr=inf", "lr=inf is not valid: expected a finite number"),
    ("lr=-1e-3", "lr must be positive"),
    ("beta1=2", "beta1=2.0 is out of range: use 0 <= beta1 < 1"),
    ("beta2=1", "beta2=1.0 is out of range"),
    ("d_lr=0", "d_lr=0.0 is out of range: use a positive learning rate"),
    ("d_lr=nan", "d_lr=nan is not valid: expected a finite number"),
    ("r1_gamma=-1", "r1_gamma=-1.0 is out of range"),
    ("label_smoothing=1", "label_smoothing=1.0 is out of range"),
    ("ema_decay=1", "ema_decay=1.0 is out of range"),
    ("chroma_temperature=0", "chroma_temperature=0.0 is out of range"),
    ("val_size=-1", "val_size=-1 is out of range"),
    ("lam=nan", "lam=nan is not valid"),
    ("device=meta", "device='meta' is not valid; use auto, cpu, cuda, cuda:N or mps"),
    ("device=gpu", "device='gpu' is not valid"),
    ("device=cuda:x", "device='cuda:x' is not valid"),
])
def test_train_refuses_bad_settings_before_writing_anything(tmp_path, capsys, override, message):
    field = override.split("=")[0]
    if field not in FIELD_NAMES:
        pytest.skip(f"this version of Config has no {field}")
    run_dir = tmp_path / "run"
    code, _, stderr = run_cli(capsys, "train", "--preset", "smoke", "--set", override, "--run-dir", run_dir,
                              "--no-progress")
    assert code == 2
    line = one_line(stderr)
    assert line.startswith("error: ") and message in line
    assert not run_dir.exists()


def test_train_device_option_is_checked_like_set(tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "train", "--preset", "smoke", "--device", "meta", "--run-dir",
                              tmp_path / "run", "--no-progress")
    assert code == 2 and "device='meta' is not valid" in one_line(stderr)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_bad_device_through_the_real_entry_point(tmp_path):
    run_dir = tmp_path / "run"
    result = python_m_colorlib("train", "--preset", "smoke", "--set", "device=meta", "--run-dir", str(run_dir),
                               "--no-progress")
    assert result.returncode == 2
    assert one_line(result.stderr) == ("error: device='meta' is not valid; use auto, cpu, cuda, cuda:N or mps")
    assert not run_dir.exists()


def test_set_help_does_not_offer_the_preset(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    fields = re.search(r"fields: (.*?) \(the preset: --preset\)", help_text).group(1)
    assert "preset" not in fields.split(", ") and "lr" in fields.split(", ")


def test_config_types_are_checked_from_python_and_saved_files():
    with pytest.raises(ConfigError, match=r"lr='0.1' is not valid: expected a finite number"):
        make_config("smoke", lr="0.1")
    with pytest.raises(ConfigError, match="epochs=2.5 is not valid: expected a whole number"):
        make_config("smoke", epochs=2.5)
    with pytest.raises(ConfigError, match="amp='yes' is not valid: expected true or false"):
        config_from_dict({**Config().to_dict(), "amp": "yes"})
    with pytest.raises(ConfigError, match="device=3 is not valid"):
        make_config("smoke", device=3)
    assert make_config("smoke", lam=10).lam == 10  # a whole number is a fine float
    assert make_config("smoke", device="cuda:1").device == "cuda:1"  # no GPU needed to name one


def test_optional_float_fields_are_cast_from_the_command_line():
    if "d_lr" not in FIELD_NAMES:
        pytest.skip("this version of Config has no d_lr")
    assert parse_override("d_lr=1e-4") == ("d_lr", 1e-4)
    assert parse_override("d_lr=none") == ("d_lr", None)
    with pytest.raises(ConfigError, match="d_lr='fast': expected a value like 0.5"):
        parse_override("d_lr=fast")


# ---------------------------------------------------------------- 8: evaluate and bench arguments
@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["evaluate", "--limit", "-5"], "argument --limit: must be at least 1, got -5"),
    (["evaluate", "--limit", "many"], "argument --limit: expected a whole number, got 'many'"),
    (["evaluate", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["bench", "--iters", "0"], "argument --iters: must be at least 1, got 0"),
    (["bench", "--train-size", "-1"], "argument --train-size: must be at least 1, got -1"),
])
def test_counts_must_be_positive(tmp_path, capsys, argv, message):
    if argv[0] == "evaluate":
        argv = [*argv, "--run-dir", str(tmp_path / "run")]
    else:
        argv = [*argv, "--out", str(tmp_path / "bench.json")]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_bench_with_a_missing_data_folder(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, _, stderr = run_cli(capsys, "bench", "--data", tmp_path / "nowhere", "--device", "cpu", "--out", out)
    assert code == 2
    assert re.fullmatch(r"error: data source '.*nowhere' does not exist\. Point --data .*", one_line(stderr))
    assert not out.exists()


def test_bench_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLORLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/ folder with CIFAR-10 here
    code, _, stderr = run_cli(capsys, "bench", "--device", "cpu", "--out", "bench.json")
    assert code == 2
    line = one_line(stderr)
    assert "bench reads CIFAR-10 from 'data' without downloading it" in line and "--data" in line
    assert os.listdir(tmp_path) == []


def test_bench_with_a_folder_of_no_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, stderr = run_cli(capsys, "bench", "--data", tmp_path / "empty", "--device", "cpu",
                              "--out", tmp_path / "bench.json")
    assert code == 2 and "cannot be read as training images" in one_line(stderr)
    assert not (tmp_path / "bench.json").exists()


# ---------------------------------------------------------------- 9: Ctrl-C while starting
def test_command_line_starts_without_pytorch():
    # the console script runs `from colorlib.cli import main` outside any handler: it must be light
    code = "import sys, colorlib, colorlib.cli, colorlib.runs.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.stdout.strip() == "False", result.stderr
    import colorlib
    assert colorlib.__version__ and not hasattr(colorlib, "Config")  # names live in their layers


def _fake_torch(folder: Path, body: str) -> Path:
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text(body)
    return folder


@pytest.mark.parametrize("command", [["evaluate", "--run-dir", "x"], ["train", "--preset", "smoke"],
                                     ["colorize", "a.jpg", "-o", "out"]])
def test_ctrl_c_while_importing_pytorch(tmp_path, command):
    fake = _fake_torch(tmp_path / "fake", "raise KeyboardInterrupt\n")
    result = python_m_colorlib(*command, env={"PYTHONPATH": f"{fake}{os.pathsep}{REPO_ROOT}"}, cwd=tmp_path)
    assert result.returncode == 130
    assert one_line(result.stderr) == "interrupted (Ctrl-C)"
    assert sorted(os.listdir(tmp_path)) == ["fake"]


def test_real_sigint_while_importing_pytorch(tmp_path):
    # an import that takes a while, as `import torch` does on a cold start
    fake = _fake_torch(tmp_path / "fake", "import pathlib, sys, time\n"
                                          f"pathlib.Path({str(tmp_path / 'importing')!r}).touch()\n"
                                          "time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{REPO_ROOT}"}
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
    assert proc.returncode == 130
    assert one_line(stderr) == "interrupted (Ctrl-C)"


# ---------------------------------------------------------------- 6: figures
def fake_run(run_dir: Path, epochs: int = 3) -> Path:
    """A small but complete run directory, written with the run-directory functions themselves."""
    cfg = make_config("smoke", device="cpu", epochs=epochs)
    rundir.write_json(run_dir / "config.json", cfg.to_dict())
    rundir.write_json(run_dir / "run.json", {"status": "finished", "epochs_done": epochs})
    iterations = torch.arange(1, 4 * epochs + 1, dtype=torch.float32)
    rows = torch.stack([iterations, (iterations - 1) // 4 + 1, *torch.rand(5, len(iterations)) + 0.1], dim=1)
    rundir.write_history(run_dir, rows)
    strips = torch.randint(0, 256, (2 + epochs, 4, 3, 32, 32), dtype=torch.uint8)
    rundir.save_strip(run_dir / "samples" / "gray.png", strips[0])
    rundir.save_strip(run_dir / "samples" / "truth.png", strips[1])
    for e in range(1, epochs + 1):
        rundir.save_strip(run_dir / "samples" / f"epoch_{e:04d}.png", strips[1 + e])
    return run_dir


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_figures_name_and_skip_a_damaged_sample(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    truncate(run / "samples" / "epoch_0002.png")
    out = tmp_path / "figures"
    code, stdout, stderr = run_cli(capsys, "figures", "--run-dir", run, "--out", out)
    assert code == 1  # the figures are made, without epoch 2
    line = one_line(stderr)
    assert line.startswith("warning: sample image ") and "epoch_0002.png is damaged or unreadable" in line
    assert "epoch 2 is left out" in line
    assert sorted(os.listdir(out)) == ["across_epochs.png", "loss_curves.png", "provenance.json",
                                       "samples_epoch_0001.png", "samples_epoch_0003.png"]
    assert sorted(stdout.split()) == sorted(str(out / name) for name in os.listdir(out))


def test_figures_with_damaged_ground_truth_keep_the_loss_curves(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    truncate(run / "samples" / "truth.png")
    out = tmp_path / "figures"
    code, _, stderr = run_cli(capsys, "figures", "--run-dir", run, "--out", out)
    assert code == 1
    assert "truth.png is damaged or unreadable" in one_line(stderr)
    assert sorted(os.listdir(out)) == ["loss_curves.png", "provenance.json"]


def test_figures_of_epochs_without_samples_write_nothing(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "figures"
    code, _, stderr = run_cli(capsys, "figures", "--run-dir", run, "--out", out, "--sample-epochs", "1", "9")
    assert code == 2 and one_line(stderr) == "error: no samples for epoch(s) [9]; available: [1, 2, 3]"
    assert not out.exists()


def test_figures_are_written_atomically(tmp_path, capsys, monkeypatch):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "figures"
    out.mkdir()
    (out / "loss_curves.png").write_bytes(b"the previous figure")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("colorlib.runs.rundir.os.replace", disk_full)
    code, stdout, stderr = run_cli(capsys, "figures", "--run-dir", run, "--out", out)
    assert code == 2 and stdout == ""  # the machine's refusal: one line (cli.exit_status), no traceback
    assert one_line(stderr) == (f"error: {out / 'loss_curves.png'}: No space left on device (ENOSPC); the disk "
                                f"is full: free some space, or write to another disk, and run the command again")
    assert os.listdir(out) == ["loss_curves.png"]  # no temporary or partial file either
    assert (out / "loss_curves.png").read_bytes() == b"the previous figure"
