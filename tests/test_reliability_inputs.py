"""Bad input, damaged files and Ctrl-C: every command answers with one clear line and the exit
status of the command line's policy (0 done, 1 partly done, 2 bad input and nothing written,
130 interrupted), and never leaves a half-written file behind."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from colorlib.inference import colorize as colorize_module
from colorlib.runs import rundir
from colorlib.cli import main
from colorlib.inference.colorize import ImageReadError, load_model, read_photo, render_shape
from colorlib.runs.config import (FIELD_NAMES, ConfigError, Config, config_from_dict, make_config,
                                  parse_override)
from colorlib.variants import build_generator
from conftest import one_line, run_cli, without_root

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


# ---------------------------------------------------------------- a generator for the tests below
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained smoke-sized generator in the generator.pt format: what colorize needs, at once."""
    cfg = make_config("smoke", device="cpu")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "generator.pt"
    torch.save({"format": rundir.GENERATOR_FORMAT, "config": cfg.to_dict(), "epoch": 0,
                "generator": build_generator(cfg).state_dict()}, path)
    path.chmod(0o644)
    return path


def gray_photo(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.linear_gradient("L").resize(size).save(path)
    return path


def colorize_cli(capsys, *argv) -> tuple[int, str, str]:
    return run_cli(capsys, "colorize", "--no-progress", *argv)


# ---------------------------------------------------------------- 15: checkpoints
@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("generator"), "is incomplete: it has no 'generator'"),
    (lambda c: c.pop("config"), "is incomplete: it has no 'config'"),
    (lambda c: c.update(config="smoke"), "is damaged: its 'config' is a str, not a dict"),
    (lambda c: c.update(generator=[1, 2]), "is damaged: its 'generator' is a list, not a dict"),
    (lambda c: c.update(generator={"stem.weight": "text"}), "its 'generator' holds values that are not tensors"),
    (lambda c: c["config"].update(lr=float("nan")), "has an invalid config (lr=nan is not valid"),
])
def test_checkpoint_with_the_right_tag_but_wrong_contents(checkpoint, tmp_path, capsys, change, message):
    ckpt = torch.load(checkpoint, weights_only=True)
    change(ckpt)
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(rundir.RunDirError, match=re.escape(message)):
        load_model(bad)
    code, _, stderr = colorize_cli(capsys, gray_photo(tmp_path / "a.png"), "-o", tmp_path / "out",
                                   "--checkpoint", bad)
    assert code == 2 and message in one_line(stderr)
    assert not (tmp_path / "out").exists()


