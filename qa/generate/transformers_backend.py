"""Chat models on the CPU through transformers: its own forward in bf16 (the baseline), or the
lean int8 forward (qa.generate.int8.decoder); the fixed prompt prefix's key/value cache kept."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch

from qa import compute
from qa.config import Backend
from qa.generate.base import KEPT_PREFIXES, ReplyStream, prefix_tokens, reply_tokens
from qa.generate.int8.decoder import LeanDecoder
from qa.types import Message


class TransformersRunner(torch.nn.Module):
    """transformers' own forward pass over its DynamicCache (the bf16 baseline)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def new_cache(self) -> Any:
        """An empty cache for this model."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def weight_bytes(self) -> int:
        """Bytes of weights read to decode one token (an input table not shared with the
        output layer: one row of it)."""
        emb = self.model.get_input_embeddings().weight
        head = self.model.get_output_embeddings()
        total: int = sum(p.numel() * p.element_size() for p in self.model.parameters())
        if not isinstance(head, torch.nn.Linear) or head.weight is not emb:
            total -= (emb.shape[0] - 1) * emb.shape[1] * emb.element_size()
        return total

    def forward(self, ids: list[int], cache: Any, all_logits: bool = False) -> torch.Tensor:
        """Logits after ids (all_logits: one row per id, else the last id's), with ids
        appended to the cache."""
        with torch.inference_mode():
            logits: torch.Tensor = self.model(
                input_ids=torch.tensor([ids]), cache=cache, use_cache=True,
                logits_to_keep=0 if all_logits else 1).logits[0]
        return logits if all_logits else logits[-1]


class TransformersGenerator:
    """A chat model on the CPU from a converted folder, greedy; streams decode on caches of
    their own, their steps taking turns on the compute thread.

    int8=False runs transformers' own forward on the bf16 weights (the baseline). int8=True
    runs the lean forward with int8 weights and float32 activations: about half the bytes per
    token of bf16, and much faster here.
    """

    scores_alternatives = True

    def __init__(self, name: str, folder: Path, threads: int = 2, int8: bool = False) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.backend: Backend = "transformers-int8" if int8 else "transformers"
        torch.set_num_threads(threads)
        # A local folder only (local_files_only): nothing is fetched from a hub.
        self.tokenizer = AutoTokenizer.from_pretrained(  # nosec B615
            folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(  # nosec B615
            folder, dtype=torch.bfloat16, local_files_only=True)
        model.eval()  # type: ignore[no-untyped-call]
        self.runner: Any = (LeanDecoder(model, int8=True) if int8
                            else TransformersRunner(model))
        # int8 layers quantise their input per call with one scale for all its tokens: a long
        # prompt in one call loses precision to its outlier tokens, so it goes in chunks.
        self.prefill_chunk = 128 if int8 else None
        eos = model.generation_config.eos_token_id
        self._eos = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {
            None}
        # Kept key/value caches: (ids held, cache, tokens a prompt must share to use it).
        self._kept: list[tuple[list[int], Any, int]] = []  # prompt prefixes, latest first
        self._last: tuple[list[int], Any, int] | None = None  # the last finished conversation
        self._lock = threading.Lock()

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat template applied to messages."""
        encoded = cast("dict[str, list[int]]", self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=True))
        return list(encoded["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (for speed figures)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def weight_bytes(self) -> int:
        """Bytes of weights read to decode one token."""
        return int(self.runner.weight_bytes())

    def keep_prefix(self, messages: list[Message], persist: bool = False) -> None:
        """Evaluate these leading messages once and keep their key/value cache, beside the
        latest others ([]: forget them all; see the contract in qa.generate.base)."""
        ids, needed = prefix_tokens(self, messages) if messages else ([], 0)
        with self._lock:
            if not ids:
                self._kept, self._last = [], None
                return
            for entry in self._kept:
                if entry[0] == ids and entry[2] == needed:  # kept already: now the latest
                    self._kept = [entry, *(e for e in self._kept if e is not entry)]
                    return
            cache = compute.run(self._prefill, ids, None)[0]
            self._kept = [(ids, cache, needed), *self._kept][:KEPT_PREFIXES]

    def _reusable(self, ids: list[int]) -> tuple[int, Any]:
        """(n, cache): the kept cache whose first n tokens are ids' first n, the longest,
        leaving at least one token of ids to evaluate; (0, None) when none fits. A kept
        prefix fits a prompt that starts with it; the last conversation fits only a prompt
        that continues its whole prompt, so that an answer never depends on the question
        asked before it. Of caches that fit equally far, the shortest serves: the reply then
        does not depend on which longer prefixes happen to be kept."""
        best: tuple[int, int, Any] = (0, 0, None)
        for held, cache, needed in [*self._kept, *filter(None, [self._last])]:
            n = 0
            for a, b in zip(held, ids[:-1], strict=False):
                if a != b:
                    break
                n += 1
            if n >= needed and (n, -len(held)) > best[:2]:
                best = (n, -len(held), cache)
        return best[0], best[2]

    def _prefill(self, ids: list[int], start: Any, keep: int | None = None) -> tuple[Any, Any]:
        """(cache, logits of the last token) after evaluating ids on top of a copy of the
        cache `start` cut to its first `keep` tokens (None: an empty cache), in chunks of
        prefill_chunk tokens."""
        cache = copy.deepcopy(start) if start is not None else self.runner.new_cache()
        if start is not None and keep is not None and keep < cache.get_seq_length():
            cache.crop(keep - cache.get_seq_length())  # a negative count: tokens to drop
        step = self.prefill_chunk or len(ids)
        logits = None
        for begin in range(0, len(ids), step):
            logits = self._forward(ids[begin:begin + step], cache)
        return cache, logits

    def _forward(self, ids: list[int], cache: Any) -> Any:
        """Logits of the last of ids, appended to cache."""
        return self.runner(ids, cache)

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        """Greedy decoding, one compute-thread job per prompt chunk and per token; the next
        token is computed while this one is handed out. With `alternative`, its
        log-probability as the whole reply follows from the same key/value cache (one more
        forward pass of its few tokens). Closing the stream stops it."""
        stream = ReplyStream()
        stream.pieces = self._decode(messages, max_new_tokens, alternative, stream)
        return stream

    def _decode(self, messages: list[Message], max_new_tokens: int, alternative: str | None,
                stream: ReplyStream) -> Iterator[str]:
        ids = self.prompt_tokens(messages)
        # The lock guards the kept caches only, never a suspended stream: each stream decodes
        # on a copy of its own, so one that is left unread holds up no other.
        with self._lock:
            done, start = self._reusable(ids)
        cache, logits = compute.run(self._prefill, ids[done:], start, done)
        first = logits
        new: list[int] = []
        picked = 0.0  # the log-probabilities of the chosen tokens, summed
        shown = ""
        for _ in range(max_new_tokens):
            token = int(logits.argmax())
            if token in self._eos:
                break
            new.append(token)
            pending = compute.submit(self._forward, [token], cache)
            picked += float(torch.log_softmax(logits.float(), -1)[token])
            text = self._text(new)
            if len(text) > len(shown) and not text.endswith("\ufffd"):  # whole characters
                yield text[len(shown):]
                shown = text
            logits = pending.result()
        text = self._text(new)
        if len(text) > len(shown):
            yield text[len(shown):]
        stream.reply_logprob = picked / len(new) if new else None
        if alternative is not None and text != alternative:
            reply = self._reply_tokens(messages, ids, alternative)
            if reply:
                stream.alternative_logprob = compute.run(
                    self._logprob, len(ids), first, copy.deepcopy(cache), reply)
        # Kept for a next prompt that continues this conversation (only when the stream
        # ran to its end: a closed one may still have a step running on the cache).
        with self._lock:
            self._last = (ids + new, cache, len(ids))

    def _text(self, ids: list[int]) -> str:
        return cast(str, self.tokenizer.decode(ids, skip_special_tokens=True))

    def _reply_tokens(self, messages: list[Message], ids: list[int], reply: str) -> list[int]:
        """The tokens the model would generate to give `reply`, up to its end-of-turn token."""
        return reply_tokens(self, messages, ids, reply, self._eos.__contains__)

    def _logprob(self, prompt_length: int, first: Any, cache: Any, reply: list[int]) -> float:
        """Log-probability of reply after the prompt, given the logits that followed the
        prompt and its cache (cut back to the prompt)."""
        cache.crop(prompt_length - cache.get_seq_length())  # a negative count: tokens to drop
        total = float(torch.log_softmax(first.float(), -1)[reply[0]])
        if len(reply) > 1:
            logits = self.runner(reply[:-1], cache, all_logits=True).float()
            picked = torch.log_softmax(logits, -1)[torch.arange(len(reply) - 1), reply[1:]]
            total += float(picked.sum())
        return total
