"""The benchmark runs end to end and says which precision colorlib chose and why; its reference
loop is the paper's training iteration fed by a DataLoader, nothing more; its FLOP count is a
count of one training iteration; the CPU precision decision follows the CPU's bf16 capabilities
and, where they leave it open, the calibration. No timing is asserted here: the speed targets
are the benchmark's printed ratios."""

import json
import math
import shutil

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from colorlib.engine import precision
from colorlib.engine.trainer import Trainer
from colorlib.cli import main
from colorlib.lab import bench
from colorlib.paper.data import epoch_order, to_model_range
from colorlib.paper.losses import PaperObjective
from colorlib.paper.step import training_iteration
from colorlib.runs.config import make_config
from colorlib.variants import build_discriminator, build_generator
from conftest import random_images

CPU = torch.device("cpu")


def small_copy(data_dir, folder, train: int = 20, test: int = 2):
    """The first `train` and `test` images of each class: a folder that lists in milliseconds."""
    for split, n in (("train", train), ("test", test)):
        for cls in sorted(p for p in (data_dir / split).iterdir() if p.is_dir()):
            (folder / split / cls.name).mkdir(parents=True)
            for image in sorted(cls.iterdir())[:n]:
                shutil.copy(image, folder / split / cls.name / image.name)
    return folder


def tiny_config(**overrides):
    return make_config("smoke", device="cpu", batch_size=4, **overrides)


