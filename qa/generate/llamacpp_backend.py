"""The GGUF model through llama.cpp (llama-cpp-python), with the fixed prompt prefix cached."""

from __future__ import annotations

import codecs
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qa import compute
from qa.config import Backend
from qa.errors import ModelUnavailable, PromptTooLong
from qa.generate.base import KEPT_PREFIXES, ReplyStream, prefix_tokens
from qa.types import Message


class LlamaCppGenerator:
    """A chat model from a GGUF file on the CPU, greedy, one request at a time.

    `keep_prefix` evaluates a chat prefix once and saves its key/value state (the latest
    few side by side); a later prompt that starts with the same tokens restores it and
    evaluates only the rest.
    """

    backend: Backend = "llama.cpp"
    scores_alternatives = False

    def __init__(self, name: str, gguf: Path, threads: int = 2, context: int = 4096) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self.llm = Llama(model_path=str(gguf), n_ctx=context, n_batch=512, n_ubatch=512,
                         n_threads=threads, n_threads_batch=threads, verbose=False)
        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailable(f"{gguf.name} carries no chat template")
        tokens = self.llm.tokenizer_

        def token_text(key: str) -> str:
            ident = meta.get(key)
            return tokens.detokenize([int(ident)], special=True).decode() if ident else ""

        eos = token_text("tokenizer.ggml.eos_token_id")
        bos = token_text("tokenizer.ggml.bos_token_id")
        # The template is rendered in jinja2's sandbox, as transformers does.
        self._render = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        self._prefix = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos,
                                           add_generation_prompt=False)
        self._kept: list[tuple[list[int], Any]] = []  # (prefix ids, saved state), latest first
        self._lock = threading.Lock()

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat template applied to messages."""
        render = self._render if generation_prompt else self._prefix
        text = render(messages=messages).prompt
        ids: list[int] = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (for speed figures)."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False))

    def weight_bytes(self) -> int:
        """Bytes of weights read to decode one token: every tensor of the file."""
        import llama_cpp

        return int(llama_cpp.llama_model_size(self.llm.model))

    def keep_prefix(self, messages: list[Message]) -> None:
        """Evaluate these leading messages once and keep their key/value state, beside the
        latest others ([]: forget them all; see the contract in qa.generate.base)."""
        ids = prefix_tokens(self, messages)[0] if messages else []
        with self._lock:
            for entry in self._kept:
                if entry[0] == ids:  # kept already: now the latest
                    self._kept = [entry, *(e for e in self._kept if e is not entry)]
                    return
            self.llm.reset()
            if not ids:
                self._kept = []
                return
            compute.run(self.llm.eval, ids)
            self._kept = [(ids, self.llm.save_state()), *self._kept][:KEPT_PREFIXES]

    def _restore_prefix(self, ids: list[int]) -> None:
        """Load the longest kept prefix that ids start with when the context holds less of
        ids than it does."""
        fits = [(prefix, state) for prefix, state in self._kept if ids[:len(prefix)] == prefix]
        if not fits:
            return
        prefix, state = max(fits, key=lambda entry: len(entry[0]))
        held = self.llm.longest_token_prefix(self.llm.input_ids[:self.llm.n_tokens].tolist(), ids)
        if held < len(prefix):
            self.llm.load_state(state)

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        """Greedy decoding; text comes as whole UTF-8 characters become available. This
        backend scores no alternative reply (`alternative` is ignored)."""
        return ReplyStream(self._decode(messages, max_new_tokens))

    def _decode(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        import llama_cpp

        ids = self.prompt_tokens(messages)
        if len(ids) + max_new_tokens > self.llm.n_ctx():
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; the context holds "
                             f"{self.llm.n_ctx()} including {max_new_tokens} for the reply")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = self.llm._model.vocab  # the library's own end-of-generation test uses it
        with self._lock:
            self._restore_prefix(ids)
            tokens = self.llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                       repeat_penalty=1.0)
            try:
                # Each step on the compute thread: ggml's OpenMP is the runtime torch loaded.
                steps = iter(lambda: compute.run(next, tokens, None), None)
                for count, token in enumerate(steps, 1):
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    text = decoder.decode(self.llm.detokenize([token]))
                    if text:
                        yield text
                    if count >= max_new_tokens:
                        break
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
            finally:
                compute.run(tokens.close)
