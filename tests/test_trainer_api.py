"""The Trainer's public surface: one training iteration (`train_step`), the resume rules every
way into a run directory follows (`run_config`), and the process-wide torch state it leaves."""
from __future__ import annotations

import pytest
import torch

from colorlib.runs import rundir
from colorlib.runs.config import ConfigError, make_config
from colorlib.runs.data import DataError
from colorlib.paper.data import to_model_range
from colorlib.engine.trainer import LOSS_NAMES, Trainer
from colorlib.runs.config import RESUMABLE_FIELDS
from colorlib.engine.settings import TORCH_SETTINGS
from colorlib.engine.resume import run_config


def torch_settings() -> dict:
    return {name: read() for name, (read, _) in TORCH_SETTINGS.items()}


def params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


# ---------------------------------------------------------------- train_step
@pytest.mark.slow
def test_train_step_is_one_iteration_on_the_indexed_images(smoke_config, tmp_path):
    cfg = smoke_config(epochs=1, d_steps=3)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    events: list[str] = []
    trainer.d_opt.register_step_post_hook(lambda *_: events.append("D"))
    trainer.g_opt.register_step_post_hook(lambda *_: events.append("G"))
    g_before, d_before = params(trainer.G), params(trainer.D)
    index = torch.arange(cfg.batch_size, 2 * cfg.batch_size)

    losses = trainer.train_step(index)

    assert events == ["D"] * cfg.d_steps + ["G"]  # d_steps discriminator updates, then one generator update
    assert losses.shape == (len(LOSS_NAMES),) and torch.isfinite(losses).all()
    assert not all(torch.equal(a, b) for a, b in zip(g_before, trainer.G.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d_before, trainer.D.parameters()))
    assert (trainer.epoch, trainer.iteration) == (0, 0)  # the run's progress is fit()'s to keep
    trainer.close()

    # the same iteration as `step` on the batch those indices pick
    other = Trainer(cfg, tmp_path / "other", progress=False)
    gray, rgb = to_model_range(other.images[index])
    same = other.step(gray.contiguous(memory_format=other.memory_format),
                      rgb.contiguous(memory_format=other.memory_format))
    other.close()
    assert torch.equal(losses, same)
    assert all(torch.equal(a, b) for a, b in zip(trainer.G.parameters(), other.G.parameters()))


def test_the_networks_the_step_calls_are_the_plain_ones_on_one_cpu_process(smoke_config, tmp_path):
    with Trainer(smoke_config(epochs=1), tmp_path / "run", progress=False) as trainer:
        assert trainer.G_train is trainer.G and trainer.D_train is trainer.D and trainer.D_frozen is trainer.D


# ---------------------------------------------------------------- process-wide state
@pytest.mark.slow
def test_a_closed_trainer_leaves_the_process_wide_torch_state_as_it_was(smoke_config, tmp_path):
    before, threads = torch_settings(), torch.get_num_threads()
    rng = torch.random.get_rng_state()
    wanted = threads + 1
    trainer = Trainer(smoke_config(epochs=1, threads=wanted), tmp_path / "run", progress=False)
    assert torch.get_num_threads() == wanted  # in effect while the trainer is open
    assert torch.equal(torch.random.get_rng_state(), rng)  # seeded its networks without touching ours
    trainer.fit()
    trainer.close()
    trainer.close()  # twice is harmless
    assert torch_settings() == before and torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)


@pytest.mark.slow
def test_a_with_block_a_failed_start_and_a_later_change_are_respected(smoke_config, tmp_path):
    threads = torch.get_num_threads()
    with Trainer(smoke_config(epochs=1, threads=threads + 1), tmp_path / "run", progress=False):
        assert torch.get_num_threads() == threads + 1
    assert torch.get_num_threads() == threads

    with pytest.raises(DataError):  # the data fail to load after the settings were made
        Trainer(smoke_config(threads=threads + 1, data=str(tmp_path / "no-such-data")), tmp_path / "bad",
                progress=False)
    assert torch.get_num_threads() == threads

    trainer = Trainer(smoke_config(epochs=1, threads=threads + 1), tmp_path / "again", progress=False)
    try:
        torch.set_num_threads(threads + 2)  # the user's (or another trainer's) choice since: kept
        trainer.close()
        assert torch.get_num_threads() == threads + 2
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- run_config: the resume rules
@pytest.fixture
def saved_run(tmp_path):
    """A run directory as a run stopped before its first checkpoint leaves it: config.json only."""
    cfg = make_config("smoke", device="cpu", seed=3)
    run = tmp_path / "run"
    run.mkdir()
    rundir.write_json(run / "config.json", cfg.to_dict())
    return run, cfg


