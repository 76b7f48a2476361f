"""The generator (paper Fig. 1) and the discriminator (Fig. 2).

The paper names the parts but not the layers, so we follow pix2pix (Isola et al. 2017), the
U-Net GAN that the paper's description matches: 4x4 stride-2 convolutions down, 4x4 stride-2
transposed convolutions up, encoder features concatenated onto the decoder at each level,
LeakyReLU(0.2) in the encoder, ReLU in the decoder, tanh to 3 channels, DCGAN weight init.

Feature-aware normalization. The title promises it and Sec. II-D cites it ([10]: Bug et al.
2017, "Context-based normalization of histological stains using deep convolutional features")
but the method never says where or how it is used. We implement two readings:

- `norm="fan"`, the cited unit as published: normalize without affine parameters, then gate and
  shift with features z of a *fixed* network, h' = BN(h) * sigmoid(f(z)) + g(z), f and g 1x1
  convolutions. Bug et al. take z from a frozen ImageNet VGG; the fixed image network this
  project has is its CIFAR-10 judge classifier (colorlib/weights, trained on colour photos), so z
  are that network's first layers applied to the gray input (32x32: 32 channels, 16x16: 64,
  8x8 and below: 256, average-pooled). The classifier stays frozen (eval mode, no gradients).
  Caveat, measured in notebook 08: the same classifier later judges semantic accuracy and the
  feature distance, so those two scores may favour this variant.
- `norm="spade"`, our earlier reading: SPADE (Park et al. 2019) with the gray image as the
  semantic map, h' = BN(h) * (1 + gamma(X)) + beta(X), gamma and beta predicted per pixel from
  the gray image resized to the block's resolution.

`norm="batch"` (the most likely reading of an unspecified U-Net) and `norm="instance"` (named in
Sec. II-D) are the alternatives. Output heads: `rgb` (the paper), `ycbcr` (predict chroma, keep
the input's luma exactly) and `classes` (chroma as a distribution over quantized bins, Zhang et
al. 2016, see chroma.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .chroma import ChromaBins
from .config import Config
from .color import CHROMA_TO_RGB, ycbcr_to_rgb


class SpadeNorm(nn.Module):
    """SPADE-style normalization modulated by the grayscale input (see module docstring)."""

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        g = F.interpolate(gray, size=h.shape[-2:], mode="area")
        a = self.shared(g)
        return self.norm(h) * (1 + self.gamma(a)) + self.beta(a)


class FrozenFeatures(nn.Module):
    """The first layers of the judge classifier, frozen: gray [B,1,H,W] in [-1,1] -> {side: features}."""

    def __init__(self):
        super().__init__()
        from .classifier import CifarClassifier
        body = CifarClassifier().body
        self.stem, self.block16, self.block8 = body[:3], body[3:10], body[10:17]  # 32, 16, 8 pixels
        self.channels = {32: 32, 16: 64, 8: 256}
        self.requires_grad_(False)
        from .classifier import CIFAR_MEAN, CIFAR_STD
        # buffers, not tensors made in forward: a host-to-device copy cannot be captured in a CUDA graph
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # fixed statistics whatever mode the generator is in
        return super().train(False)

    def load_classifier(self, path) -> None:
        from .classifier import load_classifier
        body = load_classifier(path).body
        self.stem.load_state_dict(body[:3].state_dict())
        self.block16.load_state_dict(body[3:10].state_dict())
        self.block8.load_state_dict(body[10:17].state_dict())

    def forward(self, gray: torch.Tensor) -> dict[int, torch.Tensor]:
        x = gray.add(1).div(2).expand(-1, 3, -1, -1)  # the classifier reads RGB in [0, 1]
        h32 = self.stem((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        h16 = self.block16(h32)
        h8 = self.block8(h16)
        return {32: h32, 16: h16, 8: h8}


def _features_at(z: dict[int, torch.Tensor], side: int) -> torch.Tensor:
    if side in z:
        return z[side]
    return F.adaptive_avg_pool2d(z[8], side)  # 4x4, 2x2, 1x1 from the 8x8 map


class FeatureAwareNorm(nn.Module):
    """FAN as cited (Bug et al. 2017): h' = BN(h) * sigmoid(f(z)) + g(z), z from a fixed network."""

    def __init__(self, channels: int, side: int, feature_channels: int):
        super().__init__()
        self.side = side
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gate = nn.Conv2d(feature_channels, channels, 1)
        self.shift = nn.Conv2d(feature_channels, channels, 1)

    def forward(self, h: torch.Tensor, z: dict[int, torch.Tensor]) -> torch.Tensor:
        feats = _features_at(z, h.shape[-1])
        return self.norm(h) * torch.sigmoid(self.gate(feats)) + self.shift(feats)


