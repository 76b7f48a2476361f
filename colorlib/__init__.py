"""colorlib: the GAN colorizer of "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization", as a small library behind the tutorial notebooks.

The folders are the layers, each importing only those below it:

    paper/      the paper's method: config, data transforms, U-Net and discriminator, eq. (3)-(5),
                one training iteration (torch only)
    runs/       the configuration every command shares, datasets, the run-directory format, devices
    variants/   what the paper leaves open, as objects its classes are given (FAN, SPADE, YCbCr
                and chroma-class outputs, spectral norm, PatchGAN, R1, EMA, ...)
    engine/     the loop around the paper's iteration: epochs, checkpoints, exact resume, Ctrl-C,
                bf16, CUDA graphs, torchrun
    inference/  colorize photos with a trained generator (never imports the engine)
    lab/        evaluation, the judge classifier's training, studies, benchmark, figures, shipping
    cli/        `python -m colorlib ...`
"""
from __future__ import annotations

from .engine.trainer import Trainer, TrainingDiverged, train
from .inference.checkpoints import load_generator
from .paper.config import PRESETS
from .paper.data import to_model_range, to_uint8
from .paper.losses import cosine_similarity_loss, discriminator_loss, generator_loss
from .paper.models import Discriminator, Generator, count_parameters
from .paper.step import training_iteration
from .runs.config import Config, ConfigError, make_config
from .runs.data import DataError, load_split
from .runs.device import pick_device
from .runs.rundir import RunDirError
from .variants import build_discriminator, build_generator

__version__ = "0.1.0"

__all__ = ["Trainer", "TrainingDiverged", "train", "load_generator", "PRESETS", "to_model_range", "to_uint8",
           "cosine_similarity_loss", "discriminator_loss", "generator_loss", "Discriminator", "Generator",
           "count_parameters", "training_iteration", "Config", "ConfigError", "make_config", "DataError",
           "load_split", "pick_device", "RunDirError", "build_discriminator", "build_generator", "__version__"]
