"""colorlib: the GAN colorizer of "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization", as a small library behind the tutorial notebooks.

Its folders are layers (docs/library.md); import from the one a name lives in. This file imports
nothing, so the command line starts before PyTorch is loaded.
"""

__version__ = "0.1.0"
