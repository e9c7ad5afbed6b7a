"""A lean forward pass for Qwen2-style decoder models over a preallocated key/value cache.

It computes what transformers' forward computes, from the same weights, without its per-call
work (mask and cache objects, decorators, output records): at one token per call that work
took a tenth of a decode step here. The linear layers that read the same input are fused
into one (query/key/value; the MLP's gate/up), in int8 (`int8=True`) or in the model's dtype.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
from torch.nn import functional

from qa.generate.int8.layers import OutlierInt8Linear, fused_int8_linear, int8_linear, weight_bytes


class KVCache:
    """Keys and values of every layer in preallocated buffers; the first `length` tokens hold."""

    def __init__(self, layers: int, heads: int, head_dim: int, dtype: torch.dtype,
                 capacity: int = 1024) -> None:
        self.length = 0
        # Unwritten memory is never touched (nor paid for): only `length` tokens are read.
        self.keys = torch.empty(layers, heads, capacity, head_dim, dtype=dtype)
        self.values = torch.empty_like(self.keys)

    def reserve(self, tokens: int) -> None:
        """Make room for `tokens` more tokens (the buffers at least double when they grow)."""
        needed = self.length + tokens
        if needed > self.keys.shape[2]:
            self.keys, self.values = (self._moved(buffer, max(needed, 2 * buffer.shape[2]))
                                      for buffer in (self.keys, self.values))

    def _moved(self, buffer: torch.Tensor, capacity: int) -> torch.Tensor:
        new = buffer.new_empty(*buffer.shape[:2], capacity, buffer.shape[3])
        new[:, :, :self.length] = buffer[:, :, :self.length]
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> KVCache:
        clone = copy.copy(self)
        clone.keys, clone.values = (self._moved(buffer, buffer.shape[2])
                                    for buffer in (self.keys, self.values))
        return clone

    def crop(self, length: int) -> None:
        """Keep the first `length` tokens; a negative value drops that many from the end (as
        transformers' DynamicCache.crop)."""
        self.length = max(0, self.length + length if length < 0 else min(self.length, length))

    def get_seq_length(self) -> int:
        """Tokens held."""
        return self.length


class _Layer(torch.nn.Module):
    """One decoder layer's weights, its paired linear layers fused."""

    def __init__(self, layer: Any, int8: bool) -> None:
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        self.input_norm: torch.Tensor = layer.input_layernorm.weight.detach()
        self.post_norm: torch.Tensor = layer.post_attention_layernorm.weight.detach()
        self.qkv: torch.nn.Module
        self.o: torch.nn.Module
        self.gate_up: torch.nn.Module
        self.down: torch.nn.Module
        if int8:
            self.qkv = fused_int8_linear(attn.q_proj, attn.k_proj, attn.v_proj)
            self.o = int8_linear(attn.o_proj.weight, attn.o_proj.bias)
            self.gate_up = fused_int8_linear(mlp.gate_proj, mlp.up_proj)
            self.down = OutlierInt8Linear(mlp.down_proj)
            self.input_norm, self.post_norm = self.input_norm.float(), self.post_norm.float()
        else:
            self.qkv = _fused_linear(attn.q_proj, attn.k_proj, attn.v_proj)
            self.o, self.down = attn.o_proj, mlp.down_proj
            self.gate_up = _fused_linear(mlp.gate_proj, mlp.up_proj)


def _fused_linear(*linears: torch.nn.Linear) -> torch.nn.Linear:
    first = linears[0]
    fused = torch.nn.Linear(first.in_features, sum(lin.out_features for lin in linears),
                            bias=first.bias is not None, dtype=first.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([lin.weight for lin in linears]))
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([lin.bias for lin in linears]))
    return fused


def check_supported(config: Any) -> None:
    """Raise ValueError unless the lean forward computes what transformers does for config."""
    rope = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    problems = [
        f"model type {config.model_type!r}" * (config.model_type != "qwen2"),
        f"activation {config.hidden_act!r}" * (config.hidden_act != "silu"),
        "sliding-window attention" * bool(getattr(config, "use_sliding_window", False)),
        f"rope type {rope!r}" * (rope != "default"),
    ]
    if any(problems):
        raise ValueError("the lean decoder supports Qwen2-style models only, not: "
                         + ", ".join(p for p in problems if p))