@pytest.mark.slow
def test_bench_runs_on_a_tiny_preset_and_writes_the_precision_and_its_reason(data_dir, tmp_path, capsys):
    out, data = tmp_path / "bench.json", small_copy(data_dir, tmp_path / "data")
    code = main(["bench", "--preset", "smoke", "--device", "cpu", "--data", str(data), "--iters", "2",
                 "--train-size", "100", "--set", "val_size=0", "--also", "amp=false", "--matmul-size", "128",
                 "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.read_text())
    bf16, reason = precision.cpu_bf16_decision()
    assert result["colorlib_precision"] == ("bfloat16" if bf16 else "float32")
    assert result["colorlib_precision_reason"] == reason and reason
    assert f"colorlib precision: {result['colorlib_precision']} ({reason})" in stdout
    assert result["iterations_timed"] == 2 and result["timing"]["rounds"] == 2
    rounds = result["timing"]["images_per_s_by_round"]
    assert list(rounds) == ["tutorial loop", "colorlib", "colorlib with amp=false"]
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in rounds.values())
    (alternative,) = result["alternatives"]
    assert alternative["overrides"] == {"amp": False} and alternative["precision"] == "float32"
    assert len(result["speedup_by_round"]) == len(alternative["speedup_by_round"]) == 2
    assert min(result["speedup_by_round"]) <= result["speedup"] <= max(result["speedup_by_round"])
    assert result["speedup_overall"] > 0 and alternative["speedup_overall"] > 0
    for key in ("naive_train_images_per_s", "colorlib_train_images_per_s", "speedup"):
        assert math.isfinite(result[key]) and result[key] > 0
    assert "colorlib with amp=false" in stdout and "speed-up" in stdout
    assert torch.get_num_threads() == 1  # the thread count the tests set is restored

    # the arithmetic: the count is the one of a smoke iteration at batch 50, the rates follow from it
    cfg = make_config("smoke", data=str(data), device="cpu", train_size=100, val_size=0)
    flops = bench.training_flops(cfg, bench.training_images(cfg)[:cfg.batch_size])
    assert result["training_flop_per_iteration"] == flops > 0
    for loop in ("naive", "colorlib"):
        expected = flops / 50 * result[f"{loop}_train_images_per_s"] / 1e12
        assert result[f"{loop}_train_tflop_per_s"] == pytest.approx(expected, rel=1e-2)
    assert result["matmul_size"] == 128 and result["matmul_threads"] == 1 and result["matmul_fp32_tf32"] is False
    for dtype in ("bf16", "fp32"):
        matmul = result[f"matmul_{dtype}_tflop_per_s"]
        assert math.isfinite(matmul) and matmul > 0
        assert result[f"colorlib_share_of_{dtype}_matmul"] == pytest.approx(
            result["colorlib_train_tflop_per_s"] / matmul, rel=1e-2)
    where = f"on {result['device_name']} (cpu, 1 threads)"
    lines = stdout.splitlines()
    for label in ("training TFLOP/s, colorlib", "training TFLOP/s, tutorial loop", "matmul 128x128 bf16 TFLOP/s",
                  "matmul 128x128 float32 TFLOP/s"):
        (line,) = [x for x in lines if label in x]
        assert where in line
    assert sum("share of the" in x for x in lines) == 2
    (count,) = [x for x in lines if "training FLOPs per iteration (FlopCounterMode, float32, batch 50)" in x]
    assert count.endswith(f"  {flops:.3e}")


def hand_written_networks(cfg):
    """G, D and their Adams as a reader of the paper would build them from cfg.seed."""
    torch.manual_seed(cfg.seed)
    G, D = build_generator(cfg), build_discriminator(cfg)
    adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    return G, D, torch.optim.Adam(G.parameters(), **adam), torch.optim.Adam(D.parameters(), **adam)


def test_the_reference_loop_is_the_papers_iteration_on_a_dataloaders_batches():
    cfg, images = tiny_config(), random_images(10, size=32)
    steps = bench.naive_loop(cfg, images, CPU)
    first = next(steps)

    (batch,) = next(iter(bench.reference_loader(images, cfg)))  # the loader's order is seeded: the same batch
    assert batch.shape == (4, 3, 32, 32) and batch.dtype == torch.uint8
    G, D, g_opt, d_opt = hand_written_networks(cfg)
    gray, rgb = to_model_range(batch)
    expected = training_iteration(G, D, g_opt, d_opt, gray, rgb, PaperObjective(cfg.lam), cfg.d_steps)
    assert torch.equal(first, expected)

    second = next(steps)  # the loop goes on, on the next batch with the updated networks
    assert second.shape == (5,) and not torch.equal(second, first)
    steps.close()


def test_the_reference_loaders_batches_are_shuffled_by_the_seed_and_drop_the_rest():
    cfg, images = tiny_config(), random_images(10, size=8)
    rows = {tuple(img.flatten().tolist()): i for i, img in enumerate(images)}

    def epochs(cfg, n=2):
        loader = bench.reference_loader(images, cfg)
        return [[[rows[tuple(img.flatten().tolist())] for img in batch] for (batch,) in loader] for _ in range(n)]

    first, second = epochs(cfg)
    assert len(first) == len(second) == 2  # 10 images: two full batches of 4, the last 2 dropped
    assert len({i for b in first for i in b}) == 8 and first != second  # no repeats; a new order each epoch
    assert epochs(cfg) == [first, second]  # seeded: the same again
    assert epochs(tiny_config(seed=1))[0] != first


def test_the_reference_loop_and_the_trainer_agree_bitwise_in_float32(small_folder, tmp_path):
    cfg = make_config("smoke", data=str(small_folder), device="cpu", train_size=40, val_size=0, batch_size=8,
                      amp=False, channels_last=False)
    images = bench.training_images(cfg)
    (batch,) = next(iter(bench.reference_loader(images, cfg)))
    with Trainer(cfg, tmp_path / "run", progress=False) as trainer:
        assert torch.equal(trainer.images, images)  # the same training images
        ours = trainer.step(*to_model_range(batch))
    assert torch.equal(next(bench.naive_loop(cfg, images, CPU)), ours)


def test_the_trainer_loop_follows_the_engines_epoch_order():
    class Recorder:  # a trainer that notes the batches it is given
        cfg, device, images, batches = tiny_config(seed=3), CPU, torch.zeros(10, 3, 8, 8, dtype=torch.uint8), []

        def train_step(self, index):
            self.batches.append(index.tolist())
            return torch.zeros(5)

    trainer = Recorder()
    steps = bench.trainer_loop(trainer)
    for _ in range(4):  # two epochs of two batches
        next(steps)
    orders = [epoch_order(10, epoch, 3).tolist() for epoch in (0, 1)]
    assert trainer.batches == [orders[0][:4], orders[0][4:8], orders[1][:4], orders[1][4:8]]


def test_the_flop_count_is_one_training_iteration_and_scales_with_the_batch():
    cfg = tiny_config()
    two, four = (bench.training_flops(cfg, random_images(n, size=32)) for n in (2, 4))
    assert two > 0 and four == 2 * two
    G, D, _, _ = hand_written_networks(cfg)
    gray, rgb = to_model_range(random_images(2, size=32))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        G(gray), D(gray, rgb)
    forward = counter.get_total_flops()
    # backward passes cost about twice their forward; D runs on 2 pairs per update (2 updates)
    # and once more for G's update: well above three forward passes of both networks
    assert 3 * forward < two < 20 * forward
    rng = torch.get_rng_state()
    bench.training_flops(cfg, random_images(2, size=32))
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random numbers are left alone


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_matmul_ceiling_is_measured(dtype):
    threads = torch.get_num_threads()
    tflops = bench.matmul_tflops(CPU, dtype, size=64, repeats=2)
    assert math.isfinite(tflops) and tflops > 0 and torch.get_num_threads() == threads


def test_the_table_says_each_flop_number_and_where_it_was_measured():
    result = {"device_name": "Some CPU", "device": "cpu", "threads": 2, "batch_size": 50, "matmul_size": 2048,
              "matmul_threads": 1, "matmul_fp32_tf32": False, "colorlib_precision": "bfloat16",
              "training_flop_per_iteration": 45_199_360_000, "colorlib_train_tflop_per_s": 0.0123,
              "naive_train_tflop_per_s": 0.00456, "matmul_bf16_tflop_per_s": 0.43, "matmul_fp32_tflop_per_s": 0.098,
              "colorlib_share_of_bf16_matmul": 0.0286, "colorlib_share_of_fp32_matmul": 0.126}
    rows = dict(bench._flop_rows(result))
    assert rows == {
        "training FLOPs per iteration (FlopCounterMode, float32, batch 50)": "4.520e+10",
        "training TFLOP/s, colorlib (bfloat16) on Some CPU (cpu, 1 threads)": "0.0123",
        "training TFLOP/s, tutorial loop (float32) on Some CPU (cpu, 2 threads)": "0.00456",
        "matmul 2048x2048 bf16 TFLOP/s (best of a few) on Some CPU (cpu, 1 threads)": "0.43",
        "matmul 2048x2048 float32 TFLOP/s (best of a few) on Some CPU (cpu, 1 threads)": "0.098",
        "colorlib training FLOP/s as a share of the bf16 matmul's": "2.86%",
        "colorlib training FLOP/s as a share of the float32 matmul's": "12.6%"}
    assert bench._flop_rows({"device": "cpu"}) == []  # a result from before the arithmetic was measured


def test_without_bf16_units_the_float32_matmul_is_the_ceiling(monkeypatch):
    # a CPU whose bf16 matmul is emulated (AVX2 only): bf16 is timed small, and its share not printed
    speed = {torch.float32: 0.14, torch.bfloat16: 0.0003}
    sizes = []
    monkeypatch.setattr(bench, "matmul_tflops", lambda dev, dtype, size, repeats: sizes.append((dtype, size))
                        or speed[dtype])
    matmul, bf16_size = bench._matmul_ceilings(CPU, 2048)
    assert matmul == {"fp32": 0.14, "bf16": 0.0003} and bf16_size == 512
    assert (torch.bfloat16, 2048) not in sizes
    speed[torch.bfloat16] = 0.5  # bf16 units: the large product is timed in bf16 too
    sizes.clear()
    assert bench._matmul_ceilings(CPU, 2048) == ({"fp32": 0.14, "bf16": 0.5}, 2048)
    assert (torch.bfloat16, 2048) in sizes
    result = {"device_name": "Some CPU", "device": "cpu", "threads": 2, "batch_size": 50, "matmul_size": 2048,
              "matmul_bf16_size": 512, "matmul_threads": 2, "matmul_fp32_tf32": False,
              "colorlib_precision": "float32", "training_flop_per_iteration": 45_199_360_000,
              "colorlib_train_tflop_per_s": 0.066, "naive_train_tflop_per_s": 0.064,
              "matmul_bf16_tflop_per_s": 0.0003, "matmul_fp32_tflop_per_s": 0.14, "ceiling": "fp32",
              "colorlib_share_of_bf16_matmul": 220.0, "colorlib_share_of_fp32_matmul": 0.471}
    rows = dict(bench._flop_rows(result))
    assert rows["matmul 512x512 bf16 TFLOP/s (best of a few) on Some CPU (cpu, 2 threads)"] == "0.0003"
    assert rows["colorlib training FLOP/s as a share of the bf16 matmul's"].startswith("n/a (bf16 matmul slower")
    assert rows["colorlib training FLOP/s as a share of the float32 matmul's"] == "47.1%"


@pytest.fixture
def probes(monkeypatch):
    """Fake CPU probes: set `probes.units`, `probes.amx`, `probes.speedup` (a number, or an
    exception to raise); `probes.calibrations` counts the calibrations run."""
    class Probes:
        units, amx, speedup, calibrations = True, False, 1.5, 0

    def calibrate():
        Probes.calibrations += 1
        if isinstance(Probes.speedup, Exception):
            raise Probes.speedup
        return Probes.speedup

    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(precision, "_cpu_bf16", None)  # undecided; restored after the test
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: Probes.units)
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: Probes.amx)
    monkeypatch.setattr(precision, "calibrate_cpu_bf16", calibrate)
    return Probes


