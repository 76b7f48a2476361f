"""The run directory's tables and samples, and the paper's figures drawn from them (colorlib.lab.plots)."""
from __future__ import annotations

import json

import pytest
import torch

from colorlib.lab import plots
from colorlib.runs import rundir
from conftest import one_line, run_cli


def test_history_and_samples_round_trip_losslessly(tmp_path):
    rows = torch.tensor([[1, 1, 96.3203, 0.749589, 0.955707, 0.669318, 0.697396],
                         [2, 1, 85.5038, 0.86163, 0.846422, 0.52615, 0.645779]])
    rundir.write_history(tmp_path, rows)
    assert (tmp_path / "history.csv").read_text().splitlines()[1] == "1,1,96.3203,0.749589,0.955707,0.669318,0.697396"
    torch.testing.assert_close(rundir.history_tensor(tmp_path), rows, rtol=1e-6, atol=0)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rundir.save_strip(tmp_path / "samples" / "epoch_0007.png", images)
    assert torch.equal(rundir.load_strip(tmp_path / "samples" / "epoch_0007.png"), images)
    assert rundir.sample_epochs(tmp_path) == [7]


def tiny_run(path, d_losses_per_epoch, val_fd=None, iterations=4):
    """A run without checkpoints: the smoke config, a history in which D's loss in epoch e is
    d_losses_per_epoch[e - 1], and with `val_fd` an epochs.csv (without it: as figures/paper/run)."""
    from colorlib.engine.run_files import EPOCH_COLUMNS
    from colorlib.runs.config import make_config

    epochs = len(d_losses_per_epoch)
    rundir.write_json(path / "config.json", make_config("smoke", epochs=epochs).to_dict())
    rows = [[(e - 1) * iterations + i + 1, e, 50.0, 5.0, 0.4, loss / 2, loss / 2]
            for e, loss in enumerate(d_losses_per_epoch, start=1) for i in range(iterations)]
    rundir.write_history(path, torch.tensor(rows, dtype=torch.float64))
    rundir.write_json(path / "run.json", {"status": "finished", "epochs_done": epochs, "iterations_done": len(rows),
                                          "wall_time_s": 12.0, "device": "cpu"})
    if val_fd is not None:
        rundir.write_epochs(path, EPOCH_COLUMNS, [[e, float(loss < 0.01), 20.0 + e, 10.0, fd, 1e-3, 1e-3]
                                                  for e, (loss, fd) in enumerate(zip(d_losses_per_epoch, val_fd), 1)])
    return path


def test_d_wins_come_from_epochs_csv_else_from_the_history(tmp_path):
    run = tiny_run(tmp_path / "old", [1.0, 0.001, 0.001, 0.5, 0.001])
    assert plots.d_wins_by_epoch(run) == {1: 0.0, 2: 1.0, 3: 1.0, 4: 0.0, 5: 1.0}
    assert plots.outright_epochs(plots.d_wins_by_epoch(run)) == [2, 3, 5]
    new = tiny_run(tmp_path / "new", [1.0, 0.001], val_fd=[9.0, 7.0])
    (new / "epochs.csv").write_text((new / "epochs.csv").read_text().replace("\n2,1,", "\n2,0.25,"))
    assert plots.d_wins_by_epoch(new) == {1: 0.0, 2: 0.25}  # the trainer's own record wins
    rundir.write_json(new / "config.json", {**rundir.read_json(new / "config.json"), "adv_weight": 0.0})
    assert plots.d_wins_by_epoch(new) == {}  # no discriminator: no statistic


def test_text_helpers():
    assert plots.smooth(torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0]), 2).tolist() == pytest.approx([1, 1.5, 2.5, 3.5, 7])
    assert plots.smooth(torch.empty(0), 5).numel() == 0
    assert plots.pick_epochs(range(1, 101), 6) == [1, 21, 41, 60, 80, 100] and plots.pick_epochs([1, 2], 6) == [1, 2]
    assert plots.epoch_list([8, 6, 7, 12, 20, 21]) == "6-8, 12 and 20-21" and plots.epoch_list([5]) == "5"
    assert plots.epoch_note({4: 0.125}, 4) == "D wins outright in 12% of this epoch's iterations"
    assert plots.epoch_note({}, 4) == ""


