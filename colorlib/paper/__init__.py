"""The paper's method, and nothing else: "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization". Read in this order:

    config.py   the hyperparameters (Sec. IV-B) and the presets
    data.py     the transforms: BT.601 luma as the gray input, pixels in [-1, 1]
    models.py   the U-Net generator (Fig. 1) and the conditional discriminator (Fig. 2)
    losses.py   eq. (3)-(5) and the objective the iteration optimises
    step.py     one training iteration: the only copy of the algorithm

Only the standard library and torch are imported here. Import each name from its module
(`from colorlib.paper.step import training_iteration`); this file imports nothing, so reading
the configuration (config.py) never loads torch.
"""