def test_training_checkpoint_parts_are_checked_too(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["format"] = rundir.CHECKPOINT_FORMAT  # a last.pt needs D and the optimizers as well
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(rundir.RunDirError, match="is incomplete: it has no 'discriminator'"):
        rundir.load_checkpoint(tmp_path / "last.pt")


# ---------------------------------------------------------------- 10-14: colorize
def test_ctrl_c_during_colorize_reports_progress_and_a_rerun_finishes(checkpoint, tmp_path, capsys, monkeypatch):
    for name in ("a", "b", "c"):
        gray_photo(tmp_path / "in" / f"{name}.png")
    out = tmp_path / "out"
    real, calls = colorize_module.colorize_luma, []

    def interrupted_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(colorize_module, "colorize_luma", interrupted_at_the_second)
    code, stdout, stderr = colorize_cli(capsys, tmp_path / "in", "-o", out, "--checkpoint", checkpoint)
    assert code == 130 and stdout == ""
    line = one_line(stderr)
    assert line.startswith(f"interrupted: colorized 1 of 3 photo(s) into {out} before Ctrl-C")
    assert "run the same command again" in line and "--resume" not in line
    assert os.listdir(out) == ["a.png"]  # no partial file of b

    monkeypatch.setattr(colorize_module, "colorize_luma", real)
    code, stdout, _ = colorize_cli(capsys, tmp_path / "in", "-o", out, "--checkpoint", checkpoint)
    assert code == 0 and "colorized 2 of 3 photo(s)" in stdout and "1 skipped" in stdout


def test_the_same_photo_named_twice_is_colorized_once(checkpoint, tmp_path, capsys):
    photo = gray_photo(tmp_path / "in" / "a.png")
    gray_photo(tmp_path / "in" / "b.png")
    code, stdout, stderr = colorize_cli(capsys, photo, photo, tmp_path / "in", tmp_path / "in" / ".." / "in" / "a.png",
                                        "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0, stderr
    assert "colorized 2 of 2 photo(s)" in stdout and "none failed" in stdout and "FAILED" not in stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png"]


def test_absurd_render_size_is_refused_up_front(checkpoint, tmp_path, capsys):
    photo = gray_photo(tmp_path / "a.png")
    code, _, stderr = colorize_cli(capsys, photo, "-o", tmp_path / "out", "--checkpoint", checkpoint,
                                   "--render-size", "100000")
    assert code == 2
    assert one_line(stderr).startswith("error: render_size=100000 is too large: the generator sees at most 2048")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("render_size", [8, 32, 512, 2048])
def test_working_resolution_is_bounded_for_any_aspect_ratio(render_size):
    for height, width in [(1, 1), (3000, 4000), (1, 30_000), (30_000, 1), (7, 10**6), (4000, 4000)]:
        h, w = render_shape(height, width, render_size, 8)
        assert h % 8 == 0 and w % 8 == 0 and h >= 8 and w >= 8
        assert h * w <= colorize_module.MAX_RENDER_PIXELS and max(h, w) <= colorize_module.MAX_RENDER_SIDE
    assert render_shape(3000, 4000, 32, 16) == (32, 48)  # ordinary photos are not touched


def test_a_long_strip_is_worked_at_reduced_size_with_a_note(checkpoint, tmp_path, capsys):
    photo = tmp_path / "strip.png"
    # 100,000 x 1: worked at its own length (never above its own size), that is over MAX_RENDER_SIDE
    Image.linear_gradient("L").resize((100_000, 1)).save(photo)
    model = load_model(checkpoint)[0]
    seen = []
    hook = model.stem.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    try:
        out = colorize_module.colorize(photo, model)
    finally:
        hook.remove()
    assert out.size == (100_000, 1)
    assert seen[0][2] * seen[0][3] <= colorize_module.MAX_RENDER_PIXELS
    assert max(seen[0][2:]) <= colorize_module.MAX_RENDER_SIDE  # not 8 x 100,000

    code, _, stderr = colorize_cli(capsys, photo, "-o", tmp_path / "out", "--checkpoint", checkpoint,
                                   "--render-size", "32")
    assert code == 0
    note = one_line(stderr)
    assert re.fullmatch(r"note: .*strip\.png \(100000x1\) is worked at \d+x\d+ pixels instead of 100000x8, "
                        r"to keep memory bounded .*", note), note
    with Image.open(tmp_path / "out" / "strip.png") as img:
        assert img.size == (100_000, 1)


def test_unreadable_file_is_reported_as_a_permission_problem(checkpoint, tmp_path, capsys, monkeypatch):
    photo = gray_photo(tmp_path / "in" / "locked.png")
    gray_photo(tmp_path / "in" / "fine.png")
    real_open = Image.open

    def no_permission(fp, *args, **kwargs):
        if Path(str(fp)).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", no_permission)
    with pytest.raises(ImageReadError, match="^permission denied: you may not read this file"):
        read_photo(photo)
    code, stdout, stderr = colorize_cli(capsys, tmp_path / "in", "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1
    assert one_line(stderr) == f"FAILED {photo}: permission denied: you may not read this file; check its " \
                               f"permissions (ls -l)"
    assert "colorized 1 of 2 photo(s)" in stdout and "1 failed" in stdout


def test_unreadable_files_and_folders_really_locked(checkpoint, capsys):
    with tempfile.TemporaryDirectory() as tmp:  # world-readable, unlike pytest's tmp_path
        tmp = Path(tmp)
        tmp.chmod(0o777)
        weights = tmp / "generator.pt"
        shutil.copyfile(checkpoint, weights)
        weights.chmod(0o644)
        photos = tmp / "in"
        for path in (photos / "fine.png", photos / "locked.png", photos / "private" / "hidden.png"):
            gray_photo(path).chmod(0o644)
        for folder in (tmp / "in", tmp / "in" / "private"):
            folder.chmod(0o755)
        (photos / "locked.png").chmod(0o000)
        (photos / "private").chmod(0o000)
        out = tmp / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        try:
            with without_root():
                code, stdout, stderr = colorize_cli(capsys, photos, "-o", out, "--checkpoint", weights)
        finally:
            (photos / "private").chmod(0o755)
        assert code == 1, stderr
        assert f"FAILED {photos / 'private'}: permission denied: this folder cannot be read" in stderr
        assert f"FAILED {photos / 'locked.png'}: permission denied: you may not read this file" in stderr
        assert "damaged" not in stderr
        assert "colorized 1 of 2 photo(s)" in stdout and "2 failed" in stdout
        assert os.listdir(out) == ["fine.png"]


def test_animations_and_multi_page_files_say_only_the_first_frame_is_used(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = [Image.new("L", (24, 16), shade) for shade in (0, 120, 240)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(folder / "pages.tif", save_all=True, append_images=frames[1:2])
    frames[0].save(folder / "still.png")
    assert read_photo(folder / "anim.gif").frames == 3 and read_photo(folder / "still.png").frames == 1
    # (GIF is no photo extension a folder is searched for: named, it is colorized all the same)
    code, stdout, stderr = colorize_cli(capsys, folder / "anim.gif", folder, "-o", tmp_path / "out",
                                        "--checkpoint", checkpoint)
    assert code == 0 and "colorized 3 of 3" in stdout
    notes = stderr.strip().splitlines()
    assert notes == [f"note: {folder / 'anim.gif'} has 3 frames (an animation or a multi-page file); "
                     f"only the first is colorized",
                     f"note: {folder / 'pages.tif'} has 2 frames (an animation or a multi-page file); "
                     f"only the first is colorized"]
    with Image.open(tmp_path / "out" / "anim.png") as img:
        assert getattr(img, "n_frames", 1) == 1 and img.size == (24, 16)
