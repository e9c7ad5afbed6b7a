"""The model in bf16 through transformers (the baseline), with the fixed prompt prefix cached."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from qa import compute
from qa.generation import Message, ScoredStream


class TransformersGenerator:
    """A chat model on the CPU from a converted folder, greedy, one request at a time.

    int8=False runs the bf16 weights. int8=True keeps float32 activations and stores the
    linear layers' weights in int8 with one scale per output channel (PyTorch dynamic
    quantisation, fbgemm kernels); OUTLIER_LAYERS keep their largest input channels out of
    int8. About half the bytes per token of bf16, and much faster here.
    """

    def __init__(self, name: str, folder: Path, threads: int = 2, int8: bool = False) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.backend = "transformers-int8" if int8 else "transformers"
        torch.set_num_threads(threads)
        # A local folder only (local_files_only): nothing is fetched from a hub.
        self.tokenizer = AutoTokenizer.from_pretrained(  # nosec B615
            folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(  # nosec B615
            folder, dtype=torch.bfloat16, local_files_only=True)
        self.model.eval()
        # int8 layers quantise their input per call with one scale for all its tokens: a long
        # prompt in one call loses precision to its outlier tokens, so it goes in chunks.
        self.prefill_chunk = 128 if int8 else None
        if int8:
            _quantize_int8(self.model)
        eos = self.model.generation_config.eos_token_id
        self._eos = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {
            None}
        self._saved: tuple[list[int], Any] | None = None
        self._lock = threading.Lock()

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat template applied to messages."""
        return list(self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True,
            return_dict=True)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (for speed figures)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def weight_bytes(self) -> int:
        """Bytes of weights read to decode one token (an input table not shared with the
        output layer: one row)."""
        from torch.ao.nn.quantized.dynamic import Linear as PackedLinear

        emb = self.model.get_input_embeddings().weight
        head = self.model.get_output_embeddings()
        total = sum(p.numel() * p.element_size() for p in self.model.parameters())
        for module in self.model.modules():
            # From the shapes: unpacking an int8 layer's weights (module.weight()) leaves
            # every later decode step about 25% slower.
            if isinstance(module, PackedLinear):  # one byte per weight, a float64 scale per row
                total += module.in_features * module.out_features + module.out_features * 8
            elif isinstance(module, OutlierInt8Linear):
                total += module.outliers * module.rows.shape[1] * 2  # the bf16 rows it reads
        if not isinstance(head, torch.nn.Linear) or head.weight is not emb:
            total -= emb.numel() * emb.element_size()
        return total

    def keep_prefix(self, messages: list[Message]) -> None:
        """Evaluate these leading messages once and keep their key/value cache ([]: forget)."""
        with self._lock:
            self._saved = None
            if messages:
                ids = self.prompt_tokens(messages, generation_prompt=False)
                self._saved = (ids, compute.run(self._prefill, ids, None)[0])

    def _prefill(self, ids: list[int], start: Any) -> tuple[Any, Any]:
        """(cache, logits of the last token) after evaluating ids on top of a copy of the
        cache `start` (None: an empty cache), in chunks of prefill_chunk tokens."""
        from transformers import DynamicCache

        cache = copy.deepcopy(start) if start is not None else DynamicCache(
            config=self.model.config)
        step = self.prefill_chunk or len(ids)
        logits = None
        for begin in range(0, len(ids), step):
            logits = self._forward(ids[begin:begin + step], cache)
        return cache, logits

    def _forward(self, ids: list[int], cache: Any) -> Any:
        """Logits of the last of ids, appended to cache."""
        with torch.inference_mode():
            return self.model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True,
                              logits_to_keep=1).logits[0, -1]

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Greedy decoding, one compute-thread job per prompt chunk and per token; the next
        token is computed while this one is handed out. Closing the iterator stops it."""
        return self._decode(messages, max_new_tokens, None, None)

    def stream_scored(self, messages: list[Message], max_new_tokens: int,
                      alternative: str) -> ScoredStream:
        """stream(), then the log-probability of `alternative` as the whole reply, from the
        same key/value cache (one more forward pass of its few tokens)."""
        scored = ScoredStream()
        scored.pieces = self._decode(messages, max_new_tokens, alternative, scored)
        return scored

    def _decode(self, messages: list[Message], max_new_tokens: int, alternative: str | None,
                scored: ScoredStream | None) -> Iterator[str]:
        ids = self.prompt_tokens(messages)
        with self._lock:
            prefix, start = self._saved or ([], None)
            if not (prefix and len(ids) > len(prefix) and ids[:len(prefix)] == prefix):
                prefix, start = [], None
            cache, logits = compute.run(self._prefill, ids[len(prefix):], start)
            first = logits
            new: list[int] = []
            shown = ""
            for _ in range(max_new_tokens):
                token = int(logits.argmax())
                if token in self._eos:
                    break
                new.append(token)
                pending = compute.submit(self._forward, [token], cache)
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                if len(text) > len(shown) and not text.endswith("\ufffd"):  # whole characters
                    yield text[len(shown):]
                    shown = text
                logits = pending.result()
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if len(text) > len(shown):
                yield text[len(shown):]
            if scored is not None and alternative is not None and text != alternative:
                reply = self._reply_tokens(messages, ids, alternative)
                if reply:
                    scored.alternative_logprob = compute.run(
                        self._logprob, len(ids), first, cache, reply)

    def _reply_tokens(self, messages: list[Message], ids: list[int], reply: str) -> list[int]:
        """The tokens the model would generate to give `reply`, up to its end-of-turn token."""
        full = self.prompt_tokens([*messages, {"role": "assistant", "content": reply}],
                                  generation_prompt=False)
        if full[:len(ids)] != ids:
            return []
        tokens = full[len(ids):]
        ends = [i for i, t in enumerate(tokens) if t in self._eos]
        return tokens[:ends[0] + 1] if ends else tokens

    def _logprob(self, prompt_length: int, first: Any, cache: Any, reply: list[int]) -> float:
        """Log-probability of reply after the prompt, given the logits that followed the
        prompt and its cache (cut back to the prompt)."""
        cache.crop(prompt_length - cache.get_seq_length())  # a negative count: tokens to drop
        total = float(torch.log_softmax(first.float(), -1)[reply[0]])
        if len(reply) > 1:
            with torch.inference_mode():
                logits = self.model(input_ids=torch.tensor([reply[:-1]]), cache=cache,
                                    use_cache=True).logits[0].float()
            picked = torch.log_softmax(logits, -1)[torch.arange(len(reply) - 1), reply[1:]]
            total += float(picked.sum())
        return total


def _int8_linear(linear: Any) -> Any:
    """An int8 copy of a linear layer: symmetric, one scale per output channel."""
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    weight = linear.weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    zero = torch.zeros(scale.shape, dtype=torch.long)
    packed = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
    layer = Int8Linear(linear.in_features, linear.out_features,
                       bias_=linear.bias is not None, dtype=torch.qint8)
    layer.set_weight_bias(packed, None if linear.bias is None else linear.bias.detach().float())
    return layer


# The MLP output projections: their inputs carry a few very large activations that one int8
# scale per call cannot hold (plain int8 there cost 12 points of "answer contains gold" and 14
# points more refusals on 100 SQuAD questions; BENCHMARKS.md section 3). Their largest input
# channels go through a bf16 copy of the weights instead.
OUTLIER_LAYERS = ("down_proj",)
OUTLIERS = 256


class OutlierInt8Linear(torch.nn.Module):
    """An int8 linear layer that takes its input's largest channels out of the int8 product.

    Each call picks the `outliers` channels with the largest magnitude over the call's tokens;
    they are summed over a bf16 copy of their weights, the rest goes through the int8 layer.
    At one token per call that reads `outliers` extra weight rows, not a whole bf16 layer.
    """

    def __init__(self, linear: torch.nn.Linear, outliers: int = OUTLIERS) -> None:
        super().__init__()
        self.int8 = _int8_linear(linear)
        # Input-major, so that a channel's weights are one row (an embedding-bag table). A plain
        # attribute, not a buffer: model.float() would double it.
        self.rows = linear.weight.detach().t().contiguous().to(torch.bfloat16)
        self.outliers = min(outliers, linear.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        tokens = flat.shape[0]
        channels = flat.abs().amax(dim=0).topk(self.outliers).indices
        out = self.int8(flat.index_fill(1, channels, 0.0))
        # Per token: the sum of the outlier channels' weight rows, weighted by their values.
        out += torch.nn.functional.embedding_bag(
            channels.repeat(tokens), self.rows,
            torch.arange(0, tokens * self.outliers, self.outliers),
            mode="sum", per_sample_weights=flat[:, channels].reshape(-1).to(torch.bfloat16))
        return out.reshape(*x.shape[:-1], out.shape[-1])


def _quantize_int8(model: Any) -> None:
    """Replace the model's linear layers by int8 ones (OUTLIER_LAYERS: OutlierInt8Linear), in
    place and one layer at a time (no whole float32 copy); the rest (embeddings, norms) becomes
    float32."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notices that quantized tensors move to torchao
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    convert = OutlierInt8Linear if name in OUTLIER_LAYERS else _int8_linear
                    setattr(parent, name, convert(child))
        model.float()
