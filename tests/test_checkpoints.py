"""Loading trained generators and the classifier from untrusted files: checked before anything is
allocated or unpickled, and refused with one line (exit 2) by the commands."""
from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from colorlib.inference import checkpoints
from colorlib.inference.checkpoints import load_generator
from colorlib.runs import rundir
from colorlib.runs.config import make_config
from colorlib.variants import build_generator
from colorlib.variants.cifar_classifier import CLASSIFIER_FORMAT, CifarClassifier, ClassifierError, load_classifier
from conftest import one_line, run_cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = make_config("smoke", device="cpu")
    path = tmp_path_factory.mktemp("weights") / "generator.pt"
    torch.save({"format": rundir.GENERATOR_FORMAT, "config": cfg.to_dict(), "epoch": 0,
                "generator": build_generator(cfg).state_dict()}, path)
    return path


def changed(checkpoint, tmp_path, change):
    ckpt = torch.load(checkpoint, weights_only=True)
    change(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("generator"), "'generator'"),  # (rundir words what is missing or damaged)
    (lambda c: c.update(config="smoke"), "'config'"),
    (lambda c: c["config"].update(lr=float("nan")), "has an invalid config (lr=nan"),
    (lambda c: c["config"].update(g_width=16), "does not fit the generator its config describes"),
    (lambda c: c["generator"].update({k: torch.full_like(v, float("nan")) for k, v in c["generator"].items()
                                      if v.is_floating_point()}), "holds non-finite weights (NaN or infinity)"),
])
def test_a_checkpoint_that_cannot_be_used_is_one_line_and_exit_2(checkpoint, tmp_path, capsys, change, message):
    bad = changed(checkpoint, tmp_path, change)
    with pytest.raises(rundir.RunDirError, match=re.escape(message)):
        load_generator(bad)
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    code, _, stderr = run_cli(capsys, "colorize", "--no-progress", tmp_path / "a.png", "-o", tmp_path / "out",
                              "--checkpoint", bad)
    assert code == 2 and message in one_line(stderr) and not (tmp_path / "out").exists()


def test_a_huge_config_is_refused_before_any_large_allocation(checkpoint, tmp_path, monkeypatch):
    """Weights whose config asks for g_width=100000 (terabytes) are compared on the meta device only."""
    bad = changed(checkpoint, tmp_path, lambda c: c["config"].update(g_width=100_000))
    devices, build = [], checkpoints.build_generator

    def recorded(cfg):
        G = build(cfg)
        devices.append(next(G.parameters()).device.type)
        return G

    monkeypatch.setattr(checkpoints, "build_generator", recorded)
    with pytest.raises(rundir.RunDirError, match="does not fit the generator its config describes"):
        load_generator(bad)
    assert devices == ["meta"]


def test_a_pickled_file_is_never_unpickled(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))
    torch.save({"format": rundir.GENERATOR_FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    code, stdout, stderr = run_cli(capsys, "colorize", "--no-progress", tmp_path / "a.png", "-o", tmp_path / "out",
                                   "--checkpoint", tmp_path / "evil.pt")
    line = one_line(stderr)
    assert code == 2 and "unpickled!" not in stdout + stderr
    assert "not a plain-weights file" in line and "trust" in line and "damaged" not in line and "torch.load" not in line


def test_a_classifier_file_is_checked_against_its_own_architecture(tmp_path):
    model = CifarClassifier((8, 16, 16))
    ckpt = {"format": CLASSIFIER_FORMAT, "arch": {"widths": [8, 16, 16], "num_classes": 10, "stem": 32},
            "state_dict": model.state_dict(), "classes": [str(i) for i in range(10)]}
    torch.save(ckpt, tmp_path / "ok.pt")
    assert load_classifier(tmp_path / "ok.pt").classes[0] == "0"
    ckpt["arch"]["widths"] = [100_000, 16, 16]  # terabytes if built
    torch.save(ckpt, tmp_path / "huge.pt")
    with pytest.raises(ClassifierError, match="does not fit its own architecture"):
        load_classifier(tmp_path / "huge.pt")
    with pytest.raises(ClassifierError, match="train-classifier"):
        load_classifier(tmp_path / "missing.pt")
