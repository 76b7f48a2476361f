"""Config: presets, overrides from Python and the command line, and the errors users see."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from colorlib.cli import main as cli_main
from colorlib.runs.config import (CHOICES, FIELD_NAMES, Config, ConfigError, config_from_dict, make_config,
                                  parse_override)
from colorlib.paper.config import PRESETS


def test_paper_preset_is_the_papers_schedule():
    # Sec. IV-B: all of CIFAR-10, batch 50, 100 epochs, two D steps per G step, Adam defaults
    cfg = make_config("paper")
    assert (cfg.train_size, cfg.batch_size, cfg.epochs, cfg.d_steps) == (None, 50, 100, 2)
    assert (cfg.lr, cfg.beta1, cfg.beta2) == (1e-3, 0.9, 0.999)
    assert cfg.content_loss == "cosine" and cfg.adv_weight == 1.0
    assert cfg.preset == "paper"


def test_presets_apply_overrides_and_record_their_name():
    cfg = make_config("smoke", epochs=5, lr=2e-4)
    assert (cfg.epochs, cfg.lr, cfg.preset) == (5, 2e-4, "smoke")
    assert cfg.train_size == PRESETS["smoke"]["train_size"]


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'") as err:
        make_config("nope")
    for name in PRESETS:
        assert name in str(err.value)


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="learning_rate") as err:
        make_config("smoke", learning_rate=1e-3)
    for name in FIELD_NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("text, expected", [
    ("lr=2e-4", ("lr", 2e-4)),
    ("epochs=3", ("epochs", 3)),
    ("lam=10", ("lam", 10.0)),
    ("amp=false", ("amp", False)),
    ("amp=Yes", ("amp", True)),
    ("channels_last=0", ("channels_last", False)),
    ("norm=fan", ("norm", "fan")),
    ("train_size=500", ("train_size", 500)),
    ("train_size=none", ("train_size", None)),
    ("data=None", ("data", None)),
    ("data=some/folder", ("data", "some/folder")),
    ("g-width = 16", ("g_width", 16)),  # dashes as on a command line, spaces tolerated
])
def test_parse_override_casts_to_the_fields_type(text, expected):
    name, value = parse_override(text)
    assert (name, value) == expected
    assert type(value) is type(expected[1])


@pytest.mark.parametrize("text, message", [
    ("lr", "must look like name=value"),
    ("epochs=three", "expected a value like"),
    ("epochs=1.5", "expected a value like"),
    ("amp=maybe", "expected a value like"),
    ("learning_rate=1", "unknown config field 'learning_rate'"),
])
def test_parse_override_rejects_bad_text(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_override(text)


@pytest.mark.parametrize("overrides, message", [
    (dict(epochs=-1), "epochs must be 0 or more"),
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(d_steps=0), "d_steps must be at least 1"),
    (dict(train_size=10, batch_size=50), "smaller than one batch"),
    (dict(g_depth=6), "g_depth=6"),
    (dict(lr=0.0), "lr must be positive"),
    (dict(lam=-1.0), "lam and adv_weight non-negative"),
])
def test_invalid_values_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config("smoke", **overrides)


@pytest.mark.parametrize("field", [name for name, allowed in CHOICES.items() if allowed])
def test_invalid_choice_lists_the_valid_ones(field):
    with pytest.raises(ConfigError) as err:
        make_config("smoke", **{field: "nonsense"})
    for allowed in CHOICES[field]:
        assert allowed in str(err.value)


def test_zero_epochs_is_allowed():
    assert make_config("smoke", epochs=0).epochs == 0


def test_config_round_trips_through_a_dict_and_ignores_unknown_keys():
    cfg = make_config("quick", norm="fan", lam=7.5)
    saved = {**cfg.to_dict(), "field_from_a_later_version": 1}
    assert config_from_dict(saved) == cfg
    old = cfg.to_dict()
    del old["ema_decay"]  # a config saved before this field existed gets its default
    assert config_from_dict(old).ema_decay == Config().ema_decay


def _cli(repo_root, *args: str) -> subprocess.CompletedProcess:
    """The real entry point, `python -m colorlib ...`, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    return subprocess.run([sys.executable, "-m", "colorlib", *args], capture_output=True, text=True,
                          cwd=repo_root, env=env, timeout=120)


@pytest.mark.slow
def test_cli_unknown_preset_exits_2_with_the_valid_names(repo_root, tmp_path):
    run_dir = tmp_path / "run"
    result = _cli(repo_root, "train", "--preset", "nope", "--run-dir", str(run_dir), "--no-progress")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: unknown preset 'nope'") and "Traceback" not in result.stderr
    for name in PRESETS:
        assert name in result.stderr
    assert not run_dir.exists()  # a refused configuration leaves nothing behind


@pytest.mark.parametrize("override", ["learning_rate=1", "lr=fast"])
def test_cli_bad_set_exits_2_with_the_valid_fields(tmp_path, capsys, override):
    # in-process: the same main() that `python -m colorlib` exits with, without a second interpreter
    run_dir = tmp_path / "run"
    assert cli_main(["train", "--preset", "smoke", "--set", override, "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    if override.startswith("learning_rate"):
        assert "unknown config field 'learning_rate'" in err
        for name in FIELD_NAMES:
            assert name in err
    else:
        assert "lr='fast': expected a value like 0.001" in err
    assert not run_dir.exists()
