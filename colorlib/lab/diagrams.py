"""The paper's Fig. 1 (the U-Net generator) and Fig. 2 (the conditional discriminator), drawn
from a built model rather than by hand.

Every box names a module of the model, the kinds of layer it holds and the shape (channels x
height x width) of what comes out of it, measured by running one dummy batch through the model
with forward hooks: a change of width, depth, normalization or output head shows in the drawing,
and no number in it is typed in. The generator is drawn as a U (the encoder going down on the
left, the bottleneck at the bottom, the decoder going up on the right, the skip connections as
dashed arrows across); the discriminator as a stack from its two inputs to its logit.

    from colorlib.lab.diagrams import draw_generator, draw_discriminator
    fig = draw_generator(build_generator(make_config("paper")))

`generator_layout` and `discriminator_layout` return the boxes themselves, for tests and for
readers who want the numbers without the picture.

What the layers compute, for a (trained) generator and real images: `activation_maps` draws each
block's mean |activation| per image, `channel_examples` the channels of one block that follow the
input's brightness and those that follow its edges (`channel_roles` sorts every channel so).
Every row of maps has its own colour scale, shown by a colorbar.

Figures are built without pyplot (as in colorlib.lab.plots), at 100 dpi with no text under 9 pt,
so they read at 100% zoom.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn
from torch.nn.utils import parametrize

from ..paper.models import Down, Up, count_parameters

DPI = 100
FONT = 9  # the smallest text in a diagram, in points
# the activation each block applies in its forward (a function call there, not a module to read)
ACTIVATIONS = {Down: "LeakyReLU(0.2)", Up: "ReLU"}
STEM_ACTIVATION = "LeakyReLU(0.2)"
# short names of the normalizations and output heads colorlib has; any other shows its class name
NORM_NAMES = {"BatchNorm": "batch norm", "BatchNorm2d": "batch norm", "InstanceNorm": "instance norm",
              "InstanceNorm2d": "instance norm", "FeatureAwareNorm": "FAN", "SpadeNorm": "SPADE"}
OUTPUT_NAMES = {"RGBOutput": "tanh → RGB", "YCbCrOutput": "tanh → CbCr + input Y",
                "ChromaClassesOutput": "chroma classes → mean"}
# sizes in inches (one unit of a diagram's axes is one inch): boxes, the step between rows, text lines
BOX_W, BOX_H, ROW_STEP, LINE = 2.9, 1.0, 1.45, 0.2
STACK_STEP = 1.3  # rows of the discriminator's stack: no labels between them
GENERATOR_COLUMNS = {"input": 0.0, "encoder": 0.0, "bottleneck": 3.4, "decoder": 6.8, "output": 6.8}
COLORS = {"input": "#e6e6e6", "encoder": "#cfe2f3", "bottleneck": "#d9d2e9", "decoder": "#fce5cd",
          "output": "#d9ead3", "concat": "#fff2cc", "conv": "#cfe2f3", "logit": "#f4cccc"}


@dataclass(frozen=True)
class Box:
    """One box of a diagram: a module (by its name in the model), its layers, its output shape."""
    name: str  # the module's name in model.named_modules() ("stem", "down.1", "net.2-4"), or a role
    kind: str  # the layers it holds, e.g. "conv 4×4/2 · batch norm · LeakyReLU(0.2)"
    shape: tuple[int, ...]  # output shape of one image, (C, H, W), from the forward pass
    role: str  # input | encoder | bottleneck | decoder | output | concat | conv | logit


@dataclass(frozen=True)
class Skip:
    """A skip connection: `source`'s output concatenated onto `target`'s, giving `shape`."""
    source: str
    target: str
    shape: tuple[int, ...]


def shape_text(shape) -> str:
    """(256, 4, 4) -> "256×4×4": how every diagram writes a shape."""
    return "×".join(str(int(s)) for s in shape)


def traced(model: nn.Module, inputs: tuple, names) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
    """{name: ([its tensor inputs], its output)} of the named submodules ("" is the model itself),
    from one forward pass of `inputs` with forward hooks. The model runs in eval mode without
    gradients (batch norm's running statistics stay as they were) and gets its own mode back."""
    seen, handles, wanted = {}, [], set(names)

    def hook(name):
        def record(module, args, out):
            seen[name] = ([a for a in args if isinstance(a, torch.Tensor)], out)
        return record

    for name, module in model.named_modules():
        if name in wanted:
            handles.append(module.register_forward_hook(hook(name)))
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(*inputs)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return {name: seen[name] for name in names if name in seen}


def traced_shapes(model: nn.Module, inputs: tuple, names) -> dict[str, tuple[list[tuple], tuple]]:
    """{name: ([shape of each tensor input], output shape)}, batch dimension dropped (see `traced`)."""
    return {name: ([tuple(a.shape[1:]) for a in args], tuple(out.shape[1:]))
            for name, (args, out) in traced(model, inputs, names).items()}


def conv_kind(conv: nn.Module) -> str:
    """"conv 4×4/2" (kernel 4, stride 2), "convT" for a transposed one, "SN" for spectral norm."""
    kind = "convT" if isinstance(conv, nn.ConvTranspose2d) else "conv"
    kh, kw = conv.kernel_size
    spectral = "SN " if parametrize.is_parametrized(conv) else ""
    return f"{spectral}{kind} {kh}×{kw}/{conv.stride[0]}"


def layer_kind(module: nn.Module) -> Optional[str]:
    """The short name of a layer that follows a convolution; None for one that does nothing."""
    name = type(module).__name__
    if name == "NoNorm" or isinstance(module, nn.Identity):
        return None
    if isinstance(module, nn.LeakyReLU):
        return f"LeakyReLU({module.negative_slope:g})"
    return NORM_NAMES.get(name, name)


def block_kind(block: nn.Module) -> str:
    """A generator block (Down / Up): its convolution, its normalization, its activation."""
    parts = [conv_kind(block.conv), layer_kind(block.norm), ACTIVATIONS.get(type(block))]
    return " · ".join(p for p in parts if p)


def image_batch(image_size: int, channels: int = 1) -> torch.Tensor:
    """The dummy input: a batch of two blank images (shapes do not depend on the pixels)."""
    return torch.zeros(2, channels, image_size, image_size)


def output_kind(module: nn.Module) -> str:
    name = type(module).__name__
    return OUTPUT_NAMES.get(name, name)


# ---------------------------------------------------------------- the generator, Fig. 1
def generator_layout(G: nn.Module, image_size: int = 32) -> tuple[list[Box], list[Skip]]:
    """The boxes of Fig. 1 in the order the data flows (input, encoder, bottleneck, decoder, head)
    and the skip connections, with every shape from one forward pass of a 1×S×S gray batch."""
    encoder = ["stem", *(f"down.{i}" for i in range(len(G.down)))]
    decoder = [f"up.{i}" for i in range(len(G.up))]
    shapes = traced_shapes(G, (image_batch(image_size),), [*encoder, *decoder, "head", ""])
    boxes = [Box("input X", "gray image", shapes[""][0][0], "input"),
             Box("stem", f"{conv_kind(G.stem)} · {STEM_ACTIVATION}", shapes["stem"][1], "encoder")]
    boxes += [Box(name, block_kind(block), shapes[name][1], "encoder") for name, block in zip(encoder[1:], G.down)]
    last = boxes.pop()
    boxes.append(Box(last.name, last.kind, last.shape, "bottleneck"))  # the decoder's input, no skip
    boxes += [Box(name, block_kind(block), shapes[name][1], "decoder") for name, block in zip(decoder, G.up)]
    head_kind = f"{conv_kind(G.head)} · {output_kind(G.output)}"
    if shapes["head"][1] != shapes[""][1]:  # a head whose channels are not the image's (chroma classes)
        head_kind = f"{conv_kind(G.head)} to {shapes['head'][1][0]} · {output_kind(G.output)}"
    boxes.append(Box("head", head_kind, shapes[""][1], "output"))
    by_side = {shapes[name][1][1:]: name for name in encoder[:-1]}  # the encoder outputs the decoder gets
    skips = []
    for name, following in zip(decoder, [*decoder[1:], "head"]):
        source = by_side.get(shapes[name][1][1:])
        if source is not None:  # what `following` receives: this block's output and the skip, concatenated
            skips.append(Skip(source, name, shapes[following][0][0]))
    return boxes, skips


# ---------------------------------------------------------------- the discriminator, Fig. 2
def conv_groups(net: nn.Sequential) -> list[list[tuple[str, nn.Module]]]:
    """The layers of a sequential stack grouped by convolution: each conv with what follows it."""
    groups: list[list[tuple[str, nn.Module]]] = []
    for name, module in net.named_children():
        if isinstance(module, nn.Conv2d) or not groups:
            groups.append([])
        groups[-1].append((name, module))
    return groups


def logit_text(shape: tuple) -> str:
    """The discriminator's output for one image: () -> "1 logit", (16,) -> "16 logits"."""
    count = int(torch.Size(shape).numel())
    return f"{count} logit" + ("s" if count != 1 else "")


def discriminator_layout(D: nn.Module, image_size: int = 32) -> list[Box]:
    """The boxes of Fig. 2 in the order the data flows: the gray image and the colour image, their
    concatenation, one box per convolution (with the layers after it), and the logit(s) per image;
    every shape from one forward pass of a 1×S×S gray and a 3×S×S colour batch."""
    groups = conv_groups(D.net)
    ends = [f"net.{group[-1][0]}" for group in groups]
    shapes = traced_shapes(D, (image_batch(image_size, 1), image_batch(image_size, 3)), ["net", *ends, ""])
    gray, colour = shapes[""][0]
    boxes = [Box("gray X", "the condition", gray, "input"),
             Box("colour Y or G(X)", "real or generated", colour, "input"),
             Box("concatenate", "stacked as channels", shapes["net"][0][0], "concat")]
    for i, (group, end) in enumerate(zip(groups, ends)):
        first, last, final = group[0][0], group[-1][0], i == len(groups) - 1
        kinds = [conv_kind(group[0][1]), *(layer_kind(m) for _, m in group[1:]), "logits" if final else None]
        boxes.append(Box(f"net.{first}" if first == last else f"net.{first}-{last}", " · ".join(k for k in kinds if k),
                         shapes[end][1], "logit" if final else "conv"))
    boxes.append(Box("D(X, Y)", "real or fake? (sigmoid in the loss)", shapes[""][1], "output"))
    return boxes


# ---------------------------------------------------------------- drawing
def wrap_kind(kind: str, width: int = 30) -> list[str]:
    """A box's layer kinds on as many lines as they need, broken between layers."""
    lines = [""]
    for part in kind.split(" · "):
        joined = f"{lines[-1]} · {part}" if lines[-1] else part
        if len(joined) > width and lines[-1]:
            lines.append(part)
        else:
            lines[-1] = joined
    return lines


def canvas(x0: float, x1: float, y0: float, y1: float):
    """A figure whose axes span (x0..x1, y0..y1) in inches, without ticks or frame."""
    fig = Figure(figsize=(x1 - x0, y1 - y0), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_axis_off()
    return fig, ax


def draw_box(ax, box: Box, x: float, y: float, shape_label: Optional[str] = None) -> None:
    """A rounded box centred at (x, y): the module's name, its layers, its output shape."""
    ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                                boxstyle="round,pad=0,rounding_size=0.08", facecolor=COLORS[box.role],
                                edgecolor="#555555", linewidth=1))
    lines = [(box.name, dict(weight="bold", size=FONT + 1))]
    lines += [(line, dict(size=FONT)) for line in wrap_kind(box.kind)]
    lines.append((shape_label or shape_text(box.shape), dict(weight="bold", size=FONT + 1, color="#000000")))
    top = y + (len(lines) - 1) * LINE / 2
    for i, (text, style) in enumerate(lines):
        ax.text(x, top - i * LINE, text, ha="center", va="center", color=style.pop("color", "#222222"), **style)