def test_a_new_run_takes_cfg_with_the_overrides(tmp_path):
    cfg = make_config("smoke", device="cpu")
    assert run_config(tmp_path / "new", cfg) == (cfg, False)
    got, resuming = run_config(tmp_path / "new", cfg, overrides={"lr": 1e-4, "epochs": 5})
    assert not resuming and (got.lr, got.epochs, got.norm) == (1e-4, 5, cfg.norm)
    with pytest.raises(ConfigError, match="needs a configuration"):
        run_config(tmp_path / "new", None)
    with pytest.raises(ValueError, match="resume must be"):
        run_config(tmp_path / "new", cfg, resume="yes")


def test_a_new_run_refuses_a_directory_that_holds_one(saved_run):
    run, cfg = saved_run
    with pytest.raises(rundir.RunDirError, match="already holds a run"):
        run_config(run, cfg)
    assert run_config(run, cfg, main_process=False) == (cfg, False)  # rank 0 may have written it


def test_resume_needs_a_run_directory(tmp_path):
    with pytest.raises(rundir.RunDirError, match="holds no run"):
        run_config(tmp_path / "empty", make_config("smoke"), resume=True)
    with pytest.raises(rundir.RunDirError, match="holds no run"):
        run_config(tmp_path / "empty", overrides={"epochs": 4}, resume=True)


def test_resume_keeps_the_runs_own_config(saved_run):
    run, cfg = saved_run
    assert run_config(run, resume=True) == (cfg, True)


def test_resume_takes_only_the_resumable_fields(saved_run):
    run, cfg = saved_run
    asked = make_config("quick", **{**{k: v for k, v in cfg.to_dict().items() if k != "preset"},
                                    "epochs": 9, "threads": 2, "log_every": 3})
    got, resuming = run_config(run, asked, resume=True)
    assert resuming and (got.epochs, got.threads, got.log_every) == (9, 2, 3)
    assert got.preset == cfg.preset  # a label, never compared
    assert {k: v for k, v in got.to_dict().items() if k not in RESUMABLE_FIELDS} == \
        {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_FIELDS}

    got, _ = run_config(run, overrides={"epochs": 7}, resume=True)  # the command line's --resume --epochs 7
    assert got.to_dict() == {**cfg.to_dict(), "epochs": 7}


def test_resume_refuses_a_changed_maths_field(saved_run):
    run, cfg = saved_run
    before = (run / "config.json").read_bytes()
    with pytest.raises(ConfigError, match="cannot resume .* with different lr, norm: only .*epochs"):
        run_config(run, make_config("smoke", device="cpu", seed=3, lr=1e-4, norm="fan"), resume=True)
    with pytest.raises(ConfigError, match="different seed"):
        run_config(run, overrides={"seed": 4, "epochs": 7}, resume=True)
    assert (run / "config.json").read_bytes() == before


def test_auto_continues_a_run_as_configured_else_starts_cfg(saved_run, tmp_path):
    run, cfg = saved_run
    other = make_config("smoke", device="cpu", seed=5, lr=1e-4)  # describes only a new run
    assert run_config(run, other, resume="auto") == (cfg, True)
    got, resuming = run_config(run, other, overrides={"epochs": 6}, resume="auto")
    assert resuming and got.to_dict() == {**cfg.to_dict(), "epochs": 6}
    with pytest.raises(ConfigError, match="different lr"):
        run_config(run, other, overrides={"lr": 1e-4}, resume="auto")
    assert run_config(tmp_path / "fresh", other, resume="auto") == (other, False)
