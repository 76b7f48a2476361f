"""The vividness dial (inference/vividness.py, lab/vividness.py): one number from the safest colours
to as colourful as the training images, calibrated on a validation split and stored with the generator."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from colorlib.inference import colorize, vividness as dial
from colorlib.inference.checkpoints import load_generator
from colorlib.lab import vividness as lab
from colorlib.runs import rundir
from colorlib.runs.config import ConfigError, make_config
from colorlib.runs.data import load_split
from colorlib.variants import build_generator
from conftest import MINI_DATA, one_line, run_cli


def generator_file(path, **config):
    """An untrained smoke-sized generator.pt (calibrating it takes a second)."""
    torch.manual_seed(0)
    cfg = make_config("smoke", device="cpu", **config)
    torch.save({"format": rundir.GENERATOR_FORMAT, "config": cfg.to_dict(), "epoch": 0,
                "generator": build_generator(cfg).state_dict()}, path)
    return path


@pytest.fixture
def quick_sweep(monkeypatch):
    monkeypatch.setattr(lab, "TEMPERATURES", (1.0,))
    monkeypatch.setattr(lab, "GAIN_MAX", 0.5)


def test_the_shipped_calibration_is_monotone_and_its_default_is_the_plain_output():
    G = colorize.load_model()[0]
    cal = dial.calibration_of(G)
    assert cal.calibrated and not cal.record["validation"]["held_out"]  # it trained on all 50,000 images
    assert [k.vividness for k in cal.knots] == sorted(k.vividness for k in cal.knots)
    for a, b in zip(cal.knots, cal.knots[1:]):
        assert b.chroma_gain > a.chroma_gain and b.colourfulness > a.colourfulness and b.psnr_db < a.psnr_db
    assert cal.default == 0.0 and dial.knobs(G) == (1.0, None)  # the generator's own output


def test_the_shipped_dial_orders_colourfulness_and_psnr_on_test_images(data_dir):
    scorer = lab.Scorer(colorize.load_model()[0], load_split(str(data_dir), "test", 50).images)
    low, high = scorer.score(vividness=0.0), scorer.score(vividness=1.0)
    assert high["colourfulness"] > 1.2 * low["colourfulness"] and low["psnr_db"] > high["psnr_db"]


@pytest.mark.parametrize("value", ["abc", "nan", -0.1, True])
def test_a_vividness_outside_zero_to_one_is_refused(value):
    with pytest.raises(ConfigError, match="must be a number from 0"):
        dial.check_vividness(value)


def test_knobs_dial_and_default_mapping(tmp_path):
    G = load_generator(generator_file(tmp_path / "g.pt"))[0]
    assert dial.uncalibrated_note(G) and dial.knobs(G, 0.0) == (0.75, None) and dial.knobs(G) == (1.0, None)
    with pytest.raises(ConfigError, match="not both"):
        dial.knobs(G, 0.5, chroma_gain=1.0)
    with pytest.raises(ConfigError, match="chroma-classes head"):
        dial.knobs(G, temperature=0.5)
    with pytest.raises(ConfigError, match=r"chroma_gain=1e\+39 must be a number from 0 to 100"):
        colorize.colorize_luma(torch.rand(8, 8), G, 8, chroma_gain=1e39)


@pytest.mark.parametrize("gain", [1e39, float("inf"), float("nan"), -1.0])
def test_a_calibration_out_of_range_is_refused_with_one_line_never_black_photos(tmp_path, capsys, gain):
    path = generator_file(tmp_path / "g.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["vividness"] = {**dial.UNCALIBRATED.to_dict(), "knots": [{"vividness": 0.0, "chroma_gain": 1.0},
                                                                   {"vividness": 1.0, "chroma_gain": gain}]}
    torch.save(ckpt, path)
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    code, _, stderr = run_cli(capsys, "colorize", "--no-progress", tmp_path / "a.png", "-o", tmp_path / "out",
                              "--checkpoint", path)
    assert code == 2 and "has a damaged vividness calibration" in one_line(stderr) and not (tmp_path / "out").exists()


def test_calibrating_keeps_everything_else_and_reloads_to_the_same_outputs(tmp_path, data_dir, quick_sweep):
    path = generator_file(tmp_path / "g.pt", output="classes")
    out = lab.calibrate_file(path, tmp_path / "new.pt", data=str(data_dir), limit=10, log=lambda *_: None)
    old, new = torch.load(path, weights_only=True), torch.load(out, weights_only=True)
    assert all(torch.equal(v, new["generator"][k]) for k, v in old["generator"].items())
    assert new.keys() - old.keys() == {"vividness"} and new["config"] == old["config"]
    G = load_generator(out)[0]
    cal = dial.calibration_of(G)
    assert cal.calibrated and cal.knots[0].temperature is not None  # the classes head's temperature is a knob
    assert cal.record["validation"]["held_out"] and cal.record["validation"]["images"] == 10
    luma = torch.rand(2, 16, 16)
    gain, temperature = dial.knobs(G, 0.7)
    assert torch.equal(colorize.colorize_luma(luma, G, 16, vividness=0.7),
                       colorize.colorize_luma(luma, G, 16, chroma_gain=gain, temperature=temperature))
    with pytest.raises(rundir.RunDirError, match="exists; choose another --out"):
        lab.calibrate_file(path, out, data=str(data_dir), limit=10, log=lambda *_: None)


def test_a_generator_trained_on_every_image_of_a_small_data_set_can_be_calibrated(tmp_path, capsys, quick_sweep):
    path = generator_file(tmp_path / "g.pt", val_size=0)  # a run that held nothing out; 300 training images
    code, _, stderr = run_cli(capsys, "vividness-calibrate", path, "--data", MINI_DATA, "--limit", "20")
    line = one_line(stderr)
    assert code == 2 and "val_size=5000" in line and "--val-size N" in line
    assert "val_size=" not in line.split("--val-size")[1]  # the advice names only options the command has
    code, stdout, _ = run_cli(capsys, "vividness-calibrate", path, "--data", MINI_DATA, "--limit", "20",
                              "--val-size", "50")
    assert code == 0 and "calibrated:" in stdout
    assert dial.calibration_of(load_generator(path)[0]).record["validation"]["val_size"] == 50