def arrow(ax, start, end, angles: Optional[tuple[int, int]] = None, **style) -> None:
    """An arrow from `start` to `end`; `angles` (leaving, arriving) bends it at a right angle."""
    props = dict(arrowstyle="-|>", color="#333333", linewidth=1.4, shrinkA=0, shrinkB=0, mutation_scale=14)
    if angles:
        props["connectionstyle"] = f"angle,angleA={angles[0]},angleB={angles[1]},rad=0"
    ax.annotate("", xy=end, xytext=start, arrowprops={**props, **style})


def connect(ax, a: tuple[float, float], b: tuple[float, float]) -> None:
    """The main path from the box centred at `a` to the one at `b`: straight within a column; to
    another column down then across (into the encoder's bottleneck), or across then up (out of it)."""
    (xa, ya), (xb, yb) = a, b
    side = math.copysign(BOX_W / 2, xb - xa)
    if math.isclose(xa, xb):
        sign = 1 if yb > ya else -1
        arrow(ax, (xa, ya + sign * BOX_H / 2), (xb, yb - sign * BOX_H / 2))
    elif yb < ya:
        arrow(ax, (xa, ya - BOX_H / 2), (xb - side, yb), angles=(90, 0))
    else:
        arrow(ax, (xa + side, ya), (xb, yb - BOX_H / 2), angles=(0, 90))


