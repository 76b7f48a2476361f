"""Shared fixtures: the real data (from $COLORLIB_DATA) and one smoke run trained once per session.

Tests that need real images take `data_dir`; it skips them, with the reason, when
COLORLIB_DATA is unset. Everything else runs on synthetic tensors. Training tests reuse
`smoke_run` (3 epochs of the `smoke` preset on the CPU, a few seconds) instead of each
training its own; tests that would modify a run work on `smoke_run_copy`.
"""
from __future__ import annotations

import contextlib
import os
import signal
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from colorlib.runs.config import Config, make_config
from colorlib.lab.classifier import train_classifier
from colorlib.cli import main as cli_main
from colorlib.runs.config import DATA_ENV
from colorlib.engine.trainer import Trainer
from colorlib.lab.validation import validator_for

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_EPOCHS = 3  # one more than the preset, so "early" and "late" and a middle epoch exist


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The CIFAR-10 image folder named by $COLORLIB_DATA (train/<class>/*.jpg, test/<class>/*.jpg)."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"{DATA_ENV} is not set: point it at a CIFAR-10 copy laid out as "
                    f"train/<class>/*.jpg and test/<class>/*.jpg to run the real-data tests")
    path = Path(value)
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        pytest.fail(f"{DATA_ENV}={value!r} has no train/ and test/ folders; fix the variable or unset it")
    return path


def pytest_configure(config):
    # The Ctrl-C tests send real SIGINTs. A shell starts background jobs (`pytest ... &`) with SIGINT
    # ignored, which Python and every subprocess would inherit: give this process Python's own handler
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The test networks are tiny: one thread is as fast as several on an idle machine and many
    # times faster on a busy one, where OpenMP threads wait for each other at every operation.
    torch.set_num_threads(1)
    # torchvision 0.29 deprecates its image codecs (torchvision.io) in favour of TorchCodec: colorlib
    # decodes and encodes with Pillow, the same pixels (tests/test_environment_faults.py), so no
    # warning is filtered here and `python -W error -m colorlib ...` runs


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _smoke_config(data_dir: Path, **overrides) -> Config:
    return make_config("smoke", **{"data": str(data_dir), "device": "cpu", "epochs": SMOKE_EPOCHS, **overrides})


@pytest.fixture(scope="session")
def smoke_config(data_dir):
    """`smoke_config(**overrides)`: the smoke preset on the real data, on the CPU (bitwise repeatable)."""
    return lambda **overrides: _smoke_config(data_dir, **overrides)


@dataclass
class SmokeRun:
    run_dir: Path
    cfg: Config
    iterations_per_epoch: int


@pytest.fixture(scope="session")
def smoke_run(data_dir, tmp_path_factory) -> SmokeRun:
    """One finished smoke run, trained once and shared read-only by many tests."""
    cfg = _smoke_config(data_dir)
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    trainer = Trainer(cfg, run_dir, progress=False, validator=validator_for)
    trainer.fit()
    return SmokeRun(run_dir, cfg, trainer.iterations_per_epoch)


@pytest.fixture
def smoke_run_copy(smoke_run, tmp_path) -> Path:
    """A private copy of the shared smoke run, for tests that damage or extend it."""
    copy = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, copy)
    return copy


@pytest.fixture(scope="session")
def small_folder(data_dir, tmp_path_factory) -> Path:
    """A tiny image folder of real CIFAR-10 JPEGs: 10 per class for train, 2 per class for test.

    100 training images and no `train_size` make exactly two batches of 50 per epoch.
    """
    root = tmp_path_factory.mktemp("small") / "cifar-small"
    for split, per_class in (("train", 10), ("test", 2)):
        for class_dir in sorted(p for p in (data_dir / split).iterdir() if p.is_dir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for jpg in sorted(class_dir.glob("*.jpg"))[:per_class]:
                shutil.copyfile(jpg, target / jpg.name)
    return root


@contextlib.contextmanager
def without_root():
    """Root reads and writes everything regardless of permissions: as root, act as the user
    `nobody` for a while (effective ids only, so root can take them back), so that permission
    tests exercise what a normal user meets."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def random_images(n=4, size=16, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="session")
def tiny_classifier(small_folder, tmp_path_factory):
    """A classifier trained for 2 epochs on the 100-image folder: (its file, what training returned)."""
    out = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    info = train_classifier(str(small_folder), out, epochs=2, widths=(8, 16, 16), device="cpu", log=lambda *_: None)
    return out, info


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`python -m colorlib ARGV...` in this process: (exit status, stdout, stderr)."""
    code = cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(stderr: str) -> str:
    """The one line a command wrote to stderr (and no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]
