"""colorlib: the GAN colorizer of "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization", as a small library behind the tutorial notebooks.

The folders are the layers, each importing only those above it in this list:

    paper/      the paper's method: config, data transforms, U-Net and discriminator, eq. (3)-(5),
                one training iteration (torch only)
    runs/       the configuration every command shares, datasets, the run-directory format, devices
    variants/   what the paper leaves open (FAN, SPADE, YCbCr and chroma-class outputs, R1, EMA, ...)
    engine/     the loop around the paper's iteration: epochs, checkpoints, exact resume, Ctrl-C
    inference/  colorize photos with a trained generator (never imports the engine)
    lab/        evaluation, the judge classifier, studies, benchmark, figures, shipping
    cli/        `python -m colorlib ...`

Import from the layer a name lives in, e.g. `from colorlib.runs.config import make_config`. This
file imports nothing, so the command line starts before PyTorch is loaded.
"""

__version__ = "0.1.0"
