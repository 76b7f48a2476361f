"""Training: the paper's iteration, the run directory it writes, exact resume, and every failure path."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from colorlib.runs import rundir
from colorlib.cli import main as cli_main
from colorlib.runs.config import ConfigError, make_config
from colorlib.runs.data import DataError, load_split
from colorlib.paper.data import to_model_range
from colorlib.paper.losses import cosine_similarity_loss
from colorlib.variants import build_generator
from colorlib.lab.validation import validator_for
from colorlib.engine.trainer import Trainer, TrainingDiverged
from colorlib.inference.checkpoints import load_generator


# ---------------------------------------------------------------- helpers
def assert_same_state(a, b, where="checkpoint"):
    """Bitwise equality of nested dicts / lists of tensors and numbers (state dicts, optimizer states)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, where


def load_ckpt(run_dir, name="last.pt") -> dict:
    return torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=True)


def files_and_bytes(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def record_optimizer_steps(trainer: Trainer) -> list[str]:
    """'D' / 'G' appended after every discriminator / generator optimizer step, in order."""
    events: list[str] = []
    trainer.d_opt.register_step_post_hook(lambda *_: events.append("D"))
    trainer.g_opt.register_step_post_hook(lambda *_: events.append("G"))
    return events


# ---------------------------------------------------------------- one iteration
def test_one_iteration_is_two_discriminator_steps_then_one_generator_step(smoke_config, tmp_path):
    trainer = Trainer(smoke_config(epochs=1), tmp_path / "run", progress=False, validator=validator_for)
    events = record_optimizer_steps(trainer)
    # each update must leave the other network alone: D steps on G(x).detach(), G steps through a frozen D
    snapshots = {}
    trainer.d_opt.register_step_post_hook(
        lambda *_: snapshots.setdefault("G after D", [p.clone() for p in trainer.G.parameters()]))
    g_before = [p.detach().clone() for p in trainer.G.parameters()]
    d_before_g = []
    trainer.g_opt.register_step_pre_hook(
        lambda *_: d_before_g.extend(p.detach().clone() for p in trainer.D.parameters()))

    gray, rgb = to_model_range(trainer.images[:trainer.cfg.batch_size])
    losses = trainer.step(gray, rgb)

    assert events == ["D", "D", "G"]
    assert losses.shape == (5,) and torch.isfinite(losses).all()
    assert all(torch.equal(a, b) for a, b in zip(g_before, snapshots["G after D"]))
    assert all(torch.equal(a, b) for a, b in zip(d_before_g, trainer.D.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, trainer.G.parameters()))

    events.clear()
    trainer.fit()
    assert events == ["D", "D", "G"] * trainer.iterations_per_epoch


def test_without_the_adversarial_term_only_the_generator_steps(smoke_config, tmp_path):
    trainer = Trainer(smoke_config(epochs=1, adv_weight=0.0), tmp_path / "run", progress=False, validator=validator_for)
    events = record_optimizer_steps(trainer)
    trainer.step(*to_model_range(trainer.images[:50]))
    assert events == ["G"]


# ---------------------------------------------------------------- the shared smoke run
def test_smoke_run_writes_a_complete_run_directory(smoke_run, data_dir):
    run, cfg = smoke_run.run_dir, smoke_run.cfg
    assert rundir.read_config(run) == cfg
    info = rundir.read_run_info(run)
    assert info["status"] == "finished"
    assert info["epochs_done"] == info["epochs"] == cfg.epochs
    assert info["iterations_done"] == cfg.epochs * smoke_run.iterations_per_epoch
    assert info["train_images"] == cfg.train_size and info["data_source"] == str(data_dir)
    assert info["device"] == "cpu" and info["torch"] == torch.__version__

    assert (run / "history.csv").read_text().splitlines()[0] == ",".join(rundir.HISTORY_COLUMNS)
    history = rundir.read_history(run)
    assert len(rundir.HISTORY_COLUMNS) == 7
    iters = smoke_run.iterations_per_epoch
    assert iters == cfg.train_size // cfg.batch_size
    assert history["iteration"].tolist() == list(range(1, cfg.epochs * iters + 1))
    assert history["epoch"].tolist() == [e for e in range(1, cfg.epochs + 1) for _ in range(iters)]
    assert all(torch.isfinite(history[c]).all() for c in rundir.HISTORY_COLUMNS)

    assert rundir.sample_epochs(run) == list(range(1, cfg.epochs + 1))
    gray, truth, by_epoch = rundir.read_samples(run)
    assert gray.shape == truth.shape == (cfg.n_samples, 3, 32, 32)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert torch.equal(truth, load_split(cfg.data, "test", cfg.n_samples, cfg.seed).images)
    assert all(images.shape == truth.shape for images in by_epoch.values())

    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "generator.pt").is_file()
    assert not list(run.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_generator_learns_during_the_smoke_run(smoke_run):
    run, cfg, iters = smoke_run.run_dir, smoke_run.cfg, smoke_run.iterations_per_epoch
    content = rundir.read_history(run)["g_content"]
    assert content[-iters:].mean() < content[:iters].mean()

    _, _, by_epoch = rundir.read_samples(run)
    assert not torch.equal(by_epoch[1], by_epoch[cfg.epochs])

    trained, _ = load_generator(run)
    torch.manual_seed(cfg.seed)  # the trainer's initial weights
    untrained = build_generator(cfg).eval()
    gray, rgb = to_model_range(load_split(cfg.data, "test", cfg.n_samples, cfg.seed).images)
    with torch.no_grad():
        before, after = untrained(gray), trained(gray)
    assert not torch.equal(before, after)
    assert cosine_similarity_loss(after, rgb) < cosine_similarity_loss(before, rgb)


def test_checkpoints_load_with_weights_only(smoke_run):
    last = load_ckpt(smoke_run.run_dir, "last.pt")
    assert last["format"] == rundir.CHECKPOINT_FORMAT and last["epoch"] == smoke_run.cfg.epochs
    assert {"generator", "discriminator", "g_opt", "d_opt", "config", "wall_time"} <= last.keys()
    final = load_ckpt(smoke_run.run_dir, "generator.pt")
    assert final["format"] == rundir.GENERATOR_FORMAT and final["config"] == smoke_run.cfg.to_dict()
    assert_same_state(final["generator"], last["generator"])


@pytest.mark.parametrize("where", ["run_dir", "generator.pt", "last.pt"])
def test_load_generator_from_a_run_or_a_checkpoint(smoke_run, where):
    path = smoke_run.run_dir if where == "run_dir" else smoke_run.run_dir / "checkpoints" / where
    G, cfg = load_generator(path)
    assert cfg == smoke_run.cfg and not G.training
    assert_same_state(G.state_dict(), load_ckpt(smoke_run.run_dir)["generator"])


# ---------------------------------------------------------------- resume
@pytest.mark.slow
@pytest.mark.parametrize("stop", ["after_epoch", "ctrl_c"])
def test_interrupted_run_resumes_to_identical_weights_and_history(smoke_run, smoke_config, tmp_path, stop,
                                                                    monkeypatch):
    run, k = tmp_path / "run", 1
    if stop == "after_epoch":  # a run of k epochs, later extended to the full length
        Trainer(smoke_config(epochs=k), run, progress=False, validator=validator_for).fit()
        assert rundir.read_run_info(run)["status"] == "finished"
    else:  # Ctrl-C in the middle of epoch k + 1: its finished iterations are lost, epoch k is kept
        trainer = Trainer(smoke_config(), run, progress=False, validator=validator_for)
        calls, step = 0, trainer.step

        def step_then_interrupt(*args):
            nonlocal calls
            calls += 1
            if calls == k * trainer.iterations_per_epoch + 2:
                raise KeyboardInterrupt
            return step(*args)

        monkeypatch.setattr(trainer, "step", step_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
        info = rundir.read_run_info(run)
        assert (info["status"], info["epochs_done"]) == ("interrupted", k)

    resumed = Trainer(smoke_config(), run, resume=True, progress=False, validator=validator_for)
    assert resumed.epoch == k
    resumed.fit()

    reference = smoke_run.run_dir
    assert rundir.read_run_info(run)["status"] == "finished"
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()
    ours, theirs = load_ckpt(run), load_ckpt(reference)
    for part in ("generator", "discriminator", "g_opt", "d_opt", "epoch", "config"):
        assert_same_state(ours[part], theirs[part], part)
    assert_same_state(load_ckpt(run, "generator.pt")["generator"], load_ckpt(reference, "generator.pt")["generator"])
    _, _, ours_samples = rundir.read_samples(run)
    _, _, reference_samples = rundir.read_samples(reference)
    assert_same_state(ours_samples, reference_samples, "samples")


def test_existing_run_is_refused_without_resume(smoke_run_copy, smoke_config):
    before = files_and_bytes(smoke_run_copy)
    with pytest.raises(rundir.RunDirError, match="already holds a run") as err:
        Trainer(smoke_config(), smoke_run_copy, progress=False, validator=validator_for)
    assert "resume" in str(err.value) and "nothing was overwritten" in str(err.value)
    assert files_and_bytes(smoke_run_copy) == before


def test_resume_refuses_a_changed_configuration(smoke_run_copy, smoke_config):
    before = files_and_bytes(smoke_run_copy)
    with pytest.raises(ConfigError, match="different lr, norm"):
        Trainer(smoke_config(lr=1e-4, norm="fan"), smoke_run_copy, resume=True, progress=False, validator=validator_for)
    assert files_and_bytes(smoke_run_copy) == before


def test_resume_needs_a_run(tmp_path, smoke_config):
    with pytest.raises(rundir.RunDirError, match="holds no run"):
        Trainer(smoke_config(), tmp_path / "empty", resume=True, progress=False, validator=validator_for)


def damage(path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "foreign":  # a valid torch file that colorlib did not write
        torch.save({"weights": torch.zeros(3)}, path)


@pytest.mark.parametrize("how, message", [("truncated", "damaged"), ("garbage", "damaged"), ("empty", "damaged"),
                                          ("foreign", "not a colorlib checkpoint")])
def test_damaged_checkpoint_is_a_clear_error_on_resume(smoke_run_copy, how, message):
    last = smoke_run_copy / "checkpoints" / "last.pt"
    damage(last, how)
    with pytest.raises(rundir.RunDirError, match=message) as err:
        Trainer(None, smoke_run_copy, resume=True, progress=False, validator=validator_for)
    assert str(last) in str(err.value)


def test_missing_checkpoint_is_a_clear_error_on_resume(smoke_run_copy):
    (smoke_run_copy / "checkpoints" / "last.pt").unlink()
    with pytest.raises(rundir.RunDirError, match="last.pt' does not exist"):
        Trainer(None, smoke_run_copy, resume=True, progress=False, validator=validator_for)


@pytest.mark.parametrize("how, message", [("truncated", "damaged"), ("garbage", "damaged"),
                                          ("foreign", "not a colorlib checkpoint")])
def test_damaged_generator_is_a_clear_error(smoke_run_copy, how, message):
    final = smoke_run_copy / "checkpoints" / "generator.pt"
    damage(final, how)
    for path in (final, smoke_run_copy):  # by file, and by run directory (which prefers generator.pt)
        with pytest.raises(rundir.RunDirError, match=message):
            load_generator(path)


def test_generator_that_does_not_fit_its_config_is_a_clear_error(smoke_run_copy):
    final = smoke_run_copy / "checkpoints" / "generator.pt"
    ckpt = torch.load(final, weights_only=True)
    ckpt["config"]["g_width"] *= 2
    torch.save(ckpt, final)
    with pytest.raises(rundir.RunDirError, match="does not fit the generator"):
        load_generator(final)


def test_run_without_checkpoints_is_a_clear_error(tmp_path):
    with pytest.raises(rundir.RunDirError, match="holds no checkpoint"):
        load_generator(tmp_path)


# ---------------------------------------------------------------- data errors
def test_missing_data_folder_is_a_clear_error(smoke_config, tmp_path):
    missing = tmp_path / "no-such-data"
    with pytest.raises(DataError, match="does not exist") as err:
        Trainer(smoke_config(data=str(missing)), tmp_path / "run", progress=False, validator=validator_for)
    assert str(missing) in str(err.value)


def test_missing_data_folder_leaves_no_run_behind(smoke_config, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DataError):
        Trainer(smoke_config(data=str(tmp_path / "no-such-data")), run, progress=False, validator=validator_for)
    assert not rundir.is_run_dir(run)


# ---------------------------------------------------------------- divergence
def test_diverging_loss_stops_the_run(smoke_config, tmp_path):
    # an absurd learning rate turns the weights non-finite at the first update
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="epoch 1, iteration 1: a loss is not finite"):
        Trainer(smoke_config(lr=1e30), run, progress=False, validator=validator_for).fit()
    info = rundir.read_run_info(run)
    assert info["status"] == "diverged" and "Lower the learning rate" in info["error"]
    assert not (run / "checkpoints" / "last.pt").exists()  # nothing good to keep


@pytest.mark.slow
@pytest.mark.parametrize("log_every", [1, 1000])  # checked at every iteration, or only at the epoch's end
def test_divergence_after_a_good_epoch_keeps_its_checkpoint(smoke_run, smoke_config, tmp_path, monkeypatch,
                                                            log_every):
    # No configuration trains well for an epoch and then diverges (the learning rate applies from
    # the first step), so the test raises the learning rate to 1e30 once epoch 1 is saved.
    run = tmp_path / "run"
    trainer = Trainer(smoke_config(log_every=log_every), run, progress=False, validator=validator_for)
    end_epoch = trainer._end_epoch

    def end_epoch_then_absurd_lr(*args):
        end_epoch(*args)
        for opt in (trainer.g_opt, trainer.d_opt):
            for group in opt.param_groups:
                group["lr"] = 1e30

    monkeypatch.setattr(trainer, "_end_epoch", end_epoch_then_absurd_lr)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, .*after epoch 1\)"):
        trainer.fit()

    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"]) == ("diverged", 1)
    assert "not finite" in info["error"]
    kept = load_ckpt(run)
    assert kept["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in kept["generator"].values() if t.is_floating_point())
    assert len(rundir.read_history(run)["iteration"]) == smoke_run.iterations_per_epoch
    assert rundir.sample_epochs(run) == [1]
    assert not (run / "checkpoints" / "generator.pt").exists()
    # the kept epoch is the same epoch 1 that the undisturbed run trained
    _, _, samples = rundir.read_samples(run)
    _, _, reference = rundir.read_samples(smoke_run.run_dir)
    assert torch.equal(samples[1], reference[1])


# ---------------------------------------------------------------- a crash between history and checkpoint
def test_resume_drops_history_written_after_the_last_checkpoint(small_folder, tmp_path):
    # all 100 images of the folder (train_size None): two iterations per epoch
    cfg = make_config("smoke", data=str(small_folder), device="cpu", train_size=None, val_size=0, epochs=1)
    run = tmp_path / "run"
    Trainer(cfg, run, progress=False, validator=validator_for).fit()
    epoch1 = (run / "checkpoints" / "last.pt").read_bytes()
    longer = dataclasses.replace(cfg, epochs=2)
    Trainer(longer, run, resume=True, progress=False, validator=validator_for).fit()
    complete = (run / "history.csv").read_text()

    # a crash after epoch 2's history.csv was written but before its last.pt replaced epoch 1's
    (run / "checkpoints" / "last.pt").write_bytes(epoch1)
    resumed = Trainer(longer, run, resume=True, progress=False, validator=validator_for)
    assert len(resumed.history) == 2
    resumed.fit()
    assert (run / "history.csv").read_text() == complete


# ---------------------------------------------------------------- the command line
@pytest.mark.slow
def test_cli_trains_refuses_to_overwrite_and_resumes(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "--preset", "smoke", "--data", str(data_dir), "--device", "cpu", "--run-dir", str(run),
             "--no-progress"]
    assert cli_main([*train, "--epochs", "1"]) == 0
    assert str(run) in capsys.readouterr().out
    assert rundir.read_run_info(run)["epochs_done"] == 1

    assert cli_main([*train, "--epochs", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err

    assert cli_main(["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    info = rundir.read_run_info(run)
    assert (info["status"], info["epochs_done"]) == ("finished", 2)


def test_cli_missing_data_exits_2_with_the_reason(tmp_path, capsys):
    missing = tmp_path / "no-such-data"
    code = cli_main(["train", "--preset", "smoke", "--data", str(missing), "--device", "cpu",
                     "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "does not exist" in err
