"""Everything the paper leaves open or does not have, as objects the paper's classes are given: the
build_* functions turn a config's names (norm="fan", output="classes", r1_gamma=0.1, ...) into them, and
at the paper's values return the paper's own (batch norm, RGB output, PaperObjective, no weight average).
"""
from __future__ import annotations

from torch import nn

from ..paper.models import (BatchNorm, Discriminator, Generator, batch_norm_layers, global_logit, init_weights,
                            unchanged)
from ..paper.data import to_model_range
from ..paper.losses import PaperObjective
from .cifar_classifier import SHIPPED_CLASSIFIER
from .color import rgb_to_ycbcr
from .ema import NoAverage, WeightAverage
from .heads import ChromaClassesOutput, YCbCrOutput
from .norms import FeatureAwareNorm, FrozenFeatures, InstanceNorm, SpadeNorm, instance_norm_layers, no_norm_layers
from .objectives import CONTENT_LOSSES, ChromaClassesLoss, GANObjective, R1Objective, RegressionObjective

# the config's names -> the generator's normalization factories (None: no normalization)
GENERATOR_NORMS = {"batch": BatchNorm, "instance": InstanceNorm, "fan": FeatureAwareNorm, "spade": SpadeNorm,
                   "none": None}
OUTPUTS = {"rgb": lambda cfg: None, "ycbcr": lambda cfg: YCbCrOutput(),
           "classes": lambda cfg: ChromaClassesOutput(cfg.chroma_temperature)}
DISCRIMINATOR_NORMS = {"batch": batch_norm_layers, "instance": instance_norm_layers,
                       "spectral": no_norm_layers, "none": no_norm_layers}


def patch_logits(channels: int, side: int) -> nn.Module:
    """PatchGAN (pix2pix): one logit per location, each judging its receptive field."""
    return nn.Conv2d(channels, 1, 3, padding=1)


def build_generator(cfg) -> Generator:
    """The generator `cfg` describes, DCGAN-initialised (FAN's fixed network keeps the classifier's weights)."""
    features = FrozenFeatures() if cfg.norm == "fan" else None
    g = Generator(cfg.g_width, cfg.g_depth, norm=GENERATOR_NORMS[cfg.norm], output=OUTPUTS[cfg.output](cfg),
                  features=features)
    init_weights(g)
    if features is not None:
        features.load_classifier(SHIPPED_CLASSIFIER)
    return g


def build_discriminator(cfg) -> Discriminator:
    d = Discriminator(cfg.d_width, cfg.d_depth, norm=DISCRIMINATOR_NORMS[cfg.d_norm],
                      conv_bias=cfg.d_norm in ("none", "spectral"),
                      wrap=nn.utils.parametrizations.spectral_norm if cfg.d_norm == "spectral" else unchanged,
                      final=global_logit if cfg.d_arch == "global" else patch_logits)
    init_weights(d)
    return d


PAPER_OBJECTIVE = dict(content_loss="cosine", adv_weight=1.0, label_smoothing=0.0, r1_gamma=0.0, output="rgb")


def build_objective(cfg, G: Generator):
    """What D and G minimise: the paper's eq. (3)-(5) where `cfg` keeps its choices, else the variant."""
    if all(getattr(cfg, k) == v for k, v in PAPER_OBJECTIVE.items()):
        return PaperObjective(cfg.lam)
    content = ChromaClassesLoss(G.output) if cfg.output == "classes" else CONTENT_LOSSES[cfg.content_loss]
    parts = dict(lam=cfg.lam, content=content, adv_weight=cfg.adv_weight, label_smoothing=cfg.label_smoothing)
    if cfg.adv_weight == 0:
        return RegressionObjective(**parts)
    return R1Objective(cfg.r1_gamma, **parts) if cfg.r1_gamma > 0 else GANObjective(**parts)


def discriminator_steps(cfg) -> int:
    """D updates per iteration: none for the regression baseline, which has no adversary."""
    return cfg.d_steps if cfg.adv_weight > 0 else 0


def build_average(cfg, G: nn.Module):
    return WeightAverage(G, cfg.ema_decay) if cfg.ema_decay > 0 else NoAverage(G)


def fit_to_data(G: Generator, images) -> None:
    """What a generator learns from the training images before training: the class-rebalancing
    prior of a chroma-classes head (from the first 5,000 images' colours); nothing otherwise."""
    if isinstance(G.output, ChromaClassesOutput):
        _, rgb = to_model_range(images[:5000])
        G.output.bins.fit_prior(rgb_to_ycbcr(rgb)[:, 1:])
