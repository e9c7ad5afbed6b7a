"""Linear layers with int8 weights for the CPU (PyTorch dynamic quantisation, fbgemm kernels).

Weights are symmetric int8 with one scale per output channel; each call quantises its float32
input with one scale for all of it. About half the bytes per token of bf16, and the int8
matrix-vector kernels run near the memory bandwidth here, where bf16 ones do not.
"""

from __future__ import annotations

import warnings

import torch
from torch.ao.nn.quantized.dynamic import Linear as PackedLinear

# The MLP output layers' inputs carry a few very large activations that one int8 scale per call
# cannot hold (plain int8 there cost 12 points of "answer contains gold" and 14 points more
# refusals on 100 SQuAD questions; BENCHMARKS.md section 3). Their largest input channels go
# through a bf16 copy of the weights instead: in a prompt chunk the PROMPT_OUTLIERS largest (by
# their largest value over the chunk's tokens); for one decoded token, every channel above
# OUTLIER_RATIO times the mean magnitude: about 210 of 8,960 for the 1.5B model, the layer error
# of the 256 largest (1.44 % vs 1.37 %) without the top-k that took a sixteenth of a decode step.
# (The ratio rule for prompt chunks too cost 4 points of "answer contains gold".)
PROMPT_OUTLIERS = 256
OUTLIER_RATIO = 4.0


class Int8Linear(torch.nn.Module):
    """x @ weight.T + bias with int8 weights (one scale per output channel): PyTorch's packed
    fbgemm layer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        weight = weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        zero = torch.zeros(scale.shape, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notice that quantized tensors move to torchao
            quantized = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self.packed = PackedLinear(  # type: ignore[no-untyped-call]
            self.in_features, self.out_features,
            bias_=bias is not None, dtype=torch.qint8)
        self.packed.set_weight_bias(quantized, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.packed(x)
        return result


def int8_linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> Int8Linear:
    """An int8 linear layer computing x @ weight.T + bias."""
    return Int8Linear(weight, bias)


def fused_int8_linear(*linears: torch.nn.Linear) -> Int8Linear:
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
    """Bytes of weights a one-token call reads: an int8 byte per weight and 8 bytes per row
    (fbgemm's float64 scale); an OutlierInt8Linear: plus its mean number of bf16 rows so far."""
    # From the shapes: unpacking an int8 layer's weights (module.weight()) left every later
    # decode step about 25 % slower.
    if isinstance(module, Int8Linear):
        return module.in_features * module.out_features + module.out_features * 8
    if isinstance(module, OutlierInt8Linear):
        rows = module.outliers * module.rows.shape[1] * module.rows.element_size()
        return weight_bytes(module.int8) + round(rows)
    return sum(p.numel() * p.element_size() for p in module.parameters())


class OutlierInt8Linear(torch.nn.Module):
    """An int8 linear layer that takes its input's largest channels out of the int8 product.

    A call of several tokens picks the `outliers` channels whose largest magnitude over the
    tokens is largest; a one-token call picks the channels above `ratio` times the mean
    magnitude. They are summed over a bf16 copy of their weights, the rest goes through the
    int8 layer. At one token per call that reads a few hundred extra weight rows, not a whole
    bf16 layer.
    """

    def __init__(self, linear: torch.nn.Linear, outliers: int = PROMPT_OUTLIERS,
                 ratio: float = OUTLIER_RATIO) -> None:
        super().__init__()
        self.int8 = int8_linear(linear.weight, linear.bias)
        # Input-major, so that a channel's weights are one row (an embedding-bag table).
        self.rows = linear.weight.detach().t().contiguous().to(torch.bfloat16)
        self.prompt_outliers = min(outliers, linear.in_features)
        self.ratio = ratio
        self.picked = self.calls = 0  # channels taken out at one-token calls, for weight_bytes

    @property
    def outliers(self) -> float:
        """Mean number of channels taken out per one-token call (0 before any)."""
        return self.picked / self.calls if self.calls else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        tokens = flat.shape[0]
        if tokens == 1:
            size = flat[0].abs()
            channels = (size > size.mean() * self.ratio).nonzero().view(-1)
            self.picked += channels.numel()
            self.calls += 1
        else:
            channels = flat.abs().amax(dim=0).topk(self.prompt_outliers).indices
        out: torch.Tensor = self.int8(flat.index_fill(1, channels, 0.0))
        if channels.numel():  # (an empty bag is an error)
            # Per token (one bag each): the sum of the outlier channels' weight rows, weighted
            # by the token's values in those channels.
            out += torch.nn.functional.embedding_bag(
                channels.expand(tokens, -1), self.rows, mode="sum",
                per_sample_weights=flat.index_select(1, channels).to(torch.bfloat16))
        return out.reshape(*x.shape[:-1], out.shape[-1])