def frame_text(ax, x0: float, x1: float, y0: float, y1: float, title: str, note: str) -> None:
    """The title across the top and the note (wrapped to the width) along the bottom."""
    ax.text((x0 + x1) / 2, y1 - 0.2, title, ha="center", va="top", size=FONT + 3, weight="bold")
    ax.text(x0 + 0.15, y0 + 0.15, textwrap.fill(note, int((x1 - x0 - 0.3) * 13)), ha="left", va="bottom",
            size=FONT, color="#333333", linespacing=1.4)


def draw_generator(G: nn.Module, image_size: int = 32, title: Optional[str] = None) -> Figure:
    """Fig. 1 drawn from the generator `G`: encoder down the left, bottleneck at the bottom,
    decoder up the right, skip connections dashed across; rows are resolutions."""
    boxes, skips = generator_layout(G, image_size)
    at = {box.name: (GENERATOR_COLUMNS[box.role], -ROW_STEP * round(math.log2(image_size / box.shape[-1])))
          for box in boxes}
    bottom = min(y for _, y in at.values())
    x0, x1 = -BOX_W / 2 - 0.25, GENERATOR_COLUMNS["decoder"] + BOX_W / 2 + 0.25
    y0, y1 = bottom - BOX_H / 2 - 1.0, BOX_H / 2 + 0.65
    fig, ax = canvas(x0, x1, y0, y1)
    for a, b in zip(boxes, boxes[1:]):
        connect(ax, at[a.name], at[b.name])
    for skip in skips:
        (xa, y), (xb, _) = at[skip.source], at[skip.target]
        arrow(ax, (xa + BOX_W / 2, y), (xb - BOX_W / 2, y), linestyle=(0, (4, 3)), color="#38761d")
        ax.text((xa + xb) / 2, y + 0.1, f"skip: concatenated → {shape_text(skip.shape)}", ha="center",
                va="bottom", size=FONT, color="#38761d")
    for box in boxes:
        draw_box(ax, box, *at[box.name])
    note = (f"Each box: the module's name in the model, its layers and the shape of its output for one image "
            f"(channels×height×width), measured with forward hooks on a {image_size}×{image_size} gray input. "
            f"conv k×k/s: kernel k, stride s; convT: transposed convolution. Dashed: a skip connection, the "
            f"encoder's output concatenated onto the decoder block's output, so the channels add.")
    frame_text(ax, x0, x1, y0, y1, title or f"Generator G (Fig. 1): a U-Net, {count_parameters(G):,} parameters",
               note)
    return fig


