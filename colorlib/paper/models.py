"""The generator (paper Fig. 1) and the discriminator (Fig. 2), as the paper describes them.

The paper names the parts but not the layers, so we follow pix2pix (Isola et al. 2017), the
U-Net GAN that its description matches: 4x4 stride-2 convolutions down, 4x4 stride-2 transposed
convolutions up, encoder features concatenated onto the decoder at each level, LeakyReLU(0.2) in
the encoder, ReLU in the decoder, tanh to 3 channels, batch normalization, DCGAN weight init.

What the paper leaves open plugs in as objects, never as `if`s in these classes: the generator
is given how to normalize (`norm`: a factory of modules called as norm(h, cond)), what steers the
normalizations (`features`: the gray image itself here; fixed features of it for FAN) and how
its last layer becomes an image (`output`). The discriminator is given its normalization layers,
a wrapper for its convolutions and its final layer. colorlib.variants holds the alternatives
(instance norm, FAN, SPADE, YCbCr and chroma-class outputs, spectral norm, PatchGAN).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm(nn.Module):
    """Batch normalization behind the interface every normalization here has: norm(h, cond).
    `cond` is what feature-aware variants are steered by; batch norm does not read it."""

    def __init__(self, channels: int, side: int = 0):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, h: torch.Tensor, cond) -> torch.Tensor:
        return self.norm(h)


class NoNorm(nn.Module):
    """No normalization (pix2pix's innermost block: at 2x2 the statistics are degenerate)."""

    def forward(self, h: torch.Tensor, cond) -> torch.Tensor:
        return h


NormFactory = Callable[[int, int], nn.Module]  # (channels, side in pixels) -> norm(h, cond)


class Down(nn.Module):
    """Encoder block: conv 4x4 stride 2 -> norm -> LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, norm: Optional[NormFactory], side: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=norm is None)  # a norm's shift replaces the bias
        self.norm = NoNorm() if norm is None else norm(cout, side)

    def forward(self, h, cond):
        return F.leaky_relu(self.norm(self.conv(h), cond), 0.2)


class Up(nn.Module):
    """Decoder block: transposed conv 4x4 stride 2 -> norm -> ReLU."""

    def __init__(self, cin: int, cout: int, norm: Optional[NormFactory], side: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=norm is None)
        self.norm = NoNorm() if norm is None else norm(cout, side)

    def forward(self, h, cond):
        return F.relu(self.norm(self.conv(h), cond))


class RGBOutput(nn.Module):
    """The paper's output: tanh of the last layer, an RGB image in [-1, 1]."""
    channels = 3

    def forward(self, last: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        return torch.tanh(last)


class Generator(nn.Module):
    """U-Net: grayscale [B, 1, 32, 32] in [-1, 1] -> colour [B, 3, 32, 32] in [-1, 1] (eq. 1)."""

    def __init__(self, width: int = 64, depth: int = 4, norm: Optional[NormFactory] = BatchNorm,
                 output: Optional[nn.Module] = None, features: Optional[nn.Module] = None, image_size: int = 32):
        super().__init__()
        # what the normalizations are steered by: the gray input itself, or (FAN) a fixed network's features of it
        self.features = nn.Identity() if features is None else features
        chans = [width * 2 ** min(i, 3) for i in range(depth)]  # 64, 128, 256, 512, 512 ...
        # the outermost block has no norm (pix2pix), nor has the innermost
        self.stem = nn.Conv2d(1, chans[0], 4, stride=2, padding=1)
        self.down = nn.ModuleList(
            Down(chans[i - 1], chans[i], None if i == depth - 1 else norm, image_size >> (i + 1))
            for i in range(1, depth))
        ups = []
        for i in range(depth - 1, 0, -1):  # from the bottleneck up to the second level
            cin = chans[i] if i == depth - 1 else chans[i] * 2  # the skip concatenation doubles the input
            ups.append(Up(cin, chans[i - 1], norm, image_size >> i))
        self.up = nn.ModuleList(ups)
        self.output = RGBOutput() if output is None else output
        self.head = nn.ConvTranspose2d(chans[0] * 2 if depth > 1 else chans[0], self.output.channels, 4,
                                       stride=2, padding=1)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        cond = self.features(gray)
        h = F.leaky_relu(self.stem(gray), 0.2)
        skips = [h]
        for block in self.down:
            h = block(h, cond)
            skips.append(h)
        skips.pop()  # the bottleneck is the decoder's input, not a skip
        for block in self.up:
            h = torch.cat([block(h, cond), skips.pop()], dim=1)
        return self.output(self.head(h), gray)


def batch_norm_layers(channels: int, side: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)]


def global_logit(channels: int, side: int) -> nn.Module:
    """One logit for the whole remaining map: eq. (2)'s single probability per image."""
    return nn.Conv2d(channels, 1, side)


def unchanged(conv: nn.Module) -> nn.Module:
    return conv


class Discriminator(nn.Module):
    """Conditional CNN: (gray, colour) stacked to 4 channels -> one real/fake logit per image.

    Eq. (2) says D outputs a probability; we return the logit and apply the sigmoid inside the
    BCE loss (`binary_cross_entropy_with_logits`): the same function, without the overflow of
    log(sigmoid(.)). Variants pass `norm` (layers after each conv but the first), `conv_bias`
    (biases where no norm shifts), `wrap` (applied to every conv: spectral norm) and `final`.
    """

    def __init__(self, width: int = 64, depth: int = 3, image_size: int = 32,
                 norm: Callable[[int, int], list] = batch_norm_layers, conv_bias: bool = False,
                 wrap: Callable[[nn.Module], nn.Module] = unchanged,
                 final: Callable[[int, int], nn.Module] = global_logit):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 4
        for i in range(depth):
            cout = width * 2 ** min(i, 3)
            layers.append(wrap(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=i == 0 or conv_bias)))
            layers += norm(cout, image_size // 2 ** (i + 1)) if i > 0 else []  # none on the first (pix2pix)
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        layers.append(wrap(final(cin, image_size // 2 ** depth)))
        self.net = nn.Sequential(*layers)

    def forward(self, gray: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        """Logits [B] (or [B, patches] for a patch discriminator); the BCE losses average them."""
        return self.net(torch.cat([gray, color], dim=1)).flatten(1).squeeze(1)


def init_weights(module: nn.Module) -> None:
    """DCGAN / pix2pix init: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0. A fixed
    network inside (FAN's features: parameters frozen) keeps the weights it was given."""
    for m in module.modules():
        if any(not p.requires_grad for p in m.parameters(recurse=False)):
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
