"""The paper's Figs. 1 (the U-Net generator) and 2 (the conditional discriminator) drawn from a built
model: every box names a module, its layers and its output's shape, measured with forward hooks on one
dummy batch, so no number is typed in.
Figures are built without pyplot, at 100 dpi with no text under 9 pt (they read at 100% zoom).
"""
from __future__ import annotations

import math
import textwrap
from collections import namedtuple

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn
from torch.nn.utils import parametrize

from ..paper.models import count_parameters

DPI, FONT = 100, 9  # the smallest text, in points
SIDE = 32  # the dummy batch's images: CIFAR-10's size
BOX_W, BOX_H, ROW = 2.9, 1.0, 1.45  # inches: one unit of a diagram's axes is one inch
COLUMNS = {"input": 0.0, "encoder": 0.0, "bottleneck": 3.4, "decoder": 6.8, "output": 6.8}
COLORS = {"input": "#e6e6e6", "encoder": "#cfe2f3", "bottleneck": "#d9d2e9", "decoder": "#fce5cd",
          "output": "#d9ead3", "concat": "#fff2cc", "conv": "#cfe2f3", "logit": "#f4cccc"}
NAMES = {"BatchNorm": "batch norm", "BatchNorm2d": "batch norm", "InstanceNorm2d": "instance norm",
         "InstanceNorm": "instance norm", "FeatureAwareNorm": "FAN", "SpadeNorm": "SPADE", "RGBOutput": "tanh → RGB",
         "YCbCrOutput": "tanh → CbCr + input Y", "ChromaClassesOutput": "chroma classes → mean"}


Box = namedtuple("Box", "name kind shape role")  # a module's name, its layers, its output's shape, a key of COLORS
Skip = namedtuple("Skip", "source target shape")  # encoder block `source` concatenated onto decoder block `target`


def shape_text(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


def traced(model: nn.Module, inputs: tuple, names) -> dict:
    """{name: ([its tensor inputs], its output)} of the named submodules ("" is the model), from one
    forward pass in eval mode without gradients; the model gets its mode back."""
    seen, training = {}, model.training
    handles = [m.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(
        name, ([a for a in args if isinstance(a, torch.Tensor)], out))) for name, m in model.named_modules()
        if name in set(names)]
    try:
        with torch.no_grad():
            model.eval()(*inputs)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return {name: seen[name] for name in names if name in seen}


def kind(*modules) -> str:
    """"conv 4×4/2 · batch norm · LeakyReLU(0.2)": the layers of a block, "SN" for spectral norm."""
    parts = []
    for m in modules:
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            sn = "SN " if parametrize.is_parametrized(m) else ""
            parts.append(f"{sn}conv{'T' if isinstance(m, nn.ConvTranspose2d) else ''} "
                         f"{m.kernel_size[0]}×{m.kernel_size[1]}/{m.stride[0]}")
        elif isinstance(m, str):
            parts.append(m)
        elif isinstance(m, nn.LeakyReLU):
            parts.append(f"LeakyReLU({m.negative_slope:g})")
        elif not isinstance(m, nn.Identity) and type(m).__name__ != "NoNorm":
            parts.append(NAMES.get(type(m).__name__, type(m).__name__))
    return " · ".join(parts)


def generator_layout(G: nn.Module) -> tuple[list[Box], list[Skip]]:
    """Fig. 1's boxes in the order the data flows, and the skip connections, from one forward pass."""
    encoder = ["stem", *(f"down.{i}" for i in range(len(G.down)))]
    decoder = [f"up.{i}" for i in range(len(G.up))]
    seen = traced(G, (torch.zeros(2, 1, SIDE, SIDE),), [*encoder, *decoder, "head", ""])
    shape = {name: tuple(out.shape[1:]) for name, (_, out) in seen.items()}
    boxes = [Box("input X", "gray image", tuple(seen[""][0][0].shape[1:]), "input")]
    for name in encoder + decoder:  # Down applies LeakyReLU(0.2), Up ReLU, in forward
        block = G.get_submodule(name)
        act = "ReLU" if name.startswith("up") else "LeakyReLU(0.2)"
        layers = (block, act) if name == "stem" else (block.conv, block.norm, act)
        role = "bottleneck" if name == encoder[-1] else "decoder" if name.startswith("up") else "encoder"
        boxes.append(Box(name, kind(*layers), shape[name], role))
    boxes.append(Box("head", kind(G.head, G.output), shape[""], "output"))
    by_side = {shape[name][1:]: name for name in encoder[:-1]}  # the encoder outputs the decoder receives
    skips = [Skip(by_side[shape[name][1:]], name, tuple(seen[following][0][0].shape[1:]))
             for name, following in zip(decoder, [*decoder[1:], "head"]) if shape[name][1:] in by_side]
    return boxes, skips


