"""The fixed CIFAR-10 classifier behind semantic accuracy and the feature distance: augmentation,
inputs, its save/load contract and its command."""
from __future__ import annotations

import pytest
import torch
from conftest import random_images

from colorlib.variants.cifar_classifier import (CLASSIFIER_FORMAT, CifarClassifier, ClassifierError,
                                                load_classifier)
from colorlib.lab.classifier import random_crop_flip
from colorlib.cli import main as cli_main


def test_random_crop_flip_keeps_shape_and_content():
    flat = torch.full((6, 3, 32, 32), 51, dtype=torch.uint8)
    out = random_crop_flip(flat, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 51 / 255))
    # every output row is a (possibly mirrored) window of the reflect-padded input row
    ramp = torch.arange(32, dtype=torch.uint8).view(1, 1, 1, 32).expand(4, 3, 32, 32).contiguous()
    out = (random_crop_flip(ramp, generator=torch.Generator().manual_seed(1)) * 255).round()
    steps = out[:, 0, 0, 1:] - out[:, 0, 0, :-1]
    assert ((steps.abs() == 1) | (steps == 0)).all()


def test_classifier_accepts_uint8_and_unit_float_alike():
    model = CifarClassifier(widths=(8, 16, 16)).eval()
    x = random_images(n=3, size=32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.float() / 255), atol=1e-6)
        assert model(x).shape == (3, 10) and model.features(x).shape == (3, 16)


def test_classifier_trains_saves_and_loads_with_weights_only(tiny_classifier):
    path, info = tiny_classifier
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == CLASSIFIER_FORMAT and ckpt["epochs"] == 2
    assert ckpt["arch"]["widths"] == [8, 16, 16] and len(ckpt["classes"]) == 10
    assert 0.0 <= ckpt["test_accuracy"] <= 1.0 and ckpt["test_accuracy"] == info["test_accuracy"]
    assert all(v.dtype != torch.float32 for v in ckpt["state_dict"].values())  # stored as float16
    model = load_classifier(path)
    assert not model.training and model.classes == ckpt["classes"]
    assert model(random_images(n=2, size=32)).shape == (2, 10)


def test_load_classifier_explains_bad_files(tmp_path):
    with pytest.raises(ClassifierError, match="train-classifier"):
        load_classifier(tmp_path / "missing.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ClassifierError, match="not a colorlib classifier"):
        load_classifier(tmp_path / "other.pt")


def test_train_classifier_cli_tiny_run(small_folder, tmp_path, capsys):
    out = tmp_path / "c.pt"
    assert cli_main(["train-classifier", "--data", str(small_folder), "--out", str(out), "--epochs", "1",
                     "--train-size", "50", "--widths", "8,8,8", "--device", "cpu"]) == 0
    assert "test top-1" in capsys.readouterr().out and out.exists()
