"""colorlib: the GAN colorizer of "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization", as a small library behind the tutorial notebooks.

The names below are imported on first use (PEP 562), so `import colorlib` and the command line
start at once and PyTorch is loaded only when something needs it.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "config": ("PRESETS", "Config", "ConfigError", "make_config"),
    "data": ("DataError", "load_split", "to_model_range", "to_uint8"),
    "losses": ("cosine_similarity_loss", "discriminator_loss", "generator_loss"),
    "models": ("Discriminator", "Generator", "build_discriminator", "build_generator", "count_parameters"),
    "rundir": ("RunDirError",),
    "checkpoints": ("load_generator",),
    "device": ("pick_device",),
    "training": ("Trainer", "TrainingDiverged", "train"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [*_HOME, "__version__"]


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    else:  # a submodule, e.g. `colorlib.metrics` after a plain `import colorlib`
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