class LeanDecoder(torch.nn.Module):
    """Forward passes of a loaded Qwen2-style causal LM (transformers) over a KVCache.

    It copies or converts the weights it needs, so the transformers model can be dropped.
    int8=True: linear layers in int8 (PyTorch's fbgemm) and float32 activations; else the
    model's dtype."""

    def __init__(self, model: Any, int8: bool = False) -> None:
        super().__init__()
        config = model.config
        check_supported(config)
        inner = model.model
        self.dtype = torch.float32 if int8 else model.dtype
        self.embed: torch.Tensor = inner.embed_tokens.weight.detach()  # rows: self.dtype when read
        head = model.get_output_embeddings()
        self.head: torch.nn.Module = (int8_linear(head.weight, head.bias) if int8
                                      else head)
        self.final_norm: torch.Tensor = inner.norm.weight.detach().to(self.dtype)
        self.layers = torch.nn.ModuleList(_Layer(layer, int8) for layer in inner.layers)
        self.blocks = cast("list[_Layer]", list(self.layers))  # the same modules, typed
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.inv_freq = inner.rotary_emb.inv_freq.detach().float()
        self.rope_scale = float(getattr(inner.rotary_emb, "attention_scaling", 1.0))

    def new_cache(self, capacity: int = 1024) -> KVCache:
        """An empty cache for this model."""
        return KVCache(len(self.layers), self.kv_heads, self.head_dim, self.dtype, capacity)

    def weight_bytes(self) -> int:
        """Bytes of weights read to decode one token (one embedding row)."""
        rows = self.embed.shape[1] * self.embed.element_size()
        norms = sum(norm.numel() * norm.element_size() for norm in (
            self.final_norm, *(n for layer in self.blocks for n in (layer.input_norm,
                                                                    layer.post_norm))))
        return rows + norms + weight_bytes(self.head) + sum(
            weight_bytes(module) for layer in self.blocks
            for module in (layer.qkv, layer.o, layer.gate_up, layer.down))

    def _rotary(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(start, start + count, dtype=torch.float32)
        angles = positions[:, None] * self.inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        return ((angles.cos() * self.rope_scale).to(self.dtype),
                (angles.sin() * self.rope_scale).to(self.dtype))

    def forward(self, ids: list[int], cache: KVCache, all_logits: bool = False) -> torch.Tensor:
        """Logits after ids (all_logits: one row per id, else the last id's only), with ids
        appended to the cache."""
        count, start = len(ids), cache.length
        end = start + count
        cache.reserve(count)
        cos, sin = self._rotary(start, count)
        half = self.head_dim // 2
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        # Each new token sees the cache and the new tokens up to itself.
        mask = torch.ones(count, end, dtype=torch.bool).tril(start) if count > 1 else None
        with torch.inference_mode():
            x = self.embed[torch.tensor(ids)].to(self.dtype)
            for index, layer in enumerate(self.blocks):
                h = functional.rms_norm(x, (x.shape[-1],), layer.input_norm, self.eps)
                qkv = layer.qkv(h)
                # Queries and keys side by side, rotated together: (tokens, heads, head_dim).
                qk = qkv[:, :q_size + kv_size].view(count, -1, self.head_dim)
                qk = (qk * cos[:, None]
                      + torch.cat((-qk[..., half:], qk[..., :half]), -1) * sin[:, None])
                cache.keys[index, :, start:end] = qk[:, self.heads:].transpose(0, 1)
                cache.values[index, :, start:end] = qkv[:, q_size + kv_size:].view(
                    count, self.kv_heads, self.head_dim).transpose(0, 1)
                out = functional.scaled_dot_product_attention(
                    qk[:, :self.heads].transpose(0, 1)[None], cache.keys[index, None, :, :end],
                    cache.values[index, None, :, :end], attn_mask=mask,
                    scale=self.head_dim ** -0.5, enable_gqa=True)
                x = x + layer.o(out[0].transpose(0, 1).reshape(count, q_size))
                h = functional.rms_norm(x, (x.shape[-1],), layer.post_norm, self.eps)
                gate, up = layer.gate_up(h).chunk(2, dim=-1)
                x = x + layer.down(functional.silu(gate) * up)
            cache.length = end
            x = functional.rms_norm(x if all_logits else x[-1:], (x.shape[-1],),
                                    self.final_norm, self.eps)
            logits: torch.Tensor = self.head(x)
        return logits if all_logits else logits[0]