@pytest.mark.parametrize("units, amx, speedup, bf16, words, calibrated", [
    (False, False, 9.0, False, "no bf16 units", False),  # emulated bf16: never, nothing measured
    (False, None, 9.0, False, "emulated", False),
    (True, True, 0.5, True, "AMX bf16 tiles", False),  # AMX: always, nothing measured
    (True, False, 1.5, True, "AVX512-BF16 without AMX; calibrated: bf16 1.50x", True),
    (True, False, 1.05, False, "below the 1.1x", True),  # too small a gain for bf16's rounding
    (True, False, 0.77, False, "bf16 0.77x", True),  # the 2-core Xeon of the issue
    (True, None, 1.3, True, "AMX unknown; calibrated: bf16 1.30x", True),
    (True, False, RuntimeError("oneDNN says no\nmore"), False, "calibration failed (RuntimeError: oneDNN says no)",
     True),
])
def test_cpu_precision_decision(probes, units, amx, speedup, bf16, words, calibrated):
    probes.units, probes.amx, probes.speedup = units, amx, speedup
    chosen, reason = precision.cpu_bf16_decision()
    assert chosen is bf16 and words in reason
    assert probes.calibrations == calibrated
    assert precision.cpu_bf16_decision() == (chosen, reason) and probes.calibrations == calibrated  # cached
    factory = precision.autocast_for(torch.device("cpu"))
    assert (factory.precision, factory.reason) == ("bfloat16" if bf16 else "float32", reason)
    with factory():
        assert torch.is_autocast_enabled("cpu") is bf16


