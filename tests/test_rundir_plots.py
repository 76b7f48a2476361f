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
