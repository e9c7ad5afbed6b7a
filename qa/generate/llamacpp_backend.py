"""The GGUF model through llama.cpp (llama-cpp-python), with the fixed prompt prefix cached."""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from qa import compute
from qa.config import Backend
from qa.errors import ModelUnavailable, PromptTooLong
from qa.generate.base import KEPT_PREFIXES, ReplyStream, prefix_tokens, reply_tokens
from qa.generate.prefix_store import PrefixStore
from qa.types import Message


class LlamaCppGenerator:
    """A chat model from a GGUF file on the CPU, greedy; one stream at a time holds the
    model's one context.

    `keep_prefix` evaluates a chat prefix once and saves its key/value state (the latest
    few side by side); a later prompt that starts with the same tokens restores it and
    evaluates only the rest. A stream left unread for `stall_seconds` loses the context to
    one that waits; read again, it waits its turn and re-evaluates its tokens so far.
    With `alternative`, the stream scores that reply after the prompt from the same context
    (one batch of its few tokens).
    """

    backend: Backend = "llama.cpp"
    scores_alternatives = True
    stall_seconds = 1.0

    def __init__(self, name: str, gguf: Path, threads: int = 2, context: int = 4096,
                 state_dir: Path | None = None, weights_sha256: str = "") -> None:
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        # Prefixes kept with persist=True are saved here for the next start (state_dir None
        # or no weights hash: never).
        self.store = PrefixStore(state_dir, "\n".join((
            weights_sha256, llama_cpp.__version__,
            llama_cpp.llama_print_system_info().decode(), f"n_ctx {context}"))
        ) if state_dir is not None and weights_sha256 else None
        # Read, not memory-mapped: llama.cpp repacks most weights for its CPU kernels, and the
        # mapped file's pages would stay resident beside the repacked copy (peak RSS 1.9 vs
        # 1.3 GB for the 1.5B model; BENCHMARKS.md section 3).
        self.llm = Llama(model_path=str(gguf), n_ctx=context, n_batch=512, n_ubatch=512,
                         n_threads=threads, n_threads_batch=threads, use_mmap=False,
                         verbose=False)
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
        self._kept: list[tuple[list[int], bytes]] = []  # (prefix ids, saved state), latest first
        self._lock = threading.Condition()  # held for one step at a time, never across a yield
        self._owner: object | None = None  # whose tokens the context holds
        self._owner_seen = 0.0  # when that owner last took a step

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

    def keep_prefix(self, messages: list[Message], persist: bool = False) -> None:
        """Evaluate these leading messages once and keep their key/value state, beside the
        latest others ([]: forget them all; see the contract in qa.generate.base). With
        persist, the state also goes to the prefix store, and comes from it when a start
        before saved it."""
        ids = prefix_tokens(self, messages)[0] if messages else []
        with self._lock:
            for entry in self._kept:
                if entry[0] == ids:  # kept already: now the latest
                    self._kept = [entry, *(e for e in self._kept if e is not entry)]
                    return
            self._claim(self)
            try:
                self.llm.reset()
                if not ids:
                    self._kept = []
                    return
                store = self.store if persist else None
                state = store.load(ids) if store is not None else None
                if state is not None:
                    try:
                        self._load(ids, state)
                    except RuntimeError:  # not a state this build can read
                        state = None
                if state is None:
                    self._restore_prefix(ids)  # a kept prefix of this one is not evaluated again
                    compute.run(self.llm.eval, ids[self.llm.n_tokens:])
                    state = self._save()
                    if store is not None:
                        store.save(ids, state)
                self._kept = [(ids, state), *self._kept][:KEPT_PREFIXES]
            finally:
                self._release(self)

    def _claim(self, me: object) -> bool:
        """Make the context me's (the lock held): wait while another owner takes steps, at
        most until it has taken none for stall_seconds. Whether the context was me's already
        (its tokens still there)."""
        while self._owner not in (None, me):
            idle = time.monotonic() - self._owner_seen
            if idle >= self.stall_seconds:
                break
            self._lock.wait(self.stall_seconds - idle)
        ours = self._owner is me
        self._owner, self._owner_seen = me, time.monotonic()
        return ours

    def _release(self, me: object) -> None:
        """Give the context up if me still holds it (the lock held); wake the waiting."""
        if self._owner is me:
            self._owner = None
        self._lock.notify_all()

    def _restore_prefix(self, ids: list[int]) -> None:
        """Load the longest kept prefix that ids start with when the context holds less of
        ids than it does."""
        fits = [(prefix, state) for prefix, state in self._kept if ids[:len(prefix)] == prefix]
        if not fits:
            return
        prefix, state = max(fits, key=lambda entry: len(entry[0]))
        held = self.llm.longest_token_prefix(self.llm.input_ids[:self.llm.n_tokens].tolist(), ids)
        if held < len(prefix):
            self._load(prefix, state)

    def _save(self) -> bytes:
        """The context's state (its key/value cells in use and last logits). Not the
        library's save_state: that also copies its logits array of n_batch rows (311 MB for
        this vocabulary), one per kept prefix."""
        import llama_cpp

        size = llama_cpp.llama_state_get_size(self.llm.ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(self.llm.ctx, buffer, size)
        return ctypes.string_at(buffer, written)

    def _load(self, ids: list[int], state: bytes) -> None:
        """Put back a state that _save took after evaluating ids."""
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_set_data(self.llm.ctx, buffer, len(state)) != len(state):
            raise RuntimeError("llama.cpp could not restore a kept prompt prefix")
        self.llm.input_ids[:len(ids)] = ids
        self.llm.n_tokens = len(ids)
        self.llm._requires_eval = True  # the library replays a token before sampling

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        """Greedy decoding; text comes as whole UTF-8 characters become available. The stream
        measures its reply's mean token log-probability and, with `alternative`, that reply's
        log-probability after the same prompt."""
        stream = ReplyStream()
        stream.pieces = self._decode(messages, max_new_tokens, alternative, stream)
        return stream

    def _decode(self, messages: list[Message], max_new_tokens: int, alternative: str | None,
                stream: ReplyStream) -> Iterator[str]:
        import llama_cpp

        ids = self.prompt_tokens(messages)
        if len(ids) + max_new_tokens > self.llm.n_ctx():
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; the context holds "
                             f"{self.llm.n_ctx()} including {max_new_tokens} for the reply")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = self.llm._model.vocab  # the library's own end-of-generation test uses it
        me = object()
        done: list[int] = []  # the reply's tokens so far
        written = ""  # their text
        picked = 0.0  # their log-probabilities, summed
        tokens: Generator[int, Any, None] | None = None  # llama.cpp's, while the context is ours
        try:
            while len(done) < max_new_tokens:
                with self._lock:
                    if not self._claim(me) or tokens is None:  # fresh, or taken over meanwhile
                        self._restore_prefix(ids + done)
                        tokens = self.llm.generate(ids + done, temp=0.0, top_k=1, top_p=1.0,
                                                   min_p=0.0, repeat_penalty=1.0)
                    # Each step on the compute thread: ggml's OpenMP is the runtime torch loaded.
                    token = compute.run(next, tokens, None)
                    self._owner_seen = time.monotonic()
                    if token is None or llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    # The logits the token was picked from are the context's latest.
                    picked += _logprobs(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1),
                                        1, self.llm.n_vocab(), [token])
                done.append(token)
                text = decoder.decode(self.llm.detokenize([token]))
                if text:
                    written += text
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                written += tail
                yield tail
            stream.reply_logprob = picked / len(done) if done else None
            if alternative is None or written == alternative:
                return
            reply = reply_tokens(self, messages, ids, alternative,
                                 lambda t: bool(llama_cpp.llama_vocab_is_eog(vocab, t)))
            if reply:
                with self._lock:
                    if tokens is not None and self._owner is me:
                        compute.run(tokens.close)
                    tokens = None
                    self._claim(me)
                    stream.alternative_logprob = compute.run(self._score, ids, reply)
        finally:
            with self._lock:
                if self._owner is me and tokens is not None:
                    compute.run(tokens.close)
                self._release(me)

    def _score(self, ids: list[int], reply: list[int]) -> float:
        """Log-probability of reply after the prompt ids (the lock held, the context ours):
        the prompt but its last token from what the context holds or a kept prefix, then one
        batch of that token and the reply with every row's logits."""
        import llama_cpp

        llm = self.llm
        self._restore_prefix(ids)
        llm.n_tokens = min(len(ids) - 1, llm.longest_token_prefix(
            llm.input_ids[:llm.n_tokens].tolist(), ids))
        llm.eval(ids[llm.n_tokens:-1])  # drops what the context held past the shared part
        rows = [ids[-1], *reply[:-1]]
        batch = llama_cpp.llama_batch_init(len(rows), 0, 1)
        try:
            batch.n_tokens = len(rows)
            for i, token in enumerate(rows):
                batch.token[i], batch.pos[i] = token, llm.n_tokens + i
                batch.seq_id[i][0], batch.n_seq_id[i], batch.logits[i] = 0, 1, True
            if llama_cpp.llama_decode(llm.ctx, batch) != 0:
                raise RuntimeError("llama.cpp could not evaluate the alternative reply")
        finally:
            llama_cpp.llama_batch_free(batch)
        total = _logprobs(llama_cpp.llama_get_logits(llm.ctx), len(rows), llm.n_vocab(), reply)
        llm.input_ids[llm.n_tokens:llm.n_tokens + len(rows)] = rows
        llm.n_tokens += len(rows)
        llm._requires_eval = True  # the latest logits are the reply's, not a prompt's
        return total


def _logprobs(pointer: Any, rows: int, vocab: int, picked: list[int]) -> float:
    """The summed log-probabilities of picked[i] under row i of the float logits at pointer."""
    logits = np.ctypeslib.as_array(pointer, shape=(rows, vocab)).astype(np.float64)
    top = logits.max(axis=1)
    norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return float(sum(logits[i, t] - norm[i] for i, t in enumerate(picked)))