def discriminator_layout(D: nn.Module) -> list[Box]:
    """Fig. 2's boxes: the gray and the colour image, their concatenation, one box per convolution
    with the layers after it, and the logit(s) per image."""
    groups = []
    for name, module in D.net.named_children():  # each convolution with the layers that follow it
        if isinstance(module, nn.Conv2d) or not groups:
            groups.append([])
        groups[-1].append((name, module))
    ends = [f"net.{g[-1][0]}" for g in groups]
    seen = traced(D, (torch.zeros(2, 1, SIDE, SIDE), torch.zeros(2, 3, SIDE, SIDE)), ["net", *ends, ""])
    gray, colour = (tuple(t.shape[1:]) for t in seen[""][0])
    boxes = [Box("gray X", "the condition", gray, "input"),
             Box("colour Y or G(X)", "real or generated", colour, "input"),
             Box("concatenate", "stacked as channels", tuple(seen["net"][0][0].shape[1:]), "concat")]
    for i, (group, end) in enumerate(zip(groups, ends)):
        first, last, final = group[0][0], group[-1][0], i == len(groups) - 1
        boxes.append(Box(f"net.{first}" + ("" if first == last else f"-{last}"),
                         kind(*(m for _, m in group), *(["logits"] if final else [])),
                         tuple(seen[end][1].shape[1:]), "logit" if final else "conv"))
    return boxes + [Box("D(X, Y)", "real or fake? (sigmoid in the loss)", tuple(seen[""][1].shape[1:]), "output")]


def draw(boxes, at: dict, title: str, note: str, skips=()) -> Figure:
    """Boxes centred at `at[name]`, arrows between consecutive ones (both inputs into the third box
    where the first two are inputs), skip connections dashed; the title on top, the note below."""
    xs, ys = [x for x, _ in at.values()], [y for _, y in at.values()]
    x0, x1, y0, y1 = min(xs) - BOX_W / 2 - 0.25, max(xs) + BOX_W / 2 + 0.25, min(ys) - BOX_H / 2 - 1.0, max(ys) + 1.15
    fig = Figure(figsize=(x1 - x0, y1 - y0), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1), xlim=(x0, x1), ylim=(y0, y1))
    ax.set_axis_off()
    patches = {}
    for box in boxes:
        x, y = at[box.name]
        patches[box.name] = ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                                                        boxstyle="round,pad=0,rounding_size=0.08",
                                                        facecolor=COLORS[box.role], edgecolor="#555555"))
        count = int(torch.Size(box.shape).numel())
        last = shape_text(box.shape) if len(box.shape) == 3 else f"{count} logit{'s' * (count != 1)} per image"
        lines = [(box.name, "bold"), *((line, "normal") for line in textwrap.wrap(box.kind, 32)), (last, "bold")]
        for i, (text, weight) in enumerate(lines):
            ax.text(x, y + ((len(lines) - 1) / 2 - i) * 0.2, text, ha="center", va="center", weight=weight,
                    size=FONT + (weight == "bold"))

    def arrow(a, b, **style):  # centre to centre, clipped to the two boxes
        ax.annotate("", xy=at[b], xytext=at[a], arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1.4,
                                                            "patchA": patches[a], "patchB": patches[b], "shrinkA": 0,
                                                            "shrinkB": 0, **style})

    pairs = list(zip(boxes, boxes[1:]))
    if boxes[1].role == "input":
        pairs[0] = (boxes[0], boxes[2])
    for a, b in pairs:
        arrow(a.name, b.name)
    for s in skips:
        arrow(s.source, s.target, linestyle=(0, (4, 3)), color="#38761d")
        ax.text(COLUMNS["bottleneck"], at[s.source][1] + 0.1, f"skip: concatenated → {shape_text(s.shape)}",
                ha="center", va="bottom", size=FONT, color="#38761d")
    ax.text((x0 + x1) / 2, y1 - 0.2, title, ha="center", va="top", size=FONT + 3, weight="bold")
    ax.text(x0 + 0.15, y0 + 0.15, textwrap.fill(note, int((x1 - x0) * 13)), size=FONT, color="#333333")
    return fig


NOTE = ("Each box: the module's name in the model, its layers and the shape of its output for one image "
        "(channels×height×width), measured with forward hooks. conv k×k/s: kernel k, stride s; convT: transposed.")


def note_for(boxes) -> str:
    return NOTE + (" SN: spectral normalization." if any("SN " in b.kind for b in boxes) else "")


def draw_generator(G: nn.Module) -> Figure:
    """Fig. 1: encoder down the left, bottleneck at the bottom, decoder up the right; rows are resolutions."""
    boxes, skips = generator_layout(G)
    at = {b.name: (COLUMNS[b.role], -ROW * round(math.log2(SIDE / b.shape[-1]))) for b in boxes}
    return draw(boxes, at, f"Generator G (Fig. 1): a U-Net, {count_parameters(G):,} parameters",
                note_for(boxes) + " Dashed: a skip connection, concatenated onto the decoder block's output.", skips)


def draw_discriminator(D: nn.Module) -> Figure:
    """Fig. 2: the gray and the colour image stacked, the convolutions top to bottom, the logit(s)."""
    boxes = discriminator_layout(D)
    at = {b.name: (0.0, -1.3 * max(i - 1, 0)) for i, b in enumerate(boxes)}
    at[boxes[0].name], at[boxes[1].name] = (-BOX_W / 2 - 0.2, 0.0), (BOX_W / 2 + 0.2, 0.0)
    return draw(boxes, at, f"Discriminator D (Fig. 2): {count_parameters(D):,} parameters", note_for(boxes))