@pytest.mark.parametrize("value, bf16", [("1", True), ("on", True), ("0", False), ("false", False)])
def test_the_environment_pins_the_cpu_precision(probes, monkeypatch, value, bf16):
    monkeypatch.setenv(precision.CPU_BF16_ENV, value)
    probes.units, probes.amx, probes.speedup = True, False, RuntimeError("must not be measured")
    assert precision.cpu_bf16_decision() == (bf16, f"pinned by ${precision.CPU_BF16_ENV}={value}")
    assert probes.calibrations == 0


def test_an_unknown_pin_is_a_config_error_never_ignored(probes, monkeypatch):
    from colorlib.runs.config import ConfigError
    monkeypatch.setenv(precision.CPU_BF16_ENV, "maybe")
    with pytest.raises(ConfigError, match=r"\$COLORLIB_CPU_BF16='maybe' is not valid: use 1 .* or 0"):
        precision.cpu_bf16_decision()
    assert probes.calibrations == 0


def test_other_devices_say_their_precision():
    mps = precision.autocast_for(torch.device("mps"))
    assert mps.precision == "float32" and "mps" in mps.reason
    with mps():
        assert not torch.is_autocast_enabled("cpu")
    assert precision.autocast_for(torch.device("cuda")).precision == "bfloat16"


def test_the_capability_probe_answers():
    assert precision.cpu_has_amx() in (True, False, None)
    assert precision.cpu_has_bf16_units() in (True, False)


def test_calibration_measures_and_leaves_the_process_as_it_was():
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    speedup = precision.calibrate_cpu_bf16(rounds=1, batch=2)
    assert math.isfinite(speedup) and speedup > 0
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng)
