"""The trainer: one iteration is the paper's training_iteration, a run writes a complete run
directory, the process-wide settings are put back, divergence stops the run, bf16 by a plain rule."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from colorlib import variants
from colorlib.engine.settings import TORCH_SETTINGS
from colorlib.engine.trainer import LOSS_NAMES, Trainer, TrainingDiverged
from colorlib.inference.checkpoints import load_generator
from colorlib.paper.data import epoch_order, to_model_range
from colorlib.paper.step import training_iteration
from colorlib.runs import device as device_module
from colorlib.runs import rundir
from colorlib.runs.config import ConfigError


def test_train_step_is_the_papers_iteration_bit_for_bit(smoke_config, tmp_path):
    cfg = smoke_config(amp=False, channels_last=False)
    with Trainer(cfg, tmp_path / "run", progress=False) as t:
        G, D = copy.deepcopy(t.G), copy.deepcopy(t.D)
        g_opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        d_opt = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        index = epoch_order(len(t.images), epoch=0, seed=cfg.seed)[:cfg.batch_size]
        gray, rgb = to_model_range(t.images[index])
        by_hand = training_iteration(G, D, g_opt, d_opt, gray, rgb, variants.build_objective(cfg, G), cfg.d_steps)
        assert torch.equal(by_hand, t.train_step(index))
        for a, b in ((G, t.G), (D, t.D)):
            assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
        assert (t.epoch, t.iteration) == (0, 0)  # train_step advances no counter


def test_a_smoke_run_writes_a_complete_run_directory(smoke_run):
    run, cfg = smoke_run.run_dir, smoke_run.cfg
    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"], info["iterations_done"]) == \
        ("finished", cfg.epochs, cfg.epochs * smoke_run.iterations_per_epoch)
    history = rundir.read_history(run)
    assert len(history["iteration"]) == info["history_rows"] and set(LOSS_NAMES) <= set(history)
    assert len(rundir.read_epochs(run)["epoch"]) == cfg.epochs
    assert rundir.sample_epochs(run) == list(range(1, cfg.epochs + 1))
    for name in ("last.pt", "generator.pt", "best.pt"):  # plain weights: weights_only loads them
        assert torch.load(run / "checkpoints" / name, weights_only=True)["config"] == cfg.to_dict()
    assert not (run / rundir.LOCK_NAME).exists()
    G, loaded = load_generator(run)
    assert loaded == cfg and not G.training


def test_the_generator_learns(smoke_run):
    h = rundir.read_history(smoke_run.run_dir)
    n = smoke_run.iterations_per_epoch
    assert h["g_content"][-n:].mean() < h["g_content"][:n].mean()


def test_close_puts_back_the_process_wide_settings(smoke_config, tmp_path):
    before = {name: read() for name, (read, _) in TORCH_SETTINGS.items()}
    with Trainer(smoke_config(threads=1 if torch.get_num_threads() > 1 else 2, epochs=1), tmp_path / "r",
                 progress=False) as t:
        assert torch.get_num_threads() == t.threads["threads"]
        t.fit()
    assert {name: read() for name, (read, _) in TORCH_SETTINGS.items()} == before


def test_a_failed_start_leaves_nothing_behind(smoke_config, small_folder, tmp_path):
    with pytest.raises(ConfigError, match="make no batch"):  # 100 images, 50 of them held out
        Trainer(smoke_config(data=str(small_folder), train_size=None, batch_size=150), tmp_path / "run",
                progress=False)
    assert not (tmp_path / "run").exists()


def test_a_diverging_loss_stops_the_run_and_says_so(smoke_config, tmp_path):
    with Trainer(smoke_config(lr=1e30, log_every=1), tmp_path / "run", progress=False) as t:
        with pytest.raises(TrainingDiverged, match="diverged"):
            t.fit()
    assert rundir.read_run_info(tmp_path / "run")["status"] == "diverged"
    assert not (tmp_path / "run" / rundir.LOCK_NAME).exists()


@pytest.mark.parametrize("flags, device, bf16", [("fpu avx2", "cpu", False), ("fpu avx512_bf16", "cpu", True),
                                                 ("amx_bf16 avx2", "cpu", True), ("avx512_bf16", "meta", False)])
def test_bf16_autocast_only_where_the_hardware_has_it(monkeypatch, flags, device, bf16):
    monkeypatch.setattr(device_module, "_cpuinfo", lambda field: flags if field == "flags" else "X")
    assert device_module.bf16_autocast(torch.device(device))[0] is bf16


def test_amp_false_trains_in_float32_and_records_it(smoke_config, tmp_path):
    with Trainer(smoke_config(amp=False), tmp_path / "run", progress=False) as t:
        assert t.precision == {"precision": "float32", "reason": "amp=false"}
        losses = t.train_step(torch.arange(t.cfg.batch_size))
    assert losses.dtype == torch.float32 and all(math.isfinite(v) for v in losses.tolist())
