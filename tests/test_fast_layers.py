"""The matrix-multiply form of the small-map convolutions (engine/fast_layers.py) computes what
nn.Conv2d / nn.ConvTranspose2d compute, forward and backward, on the paper's shapes, in float32
and in bf16; the engine's swap changes no parameter or state_dict key and is active only under
CPU bf16 autocast, so a float32 run is bit for bit what it was (tests/test_guard.py pins that).

Tolerances, relative to the largest value of the float32 layer's result: float32, 1e-4 (the same
products summed in another order); bf16 (8-bit mantissa: the matmul form rounds the inputs and
weights to bf16 and accumulates in float32), 1.5e-2."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from colorlib.engine import fast_layers
from colorlib.engine.trainer import Trainer
from colorlib.runs.config import make_config
from colorlib.variants import build_discriminator, build_generator

# (layer, input shape): the paper networks' small-map layers (batch 50), and a 1x1 output
SHAPES = [
    (lambda: nn.Conv2d(256, 512, 4, 2, 1, bias=False), (50, 256, 4, 4)),  # G.down.2: 4x4 -> 2x2
    (lambda: nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False), (50, 512, 2, 2)),  # G.up.0: 2x2 -> 4x4
    (lambda: nn.Conv2d(128, 256, 4, 2, 1), (50, 128, 8, 8)),  # with a bias
    (lambda: nn.ConvTranspose2d(512, 128, 4, 2, 1), (50, 512, 4, 4)),
    (lambda: nn.Conv2d(256, 1, 4), (50, 256, 4, 4)),  # D.net.8: the kernel covers the map
]


def close(got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    err = (got.float() - want.float()).abs().max() / want.float().abs().max()
    assert err < tol, f"relative error {err:.2e} >= {tol}"


def forward_backward(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, matmul: bool, bf16: bool):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if matmul:
            transposed = isinstance(layer, nn.ConvTranspose2d)
            fn = fast_layers.conv_transpose2d_matmul if transposed else fast_layers.conv2d_matmul
            dt = torch.bfloat16 if bf16 else torch.float32
            bias = None if layer.bias is None else layer.bias.to(dt)
            y = fn(x.to(dt), layer.weight.to(dt), bias, layer.stride[0], layer.padding[0])
        else:
            y = layer(x)
    (y.float() * grad).sum().backward()
    grads = [x.grad, layer.weight.grad] + ([layer.bias.grad] if layer.bias is not None else [])
    return y.float(), grads


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("make, shape", SHAPES, ids=[f"{i}" for i in range(len(SHAPES))])
def test_matmul_form_equals_the_layer_forward_and_backward(make, shape, bf16):
    torch.manual_seed(0)
    layer = make()
    nn.init.normal_(layer.weight, 0, 0.02)
    if layer.bias is not None:
        nn.init.normal_(layer.bias, 0, 0.1)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    y_ref, _ = forward_backward(layer, x, torch.zeros(()), matmul=False, bf16=False)
    grad = torch.randn_like(y_ref)
    tol = 1.5e-2 if bf16 else 1e-4
    # the reference is the layer in float32: oneDNN's own bf16 weight gradient differs from it by
    # up to 2.1% on a CPU without bf16 units (AVX2 only), the matmul form by at most 0.7%
    y_ref, g_ref = forward_backward(layer, x, grad, matmul=False, bf16=False)
    y, g = forward_backward(layer, x, grad, matmul=True, bf16=bf16)
    assert y.shape == y_ref.shape
    close(y, y_ref, tol)
    for got, want in zip(g, g_ref):
        close(got, want, tol)


def paper_networks():
    cfg = make_config("paper", device="cpu")
    torch.manual_seed(0)
    return build_generator(cfg), build_discriminator(cfg)


def test_swap_keeps_parameters_and_state_dict_and_is_off_outside_cpu_bf16():
    G, _ = paper_networks()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    swapped = fast_layers.use_matmul_convs(G, 2, 0, gray)
    assert swapped == ["down.2.conv", "up.0.conv"]  # the paper's two layers at 2x2
    after = G.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the probe forward ran in eval mode
    assert all(type(m) in (nn.Conv2d, nn.ConvTranspose2d) for m in (G.down[2].conv, G.up[0].conv))
    batch = torch.rand(4, 1, 32, 32) * 2 - 1
    G2, _ = paper_networks()
    G2.load_state_dict(G.state_dict())
    G.eval(), G2.eval()
    with torch.no_grad():
        assert torch.equal(G(batch), G2(batch))  # float32: the class's own forward, the same bits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(G(batch), G2(batch))  # inference: oneDNN's forward, the same bits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        close(G(batch), G2(batch), 3e-2)  # training bf16: the matmul form, within bf16's rounding
    fast_layers.restore_convs(G)
    assert "forward" not in vars(G.down[2].conv)


@pytest.mark.slow
def test_trainer_swaps_under_bf16_only_and_records_it(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CPU_BF16", "1")
    base = dict(data=str(data_dir), device="cpu", train_size=100, val_size=0, n_samples=2)
    bf16 = Trainer(make_config("paper", **base), tmp_path / "bf16", progress=False)
    assert bf16.precision["matmul_convs"] == ["G.down.2.conv", "G.up.0.conv"]  # the wide layers at 2x2
    off = Trainer(make_config("paper", matmul_convs=False, **base), tmp_path / "off", progress=False)
    assert off.precision["matmul_convs"] == []
    fp32 = Trainer(make_config("paper", amp=False, **base), tmp_path / "fp32", progress=False)
    assert fp32.precision["matmul_convs"] == []
    assert not any(hasattr(m, fast_layers.SWAPPED) for m in fp32.G.modules())
    assert list(bf16.G.state_dict()) == list(off.G.state_dict())
    losses = [t.train_step(torch.arange(50)) for t in (bf16, off)]
    assert all(torch.isfinite(x).all() for x in losses)
    close(losses[0][3:], losses[1][3:], 2e-2)  # D's first losses: a forward pass before any update
    quick = Trainer(make_config("quick", **base), tmp_path / "quick", progress=False)
    assert quick.precision["matmul_convs"] == []  # its 2x2 layers are narrower: measured not to pay
    for t in (bf16, off, fp32, quick):
        t.close()


@pytest.mark.slow
def test_twenty_training_steps_with_the_matmul_form_stay_within_bf16_rounding(data_dir, tmp_path, monkeypatch):
    # small networks of the paper's depth (down to 2x2), their 2x2 layers swapped (the threshold
    # lowered), so the test is small:
    # after 20 iterations (60 optimizer steps) of the same batches from the same start, the weights
    # of the swapped run differ from the unswapped bf16 run's by no more than bf16 itself differs
    # from float32 (the rounding every bf16 run accepts), and both stay finite
    from colorlib.engine import setup
    monkeypatch.setenv("COLORLIB_CPU_BF16", "1")
    monkeypatch.setattr(setup, "MATMUL_CONV_MIN_WEIGHTS", 0)
    base = dict(data=str(data_dir), device="cpu", train_size=100, val_size=0, n_samples=2, threads=1,
                g_width=8, g_depth=4, d_width=8, d_depth=3)
    runs = {name: Trainer(make_config("smoke", **base, **extra), tmp_path / name, progress=False)
            for name, extra in (("swapped", {}), ("bf16", dict(matmul_convs=False)), ("fp32", dict(amp=False)))}
    assert runs["swapped"].precision["matmul_convs"] == ["G.down.2.conv", "G.up.0.conv", "D.net.8"]
    assert runs["bf16"].precision["matmul_convs"] == []
    batches = [torch.randperm(100, generator=torch.Generator().manual_seed(i))[:50] for i in range(20)]
    for t in runs.values():
        for batch in batches:
            assert torch.isfinite(t.train_step(batch)).all()

    def weights(t):
        return torch.cat([p.detach().float().flatten() for p in t.G.parameters()])

    def drift(a, b):
        return ((weights(a) - weights(b)).norm() / weights(b).norm()).item()
    swap_vs_bf16 = drift(runs["swapped"], runs["bf16"])
    bf16_vs_fp32 = drift(runs["bf16"], runs["fp32"])
    print(f"weights after 20 iterations: swapped vs bf16 {swap_vs_bf16:.2e}, bf16 vs float32 {bf16_vs_fp32:.2e}")
    assert 0 < swap_vs_bf16 <= 1.5 * bf16_vs_fp32, (swap_vs_bf16, bf16_vs_fp32)
    for t in runs.values():
        t.close()
