"""The run directory format and the paper's figures drawn from it."""
from __future__ import annotations

import json

import pytest
import torch
from matplotlib.figure import Figure

from colorlib.lab import plots
from colorlib.runs import rundir
from colorlib.cli import main as cli_main


# ---------------------------------------------------------------- run directory pieces
def test_history_round_trips_through_csv(tmp_path):
    rows = torch.tensor([[1, 1, 96.3203, 0.749589, 0.955707, 0.669318, 0.697396],
                         [2, 1, 85.5038, 0.86163, 0.846422, 0.52615, 0.645779]])
    rundir.write_history(tmp_path, rows)
    assert (tmp_path / "history.csv").read_text().splitlines() == [
        "iteration,epoch,g_total,g_adv,g_content,d_real,d_fake",
        "1,1,96.3203,0.749589,0.955707,0.669318,0.697396",
        "2,1,85.5038,0.86163,0.846422,0.52615,0.645779"]
    torch.testing.assert_close(rundir.history_tensor(tmp_path), rows, rtol=1e-6, atol=0)


def test_history_of_a_run_without_iterations_is_empty(tmp_path):
    history = rundir.read_history(tmp_path)
    assert set(history) == set(rundir.HISTORY_COLUMNS) and all(len(v) == 0 for v in history.values())


def test_history_with_wrong_columns_is_refused(tmp_path):
    (tmp_path / "history.csv").write_text("step,loss\n1,0.5\n")
    with pytest.raises(rundir.RunDirError, match="expected"):
        rundir.read_history(tmp_path)


def test_sample_strips_are_lossless(tmp_path):
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rundir.save_strip(tmp_path / "samples" / "epoch_0007.png", images)
    assert torch.equal(rundir.load_strip(tmp_path / "samples" / "epoch_0007.png"), images)
    assert rundir.sample_epochs(tmp_path) == [7]


