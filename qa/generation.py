"""Local text generators behind one streaming interface."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from qa.models import GENERATORS, converted_dir
from qa.progress import Reporter, print_reporter

Message = dict[str, str]


class Generator(Protocol):
    """Streams the reply to chat messages, greedily, as text pieces."""

    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield the reply piece by piece; closing the iterator stops generation."""
        ...


class TransformersGenerator:
    """A Qwen chat model in bf16 through transformers, on the CPU, one request at a time."""

    def __init__(self, name: str, cache_dir: Path, threads: int = 2,
                 report: Reporter = print_reporter) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        torch.set_num_threads(threads)
        folder = converted_dir(GENERATORS[name], cache_dir, report)
        # A local folder only (local_files_only): nothing is fetched from a hub.
        self.tokenizer = AutoTokenizer.from_pretrained(  # nosec B615
            folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(  # nosec B615
            folder, dtype=torch.bfloat16, local_files_only=True)
        self.model.eval()
        self._lock = threading.Lock()

    def prompt_ids(self, messages: list[Message]) -> Any:
        """Token ids of the chat template applied to messages, ready for generation."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                  return_tensors="pt", return_dict=True)

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Greedy decoding in a worker thread; tokens are yielded as they are decoded."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop.is_set()

        inputs = self.prompt_ids(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                        skip_special_tokens=True, timeout=600)
        kwargs = dict(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                      temperature=None, top_p=None, top_k=None, streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([_Stop()]),
                      pad_token_id=self.tokenizer.eos_token_id)
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


def load_generator(name: str, cache_dir: Path, threads: int = 2,
                   report: Reporter = print_reporter) -> Generator:
    """The named generator, prepared from its packages on first use."""
    if name not in GENERATORS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(GENERATORS)}")
    return TransformersGenerator(name, cache_dir, threads, report)
