"""The model in bf16 through transformers (the baseline), with the fixed prompt prefix cached."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qa.generation import Message


class TransformersGenerator:
    """A chat model in bf16 on the CPU from a converted folder, greedy, one request at a time."""

    backend = "transformers"

    def __init__(self, name: str, folder: Path, threads: int = 2) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        torch.set_num_threads(threads)
        # A local folder only (local_files_only): nothing is fetched from a hub.
        self.tokenizer = AutoTokenizer.from_pretrained(  # nosec B615
            folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(  # nosec B615
            folder, dtype=torch.bfloat16, local_files_only=True)
        self.model.eval()
        self._saved: tuple[list[int], Any] | None = None
        self._lock = threading.Lock()

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat template applied to messages."""
        return list(self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True,
            return_dict=True)["input_ids"])

    def keep_prefix(self, messages: list[Message]) -> None:
        """Evaluate these leading messages once and keep their key/value cache ([]: forget)."""
        import torch
        from transformers import DynamicCache

        self._saved = None
        if not messages:
            return
        ids = self.prompt_tokens(messages, generation_prompt=False)
        cache = DynamicCache(config=self.model.config)
        with self._lock, torch.inference_mode():
            self.model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
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
            pad_token_id=self.tokenizer.eos_token_id)
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