def test_run_story_is_computed_from_the_run_shown(tmp_path, repo_root):
    run = tiny_run(tmp_path / "run", [1.0, 0.5, 0.001, 0.001, 0.001, 0.5], val_fd=[9.0, 4.5, 6.0, 8.0, 8.5, 7.0])
    story = plots.run_story(run, "runs/quick")
    assert story.startswith("**The run shown here**: `runs/quick`, preset `smoke`, 6 of 6 epochs (finished)")
    assert "D won outright (D loss < 0.01 in every iteration) in epochs 3-5: 3 of its 6 epochs" in story
    assert "Epoch 2 has the best validation FD (4.50, validation PSNR 22.00 dB); the last epoch's is 7.00." in story
    calm = plots.run_story(tiny_run(tmp_path / "calm", [1.0, 0.5]), "calm")
    assert "D never won outright (D loss < 0.01) in any iteration" in calm and "no per-epoch validation" in calm
    shipped = plots.run_story(repo_root / "figures" / "paper" / "run", "figures/paper/run")
    assert "preset `paper`, 100 of 100 epochs" in shipped
    assert "in epochs 6-12, 23-32, 56-63, 67-82 and 84-96: 54 of its 100 epochs" in shipped


def test_loss_curves_plot_every_iteration_and_shade_the_epochs_d_won(tmp_path):
    run = tiny_run(tmp_path / "run", [1.0, 0.001, 0.001, 0.5, 0.001])
    losses, terms, collapse = plots.loss_curves(run).axes[:3]
    assert len(losses.lines) == 4 and all(len(line.get_xdata()) == 20 for line in losses.lines)
    assert losses.lines[0].get_ydata().tolist() == pytest.approx([50.0] * 20)
    spans = [p for p in losses.patches if p.get_facecolor()[3] < 0.5]
    assert [(round(p.get_x()), round(p.get_x() + p.get_width())) for p in spans] == [(4, 12), (16, 20)]
    assert len(terms.patches) == 2 and [b.get_height() for b in collapse.patches] == [0.0, 1.0, 1.0, 0.0, 1.0]


def test_sample_grids_show_the_stored_samples(smoke_run):
    fig = plots.sample_grid(smoke_run.run_dir, epoch=1, note="a note")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["grayscale", "generated", "ground truth"]
    assert [t.get_text() for t in fig.texts] == ["Output at epoch 1\na note"]
    _, _, by_epoch = rundir.read_samples(smoke_run.run_dir)
    shown = torch.from_numpy(fig.axes[1].images[0].get_array().data).permute(2, 0, 1)
    assert torch.equal(shown, torch.cat(list(by_epoch[1]), dim=2))
    epochs = range(1, smoke_run.cfg.epochs + 1)
    assert [ax.get_title(loc="left") for ax in plots.across_epochs(smoke_run.run_dir).axes] == [
        "grayscale", *(f"epoch {e}" for e in epochs), "ground truth"]
    with pytest.raises(rundir.RunDirError, match=r"available: \[1, 2, 3\]"):
        plots.sample_grid(smoke_run.run_dir, epoch=99)


def test_figures_command_writes_one_runs_figures_and_provenance(smoke_run, tmp_path, capsys):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "samples_epoch_0099.png").write_bytes(b"a longer run's grid")  # must not be mixed in
    code, stdout, _ = run_cli(capsys, "figures", "--run-dir", smoke_run.run_dir, "--out", out)
    expected = {"loss_curves.png", "across_epochs.png", "provenance.json",
                *(f"samples_epoch_{e:04d}.png" for e in range(1, smoke_run.cfg.epochs + 1))}
    assert code == 0 and {p.name for p in out.iterdir()} == expected
    assert sorted(stdout.split()) == sorted(str(out / name) for name in expected)
    assert all(png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for png in out.glob("*.png"))
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["config"] == smoke_run.cfg.to_dict() and provenance["status"] == "finished"
    assert provenance["data_source"] == smoke_run.cfg.data and provenance["device"] == "cpu"
    code, _, stderr = run_cli(capsys, "figures", "--run-dir", tmp_path, "--out", tmp_path / "other")
    assert code == 2 and one_line(stderr).startswith("error: ")