class PlainNorm(nn.Module):
    """Batch / instance / no normalization behind the same (h, gray) interface as FAN."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        if kind == "batch":
            self.norm = nn.BatchNorm2d(channels)
        elif kind == "instance":
            self.norm = nn.InstanceNorm2d(channels, affine=True)
        else:
            self.norm = nn.Identity()

    def forward(self, h: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        return self.norm(h)


def make_norm(kind: str, channels: int, side: int) -> nn.Module:
    if kind == "spade":
        return SpadeNorm(channels)
    if kind == "fan":
        return FeatureAwareNorm(channels, side, 32 if side >= 32 else 64 if side >= 16 else 256)
    return PlainNorm(kind, channels)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, side: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=norm == "none")
        self.norm = make_norm(norm, cout, side)

    def forward(self, h, gray):
        return F.leaky_relu(self.norm(self.conv(h), gray), 0.2)


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, side: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=norm == "none")
        self.norm = make_norm(norm, cout, side)

    def forward(self, h, gray):
        return F.relu(self.norm(self.conv(h), gray))


class Generator(nn.Module):
    """U-Net: grayscale [B, 1, 32, 32] in [-1, 1] -> colour [B, 3, 32, 32] in [-1, 1] (eq. 1)."""

    def __init__(self, width: int = 64, depth: int = 4, norm: str = "batch", output: str = "rgb",
                 chroma_temperature: float = 0.38, image_size: int = 32):
        super().__init__()
        self.output = output
        self.chroma_temperature = chroma_temperature
        # the fixed network whose features drive FAN (not trained, but saved with the generator)
        self.features = FrozenFeatures() if norm == "fan" else None
        chans = [width * 2 ** min(i, 3) for i in range(depth)]  # 64, 128, 256, 512, 512 ...
        # the outermost block has no norm (pix2pix); the innermost has none either, since
        # at 1x1 or 2x2 instance statistics are degenerate
        self.stem = nn.Conv2d(1, chans[0], 4, stride=2, padding=1)
        self.down = nn.ModuleList(
            Down(chans[i - 1], chans[i], "none" if i == depth - 1 else norm, image_size >> (i + 1))
            for i in range(1, depth))
        ups = []
        for i in range(depth - 1, 0, -1):  # from the bottleneck up to the second level
            cin = chans[i] if i == depth - 1 else chans[i] * 2  # skip concat doubles the input
            ups.append(Up(cin, chans[i - 1], norm, image_size >> i))
        self.up = nn.ModuleList(ups)
        self.bins = ChromaBins() if output == "classes" else None
        out_channels = {"rgb": 3, "ycbcr": 2, "classes": self.bins.count if self.bins else 0}[output]
        # kept on the model's device so the conversion needs no copy inside a CUDA graph
        self.register_buffer("chroma_to_rgb", CHROMA_TO_RGB.clone(), persistent=False)
        self.head = nn.ConvTranspose2d(chans[0] * 2 if depth > 1 else chans[0], out_channels, 4, stride=2, padding=1)

    def forward(self, gray: torch.Tensor, with_logits: bool = False):
        """RGB in [-1, 1]; with_logits=True (output="classes") also returns the chroma-bin logits."""
        cond = self.features(gray) if self.features is not None else gray  # what the norms are steered by
        h = F.leaky_relu(self.stem(gray), 0.2)
        skips = [h]
        for block in self.down:
            h = block(h, cond)
            skips.append(h)
        skips.pop()  # the bottleneck is the decoder's input, not a skip
        for block in self.up:
            h = block(h, cond)
            h = torch.cat([h, skips.pop()], dim=1)
        logits = None
        if self.output == "classes":  # annealed mean of the predicted chroma distribution
            logits = self.head(h)
            cbcr = self.bins.annealed_mean(logits, self.chroma_temperature)
            out = ycbcr_to_rgb(torch.cat([gray, cbcr.to(gray.dtype)], dim=1), self.chroma_to_rgb.to(gray.dtype))
            out = out.clamp(-1, 1)
        elif self.output == "ycbcr":  # the input's luma with predicted chroma; Cb, Cr span [-1, 1]
            out = torch.tanh(self.head(h))
            out = ycbcr_to_rgb(torch.cat([gray, out], dim=1), self.chroma_to_rgb.to(out.dtype)).clamp(-1, 1)
        else:
            out = torch.tanh(self.head(h))
        return (out, logits) if with_logits else out


class Discriminator(nn.Module):
    """Conditional CNN: (gray, colour) stacked to 4 channels -> one real/fake logit per image.

    Eq. (2) says D outputs a probability; we return the logit and apply the sigmoid inside
    the BCE loss (`binary_cross_entropy_with_logits`), which is the same function, computed
    without the overflow of log(sigmoid(.)).
    """

    def __init__(self, width: int = 64, depth: int = 3, norm: str = "batch", image_size: int = 32,
                 arch: str = "global"):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 4
        for i in range(depth):
            cout = width * 2 ** min(i, 3)
            conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=i == 0 or norm in ("none", "spectral"))
            if norm == "spectral":
                conv = nn.utils.parametrizations.spectral_norm(conv)
            layers.append(conv)
            side_out = image_size // 2 ** (i + 1)
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(cout))
            elif i > 0 and norm == "instance" and side_out > 1:  # one value per channel: nothing to normalize
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        side = image_size // 2 ** depth
        # global: one logit from the whole remaining map (the paper's "a probability");
        # patch: one logit per location, each judging a receptive-field patch (pix2pix)
        final = nn.Conv2d(cin, 1, side) if arch == "global" else nn.Conv2d(cin, 1, 3, padding=1)
        if norm == "spectral":
            final = nn.utils.parametrizations.spectral_norm(final)
        layers.append(final)
        self.net = nn.Sequential(*layers)

    def forward(self, gray: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        """Logits [B] (global) or [B, patches] (patch); the BCE losses average over all of them."""
        return self.net(torch.cat([gray, color], dim=1)).flatten(1).squeeze(1)


def init_weights(module: nn.Module) -> None:
    """DCGAN / pix2pix init: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    fixed = {id(m) for f in module.modules() if isinstance(f, FrozenFeatures) for m in f.modules()}
    for m in module.modules():
        if id(m) in fixed:  # the fixed network keeps its trained weights
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(cfg: Config) -> Generator:
    g = Generator(cfg.g_width, cfg.g_depth, cfg.norm, cfg.output, cfg.chroma_temperature)
    init_weights(g)
    if g.features is not None:  # after init_weights, which would overwrite the fixed network
        from .classifier import SHIPPED_CLASSIFIER
        g.features.load_classifier(SHIPPED_CLASSIFIER)
    return g


def build_discriminator(cfg: Config) -> Discriminator:
    d = Discriminator(cfg.d_width, cfg.d_depth, cfg.d_norm, arch=cfg.d_arch)
    init_weights(d)
    return d


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
