"""torchrun on CPU (gloo): two processes must do what one process does on the same global batch."""
import os
import subprocess
import sys

import pytest
import torch

from colorlib.engine.trainer import train
from colorlib.runs.config import make_config
from colorlib.runs.rundir import history_tensor

pytestmark = pytest.mark.slow  # torchrun subprocesses

# instance norm: PyTorch's SyncBatchNorm has no CPU kernel, so only batch-statistics-free
# networks make the 2-process CPU step identical to the 1-process step (see training.py);
# float32 (amp=0), so that the comparison measures DDP's arithmetic, not bf16 rounding
NETS = ["--set", "norm=instance", "--set", "d_norm=instance", "--set", "g_width=8", "--set", "g_depth=3",
        "--set", "d_width=8", "--set", "d_depth=2", "--set", "n_samples=4", "--set", "amp=0"]


def torchrun(run_dir, *args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "colorlib", "train", "--preset", "smoke", "--run-dir", str(run_dir), "--no-progress",
           "--device", "cpu", *NETS, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def single(run_dir, **overrides):
    cfg = make_config("smoke", device="cpu", norm="instance", d_norm="instance", g_width=8, g_depth=3,
                      d_width=8, d_depth=2, n_samples=4, amp=False, **overrides)
    return train(cfg, run_dir, progress=False)


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def assert_close_states(a, b, rel):
    """Every weight tensor equal within `rel` relative L2 distance (0: bitwise).

    Elementwise tolerances would be fragile here: summing a gradient over 50 images or over two
    halves of 25 rounds differently, and Adam's first step is nearly sign(gradient) * lr, so a
    parameter whose gradient is ~0 can move by 2 * lr either way."""
    for net in ("generator", "discriminator"):
        for name, tensor in a[net].items():
            x, y = tensor.double(), b[net][name].double()
            if rel == 0:
                assert torch.equal(x, y), f"{net}.{name} differs"
            else:
                assert (x - y).norm() <= rel * max(y.norm(), 1e-12), f"{net}.{name}: {(x - y).norm() / y.norm():.2e}"


def test_two_process_step_matches_single_process(data_dir, tmp_path):
    # train_size=50: exactly one iteration, one global batch of 50 split 25 / 25
    torchrun(tmp_path / "ddp", "--set", "train_size=50", "--epochs", "1")
    single(tmp_path / "one", train_size=50, epochs=1)
    assert_close_states(weights(tmp_path / "ddp"), weights(tmp_path / "one"), rel=1e-3)
    torch.testing.assert_close(history_tensor(tmp_path / "ddp"), history_tensor(tmp_path / "one"),
                               atol=1e-4, rtol=1e-4)


def test_resume_under_torchrun(data_dir, tmp_path):
    torchrun(tmp_path / "straight", "--set", "train_size=100", "--epochs", "2")
    torchrun(tmp_path / "resumed", "--set", "train_size=100", "--epochs", "1")
    subprocess_resume = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                         "-m", "colorlib", "train", "--run-dir", str(tmp_path / "resumed"), "--resume",
                         "--epochs", "2", "--no-progress"]
    result = subprocess.run(subprocess_resume, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a["epoch"] == b["epoch"] == 2
    assert_close_states(a, b, rel=0)
    assert torch.equal(history_tensor(tmp_path / "straight"), history_tensor(tmp_path / "resumed"))
