"""colorlib: the GAN colorizer of "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization", as a small library behind the tutorial notebooks.

Its folders are layers, each importing only those before it: paper, runs, variants, engine or
inference, lab, cli (docs/library.md maps them). Import from the layer a name lives in, e.g.
`from colorlib.runs.config import make_config`. This file imports nothing, so the command line
starts before PyTorch is loaded.
"""

__version__ = "0.1.0"
