"""Config: presets, overrides from Python and the command line, and the errors users see."""
from __future__ import annotations

import pytest

from colorlib.paper.config import PRESETS
from colorlib.runs.config import (CHOICES, FIELD_NAMES, Config, ConfigError, config_from_dict, make_config,
                                  parse_override)
from conftest import one_line, run_cli


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
        assert name in str(err.value) or name == "preset"  # chosen on its own


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
    ("d_lr=1e-4", ("d_lr", 1e-4)),  # an optional float
    ("d_lr=none", ("d_lr", None)),
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
    ("d_lr=fast", "d_lr='fast': expected a value like 0.5"),
])
def test_parse_override_rejects_bad_text(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_override(text)


@pytest.mark.parametrize("field", [name for name, allowed in CHOICES.items() if allowed])
def test_invalid_choice_lists_the_valid_ones(field):
    with pytest.raises(ConfigError) as err:
        make_config("smoke", **{field: "nonsense"})
    for allowed in CHOICES[field]:
        assert allowed in str(err.value)


def test_zero_epochs_is_allowed():
    assert make_config("smoke", epochs=0).epochs == 0


def test_types_are_checked_from_python_and_saved_files():
    with pytest.raises(ConfigError, match=r"lr='0.1' is not valid: expected a finite number"):
        make_config("smoke", lr="0.1")
    with pytest.raises(ConfigError, match="epochs=2.5 is not valid: expected a whole number"):
        make_config("smoke", epochs=2.5)
    with pytest.raises(ConfigError, match="amp='yes' is not valid: expected true or false"):
        config_from_dict({**Config().to_dict(), "amp": "yes"})
    with pytest.raises(ConfigError, match="device=3 is not valid"):
        make_config("smoke", device=3)
    assert make_config("smoke", lam=10).lam == 10  # a whole number is a fine float
    assert make_config("smoke", device="cuda:1").device == "cuda:1"  # no GPU needed to name one


def test_config_round_trips_through_a_dict_and_ignores_unknown_keys():
    cfg = make_config("quick", norm="fan", lam=7.5)
    saved = {**cfg.to_dict(), "field_from_a_later_version": 1}
    assert config_from_dict(saved) == cfg
    old = cfg.to_dict()
    del old["ema_decay"]  # a config saved before this field existed gets its default
    assert config_from_dict(old).ema_decay == Config().ema_decay


@pytest.mark.parametrize("option, message", [
    ("epochs=-1", "epochs must be 0 or more"),
    ("batch_size=0", "batch_size must be at least 1"),
    ("d_steps=0", "d_steps must be at least 1"),
    ("train_size=10", "train_size=10 is smaller than one batch (50)"),
    ("g_depth=6", "g_depth=6"),
    ("lam=-1", "lam=-1.0 is out of range: use 0 or more"),
    ("g_depth=0", "g_depth=0 is out of range: use 1..5"),
    ("preset=paper", "choose it with --preset"),
    ("lr=nan", "lr=nan is not valid: expected a finite number"),
    ("lr=inf", "lr=inf is not valid: expected a finite number"),
    ("lr=-1e-3", "lr must be positive"),
    ("lr=fast", "lr='fast': expected a value like 0.001"),
    ("beta1=2", "beta1=2.0 is out of range: use 0 <= beta1 < 1"),
    ("beta2=1", "beta2=1.0 is out of range"),
    ("d_lr=0", "d_lr=0.0 is out of range: use a positive learning rate"),
    ("d_lr=nan", "d_lr=nan is not valid: expected a finite number"),
    ("r1_gamma=-1", "r1_gamma=-1.0 is out of range"),
    ("label_smoothing=1", "label_smoothing=1.0 is out of range"),
    ("ema_decay=1", "ema_decay=1.0 is out of range"),
    ("chroma_temperature=0", "chroma_temperature=0.0 is out of range"),
    ("val_size=-1", "val_size=-1 is out of range"),
    ("lam=nan", "lam=nan is not valid"),
    ("device=meta", "device='meta' is not valid; use auto, cpu, cuda, cuda:N or mps"),
    ("device=gpu", "device='gpu' is not valid"),
    ("device=cuda:x", "device='cuda:x' is not valid"),
    ("--device=meta", "device='meta' is not valid"),  # the option is checked as --set is
    ("learning_rate=1", "unknown config field 'learning_rate'; valid fields: " + ", ".join(FIELD_NAMES)),
])
def test_train_refuses_a_bad_setting_in_one_line_before_writing_anything(tmp_path, capsys, option, message):
    run_dir = tmp_path / "run"
    argv = [option] if option.startswith("--") else ["--set", option]
    code, stdout, stderr = run_cli(capsys, "train", "--preset", "smoke", *argv, "--run-dir", run_dir, "--no-progress")
    line = one_line(stderr)
    assert code == 2 and stdout == "" and line.startswith("error: ") and message in line, line
    assert not run_dir.exists()
