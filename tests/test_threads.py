"""threads=0: the CPU thread count chosen by measuring what other processes use, recorded in the
run, and kept on resume (it decides the last bits of every step)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from colorlib.engine.trainer import Trainer
from colorlib.runs import device as device_module
from colorlib.runs.device import busy_cores, choose_threads, usable_cores


@pytest.fixture
def two_threads_allowed():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_busy_cores_sees_a_busy_neighbour():
    idle, _ = busy_cores(0.3)
    if idle is not None and idle > usable_cores() - 1:
        pytest.skip(f"other programs keep {idle:.1f} of {usable_cores()} cores busy: no core left to see a spinner on")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy, how = busy_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy is not None and "CPU use" in how
    assert busy >= 0.7 and busy > idle  # one process spinning keeps about one core busy


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores to have one to give away")
def test_one_thread_when_another_process_keeps_a_core_busy(two_threads_allowed):
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        count, reason = choose_threads()
    finally:
        spin.kill()
        spin.wait()
    assert count <= usable_cores() - 1 and "busy with other work" in reason


def test_all_cores_when_nobody_else_uses_them(monkeypatch, two_threads_allowed):
    monkeypatch.setattr(device_module, "busy_cores", lambda: (0.1, "CPU use over 0.3 s"))
    assert choose_threads()[0] == min(usable_cores(), 2)
    monkeypatch.setattr(device_module, "busy_cores", lambda: (None, "no CPU-use reading on this system"))
    assert choose_threads()[0] == min(usable_cores(), 2)  # unknown: PyTorch's default, capped by the cores


def test_the_choice_is_recorded_and_a_resume_keeps_it(smoke_config, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr("colorlib.engine.trainer.choose_threads", lambda: (3, "3 of 4 cores: 1.0 busy (test)"))
    with Trainer(smoke_config(epochs=1), run_dir, progress=False) as trainer:
        assert torch.get_num_threads() == 3
        trainer.fit()
    assert json.loads((run_dir / "run.json").read_text())["threads"]["threads"] == 3

    # today's measurement would say 1: the resumed run still trains with the 3 threads of its start
    monkeypatch.setattr("colorlib.engine.trainer.choose_threads", lambda: (1, "1 of 4 cores: 3.0 busy (test)"))
    with Trainer(smoke_config(epochs=2), run_dir, resume=True, progress=False) as trainer:
        assert torch.get_num_threads() == 3 and "kept from the checkpoint" in trainer.threads["reason"]
    # an explicit count wins over the record
    with Trainer(smoke_config(epochs=2, threads=2), run_dir, resume=True, progress=False) as trainer:
        assert torch.get_num_threads() == 2 and trainer.threads["reason"] == "threads set"
