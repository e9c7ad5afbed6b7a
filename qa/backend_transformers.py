"""The model in bf16 through transformers (the baseline), with the fixed prompt prefix cached."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qa.generation import Message


class TransformersGenerator:
    """A chat model on the CPU from a converted folder, greedy, one request at a time.

    int8=False runs the bf16 weights. int8=True keeps float32 activations and stores every
    linear layer's weights in int8 with one scale per output channel (PyTorch dynamic
    quantisation, fbgemm kernels): half the bytes per token of bf16, and much faster here.
    """

    def __init__(self, name: str, folder: Path, threads: int = 2, int8: bool = False) -> None:
        import torch
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
        import torch
        from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

        emb = self.model.get_input_embeddings().weight
        head = self.model.get_output_embeddings()
        total = sum(p.numel() * p.element_size() for p in self.model.parameters())
        for module in self.model.modules():
            if isinstance(module, Int8Linear):
                weight = module.weight()  # an int8 layer: one byte per weight and its scales
                total += weight.numel() + weight.q_per_channel_scales().numel() * 8
        if not isinstance(head, torch.nn.Linear) or head.weight is not emb:
            total -= emb.numel() * emb.element_size()
        return total

    def keep_prefix(self, messages: list[Message]) -> None:
        """Evaluate these leading messages once and keep their key/value cache ([]: forget)."""
        import torch
        from transformers import DynamicCache

        self._saved = None
        if not messages:
            return
        ids = self.prompt_tokens(messages, generation_prompt=False)
        cache = DynamicCache(config=self.model.config)
        step = self.prefill_chunk or len(ids)
        with self._lock, torch.inference_mode():
            for start in range(0, len(ids), step):
                self.model(input_ids=torch.tensor([ids[start:start + step]]), cache=cache,
                           use_cache=True)
            self._saved = (ids, cache)

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Greedy decoding in a worker thread; tokens are yielded as they are decoded."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop.is_set()

        ids = self.prompt_tokens(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                        skip_special_tokens=True, timeout=600)
        kwargs: dict[str, Any] = dict(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
            top_k=None, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Stop()]),
            pad_token_id=self.tokenizer.eos_token_id, prefill_chunk_size=self.prefill_chunk)
        if self._saved is not None and len(ids) > len(self._saved[0]) and (
                ids[:len(self._saved[0])] == self._saved[0]):
            # generate() extends the cache in place: hand it a copy of the saved prefix.
            kwargs["cache"] = copy.deepcopy(self._saved[1])
        with self._lock:
            worker = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if piece:
                        yield piece
            finally:
                stop.set()
                worker.join()


def _int8_linear(linear: Any) -> Any:
    """An int8 copy of a linear layer: symmetric, one scale per output channel."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    weight = linear.weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    zero = torch.zeros(scale.shape, dtype=torch.long)
    packed = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
    layer = Int8Linear(linear.in_features, linear.out_features,
                       bias_=linear.bias is not None, dtype=torch.qint8)
    layer.set_weight_bias(packed, None if linear.bias is None else linear.bias.detach().float())
    return layer


def _quantize_int8(model: Any) -> None:
    """Replace every linear layer of the model by an int8 one, in place and one layer at a
    time (no whole float32 copy); the rest (embeddings, norms) becomes float32."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notices that quantized tensors move to torchao
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(parent, name, _int8_linear(child))
        model.float()
