"""colorlib: the GAN colorizer of "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization", as a small library behind the tutorial notebooks."""
from .config import PRESETS, Config, ConfigError, make_config
from .data import DataError, load_split, to_model_range, to_uint8
from .losses import cosine_similarity_loss, discriminator_loss, generator_loss
from .models import Discriminator, Generator, build_discriminator, build_generator, count_parameters
from .rundir import RunDirError
from .training import Trainer, TrainingDiverged, load_generator, pick_device, train

__version__ = "0.1.0"
