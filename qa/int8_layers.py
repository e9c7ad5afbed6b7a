"""Linear layers with int8 weights for the CPU (PyTorch dynamic quantisation, fbgemm kernels).

Weights are symmetric int8 with one scale per output channel; each call quantises its float32
input with one scale for all of it (ResidualInt8Linear: per token, to about 14 bits). About
half the bytes per token of bf16, and the int8 matrix-vector kernels run near the memory
bandwidth here, where bf16 ones do not.
"""

from __future__ import annotations

import warnings

import torch
from torch.ao.nn.quantized.dynamic import Linear as PackedLinear

# ResidualInt8Linear: a token's grid spans -GRID_LEVELS..GRID_LEVELS steps, and its rounding
# error (at most half a step) is scaled by RESIDUAL_GAIN, a power of two, to at most 32 steps.
GRID_LEVELS = 63
RESIDUAL_GAIN = 64.0


def int8_linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> PackedLinear:
    """An int8 linear layer computing x @ weight.T + bias."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    zero = torch.zeros(scale.shape, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notice that quantized tensors move to torchao
        packed = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
    layer = PackedLinear(weight.shape[1], weight.shape[0], bias_=bias is not None,
                         dtype=torch.qint8)
    layer.set_weight_bias(packed, None if bias is None else bias.detach().float())
    return layer


def fused_int8_linear(*linears: torch.nn.Linear) -> PackedLinear:
    """One int8 layer for several layers that read the same input, their outputs side by side.

    The input's int8 scale comes from the input alone and the weight scales are per output
    channel, so the result equals the separate layers' results; one call reads the weights
    faster than several small ones (about 20 % for the MLP's two input layers here)."""
    biases = [linear.bias for linear in linears]
    bias = None if all(b is None for b in biases) else torch.cat([
        b.detach() if b is not None else torch.zeros(linear.out_features)
        for b, linear in zip(biases, linears, strict=True)])
    return int8_linear(torch.cat([linear.weight.detach() for linear in linears]), bias)


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes of weights a one-token call reads: an int8 byte and a float64 scale per row (a
    ResidualInt8Linear: plus its float32 input-channel scales)."""
    # From the shapes: unpacking an int8 layer's weights (module.weight()) left every later
    # decode step about 25 % slower.
    if isinstance(module, PackedLinear):
        return module.in_features * module.out_features + module.out_features * 8
    if isinstance(module, ResidualInt8Linear):
        return weight_bytes(module.int8) + module.channel_scale.numel() * 4
    return sum(p.numel() * p.element_size() for p in module.parameters())


class ResidualInt8Linear(torch.nn.Module):
    """An int8 linear layer for inputs with a few very large channels, nearly exact in them.

    The MLP output layers' inputs carry channels 30-100 times their mean magnitude: one int8
    scale per call rounds the rest away (plain int8 there cost 12 points of "answer contains
    gold" on 100 SQuAD questions). Here each call's input goes in twice, as rows of one int8
    product that reads the weights once: rounded to an int8 grid, and its rounding error
    scaled up by RESIDUAL_GAIN. Each token is first divided by its own power of two (its
    largest value / GRID_LEVELS, rounded up) and its output row multiplied back, so a token
    with huge values does not coarsen the others; a last row pins fbgemm's input scale to one,
    so the first rows are exact and the two together carry about 14 bits. What is left is the
    weights' rounding, which the large channels multiply; so each input channel's weights are
    scaled up as far as every row's int8 scale allows (1 to 5 times; the input is divided by
    the same), which uses the int8 levels the row's largest weight leaves free.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        size = weight.abs()
        # Per input channel: the largest factor that leaves every row's largest weight in place.
        scale = (size.amax(dim=1, keepdim=True) / size.clamp(min=1e-30)).amin(dim=0)
        scale = scale.clamp(min=1.0, max=2.0 ** 16)  # an all-zero channel: any factor; cap it
        self.channel_scale = 1.0 / scale
        self.int8 = int8_linear(weight * scale)  # no bias: it would be added to every row
        self.bias = None if linear.bias is None else linear.bias.detach().float()
        self.pin = torch.zeros(linear.in_features)  # fbgemm's input range: +-63.5, one per level
        self.pin[:2] = torch.tensor([GRID_LEVELS + 0.5, -GRID_LEVELS - 0.5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]) * self.channel_scale
        tokens = flat.shape[0]
        # Each token on its own grid: its largest value over GRID_LEVELS, rounded up to a power
        # of two (exact to divide by); the product is linear per row, so rows scale back.
        largest = flat.abs().amax(dim=1, keepdim=True)
        if not bool(torch.isfinite(largest).all()):  # inf/nan: pass them on as they are
            out = self.int8(flat)
        else:
            step = torch.frexp(largest.clamp(min=1e-30) / GRID_LEVELS).exponent
            step = torch.ldexp(torch.ones_like(largest), step)
            # fbgemm quantises to 128 levels (0..127) between the input's minimum and maximum:
            # the pin row makes that exactly one unit per level, zero at level 64.
            rows = flat.new_empty(2 * tokens + 1, flat.shape[1])
            scaled = flat / step
            grid = torch.round(scaled, out=rows[:tokens]).clamp_(-GRID_LEVELS, GRID_LEVELS)
            torch.sub(scaled, grid, out=rows[tokens:-1]).mul_(RESIDUAL_GAIN)
            rows[-1] = self.pin
            both = self.int8(rows)
            out = torch.add(both[:tokens], both[tokens:-1], alpha=1.0 / RESIDUAL_GAIN).mul_(step)
        if self.bias is not None:
            out += self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])
