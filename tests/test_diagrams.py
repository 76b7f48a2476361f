"""Fig. 1 and Fig. 2 drawn from the model (colorlib.lab.diagrams): the shapes a diagram lists must
be those of a real forward pass, and must follow the model when its sizes change."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from matplotlib.text import Text

from colorlib.lab.diagrams import (DPI, FONT, discriminator_layout, draw_discriminator, draw_generator,
                                   generator_layout, shape_text)
from colorlib.runs.config import make_config
from colorlib.variants import build_discriminator, build_generator

PRESETS = ("smoke", "paper")


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def generator_by_hand(G, gray):
    """Every block's output shape and every concatenation, by stepping through the U-Net ourselves."""
    cond = G.features(gray)
    h = F.leaky_relu(G.stem(gray), 0.2)
    shapes, skips, joined = {"input X": gray.shape[1:], "stem": h.shape[1:]}, [h], []
    for i, block in enumerate(G.down):
        h = block(h, cond)
        shapes[f"down.{i}"] = h.shape[1:]
        skips.append(h)
    skips.pop()
    for i, block in enumerate(G.up):
        out = block(h, cond)
        shapes[f"up.{i}"] = out.shape[1:]
        h = torch.cat([out, skips.pop()], dim=1)
        joined.append(tuple(h.shape[1:]))
    shapes["head"] = G.output(G.head(h), gray).shape[1:]
    return {k: tuple(v) for k, v in shapes.items()}, joined


def discriminator_by_hand(D, gray, colour):
    h = torch.cat([gray, colour], dim=1)
    ends = [tuple(h.shape[1:])]
    for i, layer in enumerate(D.net):
        h = layer(h)
        if i == len(D.net) - 1 or isinstance(D.net[i + 1], torch.nn.Conv2d):  # the end of a conv's group
            ends.append(tuple(h.shape[1:]))
    return ends, tuple(D(gray, colour).shape[1:])


@pytest.mark.parametrize("preset", PRESETS)
def test_the_generator_diagram_lists_the_shapes_of_a_forward_pass(preset):
    G = build_generator(make_config(preset)).eval()
    with torch.no_grad():
        expected, joined = generator_by_hand(G, torch.randn(2, 1, 32, 32))
    boxes, skips = generator_layout(G)
    assert {box.name: box.shape for box in boxes} == expected
    assert [box.role for box in boxes].count("bottleneck") == 1
    assert [skip.shape for skip in skips] == joined
    assert [(s.source, s.target) for s in skips][-1] == ("stem", f"up.{len(G.up) - 1}")
    drawn = texts(draw_generator(G))
    for box in boxes:
        assert box.name in drawn and shape_text(box.shape) in drawn
    assert all(f"skip: concatenated → {shape_text(s)}" in drawn for s in joined)


@pytest.mark.parametrize("preset", PRESETS)
def test_the_discriminator_diagram_lists_the_shapes_of_a_forward_pass(preset):
    D = build_discriminator(make_config(preset)).eval()
    gray, colour = torch.randn(2, 1, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ends, logits = discriminator_by_hand(D, gray, colour)
    boxes = discriminator_layout(D)
    assert [box.shape for box in boxes[:2]] == [(1, 32, 32), (3, 32, 32)]
    assert [box.shape for box in boxes[2:-1]] == ends  # the concatenation, then each conv's group
    assert boxes[-1].shape == logits == ()
    drawn = texts(draw_discriminator(D))
    assert all(shape_text(shape) in drawn for shape in ends)
    assert "1 logit per image" in drawn


def test_the_drawing_follows_the_model_and_leaves_it_as_it_was():
    narrow, wide = (make_config("smoke", g_width=w, d_width=w) for w in (8, 16))
    g_narrow, g_wide = texts(draw_generator(build_generator(narrow))), texts(draw_generator(build_generator(wide)))
    assert "8×16×16" in g_narrow and "8×16×16" not in g_wide and "skip: concatenated → 32×16×16" in g_wide
    assert "16×16×16" in texts(draw_discriminator(build_discriminator(wide)))
    G = build_generator(make_config("smoke", norm="instance", output="ycbcr")).train()
    kinds = " ".join(box.kind for box in generator_layout(G)[0])
    assert "instance norm" in kinds and "batch norm" not in kinds and "CbCr" in kinds
    before = {k: v.clone() for k, v in G.state_dict().items()}
    draw_generator(G)
    assert G.training and all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    D = build_discriminator(make_config("smoke", d_norm="spectral", d_arch="patch"))
    assert all(box.kind.startswith("SN conv") for box in discriminator_layout(D) if box.role in ("conv", "logit"))
    assert "64 logits per image" in texts(draw_discriminator(D))  # a PatchGAN: one logit per 8x8 position
    notes = [" ".join(" ".join(texts(fig)).split()) for fig in (draw_discriminator(D), draw_generator(G))]
    assert "SN: spectral" in notes[0] and "SN: spectral" not in notes[1]  # the key only where SN is used
    for fig in (draw_generator(build_generator(make_config("paper"))),
                draw_discriminator(build_discriminator(make_config("paper")))):
        assert fig.dpi >= DPI >= 100 and fig.get_size_inches()[0] <= 11  # fits a notebook's width unscaled
        assert min(t.get_fontsize() for t in fig.findobj(Text) if t.get_text()) >= FONT >= 9

