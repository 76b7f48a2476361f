"""bench: the tutorial loop is the paper's iteration fed by a DataLoader and trains what the trainer
trains; the trainer's loop follows the engine's epoch order; the command writes its JSON and never
over an earlier result. No timing is asserted: the speed is what the command prints."""
import json
import os
import re

import pytest
import torch

from colorlib.engine.trainer import Trainer
from colorlib.lab import bench
from colorlib.paper.data import epoch_order, to_model_range
from colorlib.paper.losses import PaperObjective
from colorlib.paper.step import training_iteration
from colorlib.runs.config import make_config
from colorlib.variants import build_discriminator, build_generator
from conftest import one_line, random_images, run_cli

CPU = torch.device("cpu")


def test_the_tutorial_loop_is_the_papers_iteration_and_trains_what_the_trainer_trains(small_folder, tmp_path):
    cfg = make_config("smoke", data=str(small_folder), device="cpu", val_size=0, batch_size=8, amp=False,
                      channels_last=False)
    with Trainer(cfg, tmp_path / "run", progress=False) as trainer:
        images = trainer.images
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=8, shuffle=True,
                                             drop_last=True, generator=torch.Generator().manual_seed(cfg.seed))
        (batch,) = next(iter(loader))  # the tutorial loop's first batch
        ours = trainer.step(*to_model_range(batch))
    step = bench.tutorial_step(cfg, images, CPU)
    first = step()
    torch.manual_seed(cfg.seed)  # the networks and Adams as a reader of the paper builds them
    G, D = build_generator(cfg), build_discriminator(cfg)
    g_opt, d_opt = (torch.optim.Adam(n.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for n in (G, D))
    expected = training_iteration(G, D, g_opt, d_opt, *to_model_range(batch), PaperObjective(cfg.lam), cfg.d_steps)
    assert torch.equal(first, expected) and torch.equal(first, ours)
    assert not torch.equal(step(), first)  # it goes on, on the next batch with the updated networks


def test_the_trainer_loop_follows_the_engines_epoch_order():
    class Recorder:  # a trainer that notes the batches it is given
        cfg, device = make_config("smoke", batch_size=4, seed=3), CPU
        images, batches = torch.zeros(10, 3, 8, 8, dtype=torch.uint8), []

        def train_step(self, index):
            self.batches.append(index.tolist())

    trainer = Recorder()
    step = bench.trainer_step(trainer)
    for _ in range(4):  # two epochs of two batches
        step()
    orders = [epoch_order(10, epoch, 3).tolist() for epoch in (0, 1)]
    assert trainer.batches == [orders[0][:4], orders[0][4:8], orders[1][:4], orders[1][4:8]]


def test_bench_writes_its_results_and_never_over_an_earlier_file(small_folder, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--preset", "smoke", "--device", "cpu", "--data", small_folder, "--iters", "2",
            "--set", "val_size=0", "--out", out]
    code, stdout, _ = run_cli(capsys, *argv)
    result = json.loads(out.read_text())
    assert code == 0 and "speed-up" in stdout and result["iterations_timed"] == 2
    assert result["colorlib_train_images_per_s"] > 0 and result["tutorial_train_images_per_s"] > 0
    assert result["training_flop_per_iteration"] == bench.training_flops(
        make_config("smoke", data=str(small_folder), val_size=0), random_images(50, size=32))
    code, _, stderr = run_cli(capsys, *argv)
    assert code == 2 and "already exists" in one_line(stderr) and json.loads(out.read_text()) == result


def test_bench_profile_prints_the_profilers_table(small_folder, capsys):
    code, stdout, _ = run_cli(capsys, "bench", "--profile", "--preset", "smoke", "--device", "cpu",
                              "--data", small_folder, "--set", "val_size=0")
    assert code == 0 and "Self CPU" in stdout and "aten::" in stdout


@pytest.mark.parametrize("data, message", [
    ("nowhere", r"data source '.*nowhere' does not exist\. Point --data .*"),
    ("empty", r"no images \(.*\) found under '.*empty': .*"),
    (None, r"bench reads CIFAR-10 from 'data' without downloading it.*--data.*"),  # nor $COLORLIB_DATA
])
def test_bench_without_images_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, data, message):
    monkeypatch.delenv("COLORLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/ folder with CIFAR-10 here
    (tmp_path / "empty").mkdir()
    code, _, stderr = run_cli(capsys, "bench", *(["--data", tmp_path / data] if data else []), "--device", "cpu",
                              "--out", "bench.json")
    assert code == 2 and re.fullmatch(f"error: {message}", one_line(stderr)) and os.listdir(tmp_path) == ["empty"]