def draw_discriminator(D: nn.Module, image_size: int = 32, title: Optional[str] = None) -> Figure:
    """Fig. 2 drawn from the discriminator `D`: the gray image and the colour image stacked, the
    convolutions top to bottom, and what comes out per image."""
    boxes = discriminator_layout(D, image_size)
    half = BOX_W / 2 + 0.2
    at = {box.name: (0.0, -STACK_STEP * (i - 1)) for i, box in enumerate(boxes[1:], start=1)}
    at[boxes[0].name], at[boxes[1].name] = (-half, 0.0), (half, 0.0)
    x0, x1 = -half - BOX_W / 2 - 0.25, half + BOX_W / 2 + 0.25
    y0, y1 = at[boxes[-1].name][1] - BOX_H / 2 - 1.0, BOX_H / 2 + 0.65
    fig, ax = canvas(x0, x1, y0, y1)
    for source in boxes[:2]:
        (xs, ys), (xc, yc) = at[source.name], at[boxes[2].name]
        arrow(ax, (xs, ys - BOX_H / 2), (xc + math.copysign(BOX_W / 4, xs), yc + BOX_H / 2))
    for a, b in zip(boxes[2:], boxes[3:]):
        connect(ax, at[a.name], at[b.name])
    for box in boxes:
        label = f"{logit_text(box.shape)} per image" if box.role == "output" else None
        draw_box(ax, box, *at[box.name], shape_label=label)
    note = (f"Each box: the module's name in the model (D.net), its layers and the shape of its output for one "
            f"image (channels×height×width), measured with forward hooks on {image_size}×{image_size} inputs. "
            f"conv k×k/s: kernel k, stride s; SN: spectral normalization.")
    frame_text(ax, x0, x1, y0, y1, title or f"Discriminator D (Fig. 2): {count_parameters(D):,} parameters", note)
    return fig


