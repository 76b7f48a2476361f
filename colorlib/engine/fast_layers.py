"""The small-spatial convolutions as matrix multiplies: the same layers, the same parameters,
computed where the CPU is fast.

The paper's U-Net and discriminator end in wide layers on tiny maps (256-512 channels at 4x4
and 2x2: 4x4 stride-2 convolutions down, transposed convolutions up). oneDNN's convolution
backward runs those at a few percent of what the CPU's matrix multiply reaches, yet each is one
matrix product: a convolution is im2col (the 4x4 patches of the padded input, one row per
output pixel) times the weight matrix, a transposed convolution is the input pixels times the
weight matrix followed by col2im (`F.fold`, adding the overlapping patches). Written so,
autograd's backward is matrix products and one unfold/fold too: shapes like [200 x 4096] x
[4096 x 512], which the CPU runs near its ceiling.

`use_matmul_convs(module, max_side, min_weights, *inputs)` swaps that computation into every
nn.Conv2d and nn.ConvTranspose2d of `module` whose smaller map is at most `max_side` pixels a
side and whose weight has at least `min_weights` entries, by giving
the module instance its own `forward` (its class, parameters and state_dict keys are untouched;
the paper's model code stays as the paper describes it). The swapped forward takes the matmul
path only with gradients on under CPU bf16 autocast, where it was measured to pay
(engine/setup.py); everywhere else (float32, CUDA, inference, a layer with groups or dilation)
it calls the module's own forward, so a float32 run computes bit for bit what it did without
the swap.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

SWAPPED = "_colorlib_matmul_conv"  # set on a swapped module: what use_matmul_convs found there


def _plain(m: nn.Module) -> bool:
    """A layer the matmul formulation covers: no groups, no dilation, zero padding, square
    kernel and stride, ints only (what the paper's and the variants' layers all are)."""
    return (m.groups == 1 and tuple(m.dilation) == (1, 1) and m.padding_mode == "zeros"
            and not isinstance(m.padding, str) and len(set(m.kernel_size)) == 1
            and len(set(m.stride)) == 1 and len(set(m.padding)) == 1
            and tuple(getattr(m, "output_padding", (0, 0))) == (0, 0))


def _active(x: torch.Tensor) -> bool:
    """Training under CPU bf16 autocast: what the matmul form was measured to pay in (the gain is
    in the backward; running a generator without gradients, oneDNN's forward was as fast or faster)."""
    return x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu") and \
        torch.get_autocast_dtype("cpu") == torch.bfloat16


def conv2d_matmul(x: torch.Tensor, weight: torch.Tensor, bias, stride: int, padding: int) -> torch.Tensor:
    """F.conv2d(x, weight, bias, stride, padding) as one [B*Ho*Wo, Cin*k*k] x [Cin*k*k, Cout]
    product (the result channels_last, as the product lays it out)."""
    cout, cin, k, _ = weight.shape
    b, _, h, w_in = x.shape
    ho, wo = (h + 2 * padding - k) // stride + 1, (w_in + 2 * padding - k) // stride + 1
    if ho == wo == 1 and not padding and h == w_in == k:  # the kernel covers the map: a linear layer
        cols = x.reshape(b, cin * k * k)
    else:
        cols = F.unfold(x, k, padding=padding, stride=stride)  # [B, Cin*k*k, Ho*Wo]; its backward is F.fold
        cols = cols.transpose(1, 2).reshape(b * ho * wo, cin * k * k)
    w = weight.reshape(cout, cin * k * k)
    out = torch.addmm(bias, cols, w.t()) if bias is not None else cols @ w.t()
    return out.view(b, ho, wo, cout).permute(0, 3, 1, 2)


def conv_transpose2d_matmul(x: torch.Tensor, weight: torch.Tensor, bias, stride: int, padding: int) -> torch.Tensor:
    """F.conv_transpose2d(x, weight, bias, stride, padding) as one [B*H*W, Cin] x [Cin, Cout*k*k]
    product followed by col2im (F.fold adds the overlapping k x k patches)."""
    cin, cout, k, _ = weight.shape
    b, _, h, w_in = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w_in, cin)  # a view for a channels_last input
    cols = rows @ weight.reshape(cin, cout * k * k)  # [B*H*W, Cout*k*k]
    cols = cols.view(b, h * w_in, cout * k * k).transpose(1, 2)
    size = ((h - 1) * stride - 2 * padding + k, (w_in - 1) * stride - 2 * padding + k)
    out = F.fold(cols, size, k, padding=padding, stride=stride)
    return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)


def _conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if not _active(x):
        return type(self).forward(self, x)
    with torch.autocast("cpu", enabled=False):  # the casts autocast would make, made once here
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        return conv2d_matmul(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), bias,
                             self.stride[0], self.padding[0])


def _conv_transpose_forward(self: nn.ConvTranspose2d, x: torch.Tensor, output_size=None) -> torch.Tensor:
    if not _active(x) or output_size is not None:
        return type(self).forward(self, x, output_size)
    with torch.autocast("cpu", enabled=False):
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        return conv_transpose2d_matmul(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), bias,
                                       self.stride[0], self.padding[0])


def use_matmul_convs(module: nn.Module, max_side: int, min_weights: int, *inputs: torch.Tensor) -> list[str]:
    """Swap the matmul formulation into the plain Conv2d / ConvTranspose2d layers of `module`
    whose smaller map (the output of a convolution, the input of a transposed one) is at most
    `max_side` pixels a side (found by one float32 forward of `inputs`, run without gradients)
    and whose weight has at least `min_weights` entries (the wide layers); returns their names.
    Parameters and state_dict are left as they were; `restore_convs` undoes it."""
    sides: dict[str, int] = {}

    def record(name):
        def hook(m, i, out):
            sides.setdefault(name, min(i[0].shape[-1], out.shape[-1]))  # returns None: the output is kept
        return hook
    hooks = [m.register_forward_hook(record(name))
             for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            was = module.training
            module.eval()  # batch-norm statistics untouched
            module(*inputs)
            module.train(was)
    finally:
        for h in hooks:
            h.remove()
    swapped = []
    for name, m in module.named_modules():
        if name in sides and sides[name] <= max_side and m.weight.numel() >= min_weights and _plain(m) \
                and not hasattr(m, "parametrizations"):
            fast = _conv_transpose_forward if isinstance(m, nn.ConvTranspose2d) else _conv_forward
            m.forward = types.MethodType(fast, m)
            setattr(m, SWAPPED, sides[name])
            swapped.append(name)
    return swapped


def restore_convs(module: nn.Module) -> None:
    """Undo use_matmul_convs: every layer computes with its class's forward again."""
    for m in module.modules():
        if hasattr(m, SWAPPED):
            del m.forward
            delattr(m, SWAPPED)
