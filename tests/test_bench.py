"""The benchmark runs end to end and says which precision colorlib chose and why; the CPU
precision decision follows the CPU's bf16 capabilities and, where they leave it open, the
calibration. No timing is asserted here: the speed targets are the benchmark's printed ratios."""

import json
import math
import shutil

import pytest
import torch

from colorlib.engine import precision
from colorlib.cli import main


def small_copy(data_dir, folder, train: int = 20, test: int = 2):
    """The first `train` and `test` images of each class: a folder that lists in milliseconds."""
    for split, n in (("train", train), ("test", test)):
        for cls in sorted(p for p in (data_dir / split).iterdir() if p.is_dir()):
            (folder / split / cls.name).mkdir(parents=True)
            for image in sorted(cls.iterdir())[:n]:
                shutil.copy(image, folder / split / cls.name / image.name)
    return folder


@pytest.mark.slow
def test_bench_runs_on_a_tiny_preset_and_writes_the_precision_and_its_reason(data_dir, tmp_path, capsys):
    out, data = tmp_path / "bench.json", small_copy(data_dir, tmp_path / "data")
    code = main(["bench", "--preset", "smoke", "--device", "cpu", "--data", str(data), "--iters", "2",
                 "--train-size", "100", "--set", "val_size=0", "--also", "amp=false", "--out", str(out)])
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


def test_an_unknown_pin_is_ignored(probes, monkeypatch):
    monkeypatch.setenv(precision.CPU_BF16_ENV, "maybe")
    assert precision.cpu_bf16_decision()[0] is True and probes.calibrations == 1


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