# ---------------------------------------------------------------- what the layers compute
def edge_map(gray: torch.Tensor, side: int) -> torch.Tensor:
    """[B, side, side]: how much the gray images [B, 1, H, W] change between neighbouring pixels
    (|horizontal| + |vertical| difference), after shrinking them to side x side (area average)."""
    g = F.interpolate(gray, size=(side, side), mode="area")[:, 0]
    dx = F.pad((g[..., :, 1:] - g[..., :, :-1]).abs(), (0, 1))
    dy = F.pad((g[..., 1:, :] - g[..., :-1, :]).abs(), (0, 0, 0, 1))
    return dx + dy


def pixel_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the pixels of each map: a [B, C, H, W], b [B, H, W] -> [B, C]."""
    a = a - a.mean((-2, -1), keepdim=True)
    b = (b - b.mean((-2, -1), keepdim=True)).unsqueeze(1)
    return (a * b).sum((-2, -1)) / (a.norm(dim=(-2, -1)) * b.norm(dim=(-2, -1))).clamp_min(1e-12)


@dataclass(frozen=True)
class ChannelRoles:
    """What each channel of a layer follows, over a batch of images: per channel, the correlation
    over pixels of its |activation| with the input's edges (signed; mean over the images) and with
    the input's gray level (unsigned: a channel that fires on dark regions follows brightness as
    much as one that fires on bright ones). A channel follows whichever is larger."""
    edges: torch.Tensor  # [C]
    brightness: torch.Tensor  # [C]
    strength: torch.Tensor  # [C]: mean |activation|
    silent: float = 0.05  # below this share of the strongest channel's strength a channel counts as silent

    def kinds(self) -> list[str]:
        quiet = self.strength < self.silent * self.strength.max()
        return ["silent" if q else "edges" if e > b else "brightness"
                for q, e, b in zip(quiet.tolist(), self.edges.tolist(), self.brightness.tolist())]

    def summary(self) -> str:
        kinds = self.kinds()
        parts = []
        for kind in ("brightness", "edges", "silent"):
            picked = torch.tensor([k == kind for k in kinds])
            if picked.any():
                parts.append(f"{int(picked.sum())} follow {kind} (mean |activation| {self.strength[picked].mean():.3f})"
                             if kind != "silent" else f"{int(picked.sum())} are silent")
        return f"{len(kinds)} channels: " + ", ".join(parts)


def channel_roles(activation: torch.Tensor, gray: torch.Tensor) -> ChannelRoles:
    """ChannelRoles of a layer's output [B, C, h, w] for its gray input images [B, 1, H, W]."""
    side = activation.shape[-1]
    a = activation.abs().float()
    level = F.interpolate(gray, size=(side, side), mode="area")[:, 0]
    return ChannelRoles(edges=pixel_correlation(a, edge_map(gray, side)).mean(0),
                        brightness=pixel_correlation(a, level).abs().mean(0), strength=a.mean((0, 2, 3)))


