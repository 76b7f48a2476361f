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

Import from the layer a name lives in (every package's __init__ imports its names explicitly):
`from colorlib.paper.models import Generator`, `from colorlib.runs.config import
make_config`, `from colorlib.engine.trainer import Trainer`. This file imports nothing, so the
command line starts before PyTorch is loaded (and Ctrl-C during that load is answered cleanly).
"""

__version__ = "0.1.0"