def test_json_files_are_written_atomically_and_read_with_clear_errors(tmp_path):
    rundir.write_json(tmp_path / "run.json", {"status": "finished", "epochs_done": 3})
    assert rundir.read_run_info(tmp_path) == {"status": "finished", "epochs_done": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind
    with pytest.raises(rundir.RunDirError, match="is missing"):
        rundir.read_config(tmp_path)
    (tmp_path / "config.json").write_text("{ half a file")
    with pytest.raises(rundir.RunDirError, match="not valid JSON"):
        rundir.read_config(tmp_path)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    rundir.write_json(target, {"version": 1})

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("colorlib.runs.rundir.os.replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        rundir.write_json(target, {"version": 2})
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_samples_of_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(rundir.RunDirError, match="holds no samples"):
        rundir.read_samples(tmp_path)


# ---------------------------------------------------------------- smoothing and epoch picking
def test_smooth_is_a_trailing_moving_average():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    # window 3: [1], [1,2], [1,2,3], [2,3,4], [3,4,10]
    expected = [1.0, 1.5, 2.0, 3.0, 17.0 / 3.0]
    assert plots.smooth(values, 3).tolist() == pytest.approx(expected)
    assert plots.smooth(values, 2).tolist() == pytest.approx([1.0, 1.5, 2.5, 3.5, 7.0])
    assert plots.smooth(values, 1).tolist() == values.tolist()
    assert plots.smooth(values, 100).tolist() == pytest.approx([1.0, 1.5, 2.0, 2.5, 4.0])
    assert plots.smooth(torch.empty(0), 5).numel() == 0


def test_pick_epochs_spreads_from_first_to_last():
    assert plots.pick_epochs(range(1, 101), 6) == [1, 21, 41, 60, 80, 100]
    assert plots.pick_epochs([1, 2, 3], 6) == [1, 2, 3]
    assert plots.pick_epochs([], 4) == []


# ---------------------------------------------------------------- figures from the smoke run
def test_loss_curves_plot_every_iteration(smoke_run):
    fig = plots.loss_curves(smoke_run.run_dir)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    n = smoke_run.cfg.epochs * smoke_run.iterations_per_epoch
    assert len(ax.lines) == 4 and all(len(line.get_xdata()) == n for line in ax.lines)
    g_total = rundir.read_history(smoke_run.run_dir)["g_total"]
    assert ax.lines[0].get_ydata().tolist() == pytest.approx(g_total.tolist())


def test_sample_grid_shows_gray_generated_and_truth(smoke_run):
    fig = plots.sample_grid(smoke_run.run_dir, epoch=1)
    assert isinstance(fig, Figure)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["grayscale", "generated", "ground truth"]
    generated = fig.axes[1].images[0].get_array()
    assert generated.shape == (32, 32 * smoke_run.cfg.n_samples, 3)
    _, _, by_epoch = rundir.read_samples(smoke_run.run_dir)
    assert (torch.from_numpy(generated.data).permute(2, 0, 1) == torch.cat(list(by_epoch[1]), dim=2)).all()
    last = plots.sample_grid(smoke_run.run_dir)  # default: the last epoch
    assert [t.get_text() for t in last.texts] == [f"Output at epoch {smoke_run.cfg.epochs}"]


def test_sample_grid_of_a_missing_epoch_lists_the_available_ones(smoke_run):
    with pytest.raises(rundir.RunDirError, match=r"available: \[1, 2, 3\]"):
        plots.sample_grid(smoke_run.run_dir, epoch=99)


def test_across_epochs_has_one_row_per_epoch(smoke_run):
    fig = plots.across_epochs(smoke_run.run_dir)
    assert isinstance(fig, Figure)
    epochs = list(range(1, smoke_run.cfg.epochs + 1))
    assert [ax.get_title(loc="left") for ax in fig.axes] == (
        ["grayscale"] + [f"epoch {e}" for e in epochs] + ["ground truth"])
    assert len(plots.across_epochs(smoke_run.run_dir, epochs=[3], n=2).axes) == 3


def test_figures_command_writes_pngs_and_provenance(smoke_run, tmp_path, capsys):
    out = tmp_path / "figures"
    assert cli_main(["figures", "--run-dir", str(smoke_run.run_dir), "--out", str(out)]) == 0
    expected = {"loss_curves.png", "across_epochs.png", "provenance.json",
                *(f"samples_epoch_{e:04d}.png" for e in range(1, smoke_run.cfg.epochs + 1))}
    assert {p.name for p in out.iterdir()} == expected
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(out / name) for name in expected)

    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["preset"] == "smoke" and provenance["config"] == smoke_run.cfg.to_dict()
    assert provenance["status"] == "finished" and provenance["epochs_done"] == smoke_run.cfg.epochs
    assert provenance["data_source"] == smoke_run.cfg.data and provenance["device"] == "cpu"


def test_figures_of_a_folder_that_is_no_run_exit_2(tmp_path, capsys):
    assert cli_main(["figures", "--run-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "error: " in capsys.readouterr().err


# ---------------------------------------------------------------- the collapse statistic, where the student looks
def tiny_run(path, d_losses_per_epoch, val_fd=None, iterations=4):
    """A run directory without checkpoints: the smoke preset's config, a history in which D's loss
    (real + generated) in epoch e is d_losses_per_epoch[e - 1] in every iteration, and with `val_fd`
    an epochs.csv holding the same shares of D's outright wins and those validation FDs."""
    from colorlib.engine.run_files import EPOCH_COLUMNS
    from colorlib.runs.config import make_config

    epochs = len(d_losses_per_epoch)
    rundir.write_json(path / "config.json", make_config("smoke", epochs=epochs).to_dict())
    rows = [[(e - 1) * iterations + i + 1, e, 50.0, 5.0, 0.4, loss / 2, loss / 2]
            for e, loss in enumerate(d_losses_per_epoch, start=1) for i in range(iterations)]
    rundir.write_history(path, torch.tensor(rows, dtype=torch.float64))
    rundir.write_json(path / "run.json", {"status": "finished", "epochs_done": epochs, "iterations_done": len(rows),
                                          "wall_time_s": 12.0, "device": "cpu"})  # as figures/paper/run's
    if val_fd is not None:
        rundir.write_epochs(path, EPOCH_COLUMNS, [[e, float(loss < 0.01), 20.0 + e, 10.0, fd, 1e-3, 1e-3]
                                                  for e, (loss, fd) in enumerate(zip(d_losses_per_epoch, val_fd), 1)])
    return path


def test_d_wins_come_from_epochs_csv_else_from_the_history(tmp_path):
    run = tiny_run(tmp_path / "old", [1.0, 0.001, 0.001, 0.5, 0.001])  # no epochs.csv, as figures/paper/run
    assert plots.d_wins_by_epoch(run) == {1: 0.0, 2: 1.0, 3: 1.0, 4: 0.0, 5: 1.0}
    assert plots.outright_epochs(plots.d_wins_by_epoch(run)) == [2, 3, 5]
    new = tiny_run(tmp_path / "new", [1.0, 0.001], val_fd=[9.0, 7.0])
    (new / "epochs.csv").write_text((new / "epochs.csv").read_text().replace("\n2,1,", "\n2,0.25,"))
    assert plots.d_wins_by_epoch(new) == {1: 0.0, 2: 0.25}  # the trainer's own record wins
    cfg = rundir.read_json(new / "config.json")
    rundir.write_json(new / "config.json", {**cfg, "adv_weight": 0.0})
    assert plots.d_wins_by_epoch(new) == {}  # no discriminator: no statistic


def test_epoch_lists_read_as_ranges():
    assert plots.epoch_spans([8, 6, 7, 12]) == [(6, 8), (12, 12)]
    assert plots.epoch_list([6, 7, 8, 12, 20, 21]) == "6-8, 12 and 20-21"
    assert plots.epoch_list([5]) == "5"
    assert plots.epoch_note({3: 1.0, 4: 0.125}, 3) == "D wins outright in 100% of this epoch's iterations"
    assert plots.epoch_note({3: 1.0, 4: 0.125}, 4) == "D wins outright in 12% of this epoch's iterations"
    assert plots.epoch_note({}, 4) == ""


def test_run_story_is_computed_from_the_run_shown(tmp_path):
    run = tiny_run(tmp_path / "run", [1.0, 0.5, 0.001, 0.001, 0.001, 0.5], val_fd=[9.0, 4.5, 6.0, 8.0, 8.5, 7.0])
    story = plots.run_story(run, "runs/quick")
    assert story.startswith("**The run shown here**: `runs/quick`, preset `smoke`, 6 of 6 epochs (finished)")
    assert "D won outright (D loss < 0.01 in every iteration) in epochs 3-5: 3 of its 6 epochs" in story
    assert "Epoch 2 has the best validation FD (4.50, validation PSNR 22.00 dB); the last epoch's is 7.00." in story
    calm = plots.run_story(tiny_run(tmp_path / "calm", [1.0, 0.5]), "calm")
    assert "D never won outright (D loss < 0.01) in any iteration" in calm
    assert "no per-epoch validation scores" in calm


def test_the_shipped_run_says_when_d_won(repo_root):
    story = plots.run_story(repo_root / "figures" / "paper" / "run", "figures/paper/run")
    assert "preset `paper`, 100 of 100 epochs" in story
    assert "in epochs 6-12, 23-32, 56-63, 67-82 and 84-96: 54 of its 100 epochs" in story


def test_loss_curves_shade_the_epochs_d_won_outright(tmp_path):
    run = tiny_run(tmp_path / "run", [1.0, 0.001, 0.001, 0.5, 0.001])
    fig = plots.loss_curves(run)
    losses, terms, collapse = fig.axes[:3]
    spans = [p for p in losses.patches if p.get_facecolor()[3] < 0.5]  # the translucent bands
    assert [(round(p.get_x()), round(p.get_x() + p.get_width())) for p in spans] == [(4, 12), (16, 20)]
    assert len(terms.patches) == 2
    assert "epochs D won outright" in [t.get_text() for t in losses.get_legend().get_texts()]
    assert [b.get_height() for b in collapse.patches] == [0.0, 1.0, 1.0, 0.0, 1.0]


def test_sample_grid_title_carries_a_note(smoke_run):
    note = "D wins outright in 100% of this epoch's iterations"
    fig = plots.sample_grid(smoke_run.run_dir, epoch=1, note=note)
    assert [t.get_text() for t in fig.texts] == [f"Output at epoch 1\n{note}"]