def image_rows(rows, title: Optional[str] = None) -> Figure:
    """A grid of maps, one row per (label, maps [B, H, W], colour map, (low, high), what the colours
    measure); every row has its own colour scale, shown by its colorbar, shared by its images."""
    count = len(rows[0][1])
    fig = Figure(figsize=(1.55 * count + 3.2, 1.5 * len(rows) + 0.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(rows), count + 1, squeeze=False)
    for ax_row, (label, maps, cmap, (low, high), unit) in zip(axes, rows):
        ax_row[0].set_axis_off()  # the first column holds the row's label
        ax_row[0].text(1.0, 0.5, label, ha="right", va="center", size=FONT, transform=ax_row[0].transAxes)
        for ax, image in zip(ax_row[1:], maps):
            shown = ax.imshow(torch.as_tensor(image).detach().float().cpu().numpy(), cmap=cmap, vmin=low, vmax=high)
            ax.set_xticks([])
            ax.set_yticks([])
        bar = fig.colorbar(shown, ax=list(ax_row[1:]), shrink=0.9, aspect=12)
        bar.set_label(unit, fontsize=FONT)
        bar.ax.tick_params(labelsize=FONT)
    if title:
        fig.suptitle(title, fontsize=FONT + 2)
    return fig


def activation_maps(G: nn.Module, gray: torch.Tensor, names, title: Optional[str] = None) -> Figure:
    """The gray images, then for each named block of `G` its mean |activation| over channels, per
    image: one row per block, each row with its own colour scale (a colorbar) from 0 to its maximum."""
    outputs = traced(G, (gray,), names)
    rows = [("input X", gray[:, 0], "gray", (-1, 1), "gray level")]
    for name in names:
        maps = outputs[name][1].abs().mean(1)
        rows.append((f"{name}\n{shape_text(outputs[name][1].shape[1:])}", maps, "magma", (0, float(maps.max())),
                     "mean |activation|"))
    return image_rows(rows, title)


def channel_examples(G: nn.Module, gray: torch.Tensor, name: str, count: int = 2) -> tuple[Figure, ChannelRoles]:
    """The `count` channels of block `name` that follow the input's brightness most closely and the
    `count` that follow its edges most closely, each a row over the images (signed activation,
    blue negative, red positive, a symmetric scale per row); and the roles of all its channels."""
    out = traced(G, (gray,), [name])[name][1]
    roles = channel_roles(out, gray)
    kinds = roles.kinds()
    rows = [("input X", gray[:, 0], "gray", (-1, 1), "gray level")]
    for kind, score in (("brightness", roles.brightness), ("edges", roles.edges)):
        ranked = [c for c in score.argsort(descending=True).tolist() if kinds[c] == kind][:count]
        for c in ranked:
            high = float(out[:, c].abs().max())
            rows.append((f"{name} channel {c}\n{kind}, r = {score[c]:.2f}", out[:, c], "RdBu_r", (-high, high),
                         "activation"))
    return image_rows(rows), roles
