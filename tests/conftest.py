"""Shared fixtures: the data, one smoke run trained once per session, and command-line helpers.

`data_dir` is $COLORLIB_DATA where it is set, else the CIFAR-10 subset committed in tests/data/cifar-mini
(30 training and 10 test images per class: enough for the smoke preset), so the fast tests need no
download. Tests that compare numbers measured on the whole of CIFAR-10 take `cifar10_dir`, which skips
without $COLORLIB_DATA. Training tests reuse `smoke_run` (3 smoke epochs on the CPU, seconds).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from colorlib.runs.config import DATA_ENV, Config, make_config

REPO_ROOT = Path(__file__).resolve().parent.parent
MINI_DATA = REPO_ROOT / "tests" / "data" / "cifar-mini"
SMOKE_EPOCHS = 3  # one more than the preset, so "early" and "late" and a middle epoch exist


def pytest_configure(config):
    # the Ctrl-C tests send real SIGINTs; a shell starts background jobs with SIGINT ignored
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(1)  # the test networks are tiny: one thread is fastest, on a busy machine by far


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The whole of CIFAR-10 as an image folder ($COLORLIB_DATA), for tests of measured numbers."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"{DATA_ENV} is not set: point it at a CIFAR-10 copy laid out as train/<class>/*.jpg and "
                    f"test/<class>/*.jpg to run the tests that need the whole data set")
    path = Path(value)
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        pytest.fail(f"{DATA_ENV}={value!r} has no train/ and test/ folders; fix the variable or unset it")
    return path


@pytest.fixture(scope="session")
def data_dir(request) -> Path:
    """Real images: $COLORLIB_DATA where set, else the committed CIFAR-10 subset."""
    return request.getfixturevalue("cifar10_dir") if os.environ.get(DATA_ENV) else MINI_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _smoke_config(data_dir: Path, **overrides) -> Config:
    return make_config("smoke", **{"data": str(data_dir), "device": "cpu", "epochs": SMOKE_EPOCHS, **overrides})


@pytest.fixture(scope="session")
def smoke_config(data_dir):
    """`smoke_config(**overrides)`: the smoke preset on real images, on the CPU (bitwise repeatable)."""
    return lambda **overrides: _smoke_config(data_dir, **overrides)


@dataclass
class SmokeRun:
    run_dir: Path
    cfg: Config
    iterations_per_epoch: int


@pytest.fixture(scope="session")
def smoke_run(data_dir, tmp_path_factory) -> SmokeRun:
    """One finished smoke run, trained once and shared read-only by many tests."""
    from colorlib.engine.trainer import Trainer
    from colorlib.lab.validation import validator_for
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
    """10 training and 2 test JPEGs per class: 100 training images, two batches of 50 an epoch."""
    root = tmp_path_factory.mktemp("small") / "cifar-small"
    for split, per_class in (("train", 10), ("test", 2)):
        for class_dir in sorted(p for p in (data_dir / split).iterdir() if p.is_dir()):
            (root / split / class_dir.name).mkdir(parents=True)
            for jpg in sorted(class_dir.glob("*.jpg"))[:per_class]:
                shutil.copyfile(jpg, root / split / class_dir.name / jpg.name)
    return root


@pytest.fixture(scope="session")
def tiny_classifier(small_folder, tmp_path_factory):
    """A classifier trained for 2 epochs on the 100-image folder: (its file, what training returned)."""
    from colorlib.lab.classifier import train_classifier
    out = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    info = train_classifier(str(small_folder), out, epochs=2, widths=(8, 16, 16), device="cpu", log=lambda *_: None)
    return out, info


@contextlib.contextmanager
def without_root():
    """As root, act as the user `nobody` for a while (effective ids only), so that permission tests
    exercise what a normal user meets."""
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
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`python -m colorlib ARGV...` in this process: (exit status, stdout, stderr)."""
    from colorlib.cli import main
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(stderr: str) -> str:
    """The one line a command wrote to stderr (and no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]
