"""Local text generators behind one streaming interface, and the loader that picks a backend."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from qa import compute
from qa.config import BACKENDS
from qa.models import GENERATORS, ModelUnavailable, assemble_gguf, converted_dir
from qa.progress import Reporter, print_reporter

Message = dict[str, str]


class Generator(Protocol):
    """Streams the reply to chat messages, greedily, as text pieces."""

    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield the reply piece by piece; closing the iterator stops generation."""
        ...

    def keep_prefix(self, messages: list[Message]) -> None:
        """Precompute the leading messages that later prompts start with (warm-up); a prompt
        that begins with them skips their evaluation. An empty list forgets them."""
        ...


class ScoringGenerator(Generator, Protocol):
    """A Generator that can also score one alternative reply while it streams its own."""

    def stream_scored(self, messages: list[Message], max_new_tokens: int,
                      alternative: str) -> ScoredStream:
        """stream(), and afterwards the log-probability of `alternative` as the reply."""
        ...


class ScoredStream(Iterator[str]):
    """A reply's pieces; once they have all been read, `alternative_logprob` holds the
    log-probability the model gives one other reply to the same prompt (None: not measured,
    or the stream was closed early)."""

    def __init__(self) -> None:
        self.pieces: Iterator[str] = iter(())
        self.alternative_logprob: float | None = None

    def __next__(self) -> str:
        return next(self.pieces)

    def close(self) -> None:
        """Stop generation."""
        getattr(self.pieces, "close", lambda: None)()


def load_generator(name: str, cache_dir: Path, threads: int = 2,
                   report: Reporter = print_reporter,
                   backend: str = "transformers-int8", native_kernels: bool = True) -> Generator:
    """The named model on the named backend, prepared from its packages on first use;
    native_kernels: the int8 backend decodes with qa.native_kernels where they can run."""
    if name not in GENERATORS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(GENERATORS)}")
    if backend == "llama.cpp":
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelUnavailable("the llama.cpp backend needs llama-cpp-python, which compiles "
                                   "from source: run `make setup-llama`, or choose another "
                                   f"backend ({', '.join(b for b in BACKENDS if b != backend)})")
        from qa.backend_llamacpp import LlamaCppGenerator

        gguf = assemble_gguf(GENERATORS[name], cache_dir, report)
        return compute.run(LlamaCppGenerator, name, gguf, threads)
    if backend in ("transformers", "transformers-int8"):
        from qa.backend_transformers import TransformersGenerator
        from qa.native_kernels import load as load_kernels

        int8 = backend == "transformers-int8"

        def load() -> Generator:
            kernels = load_kernels(cache_dir) if int8 and native_kernels else None
            return TransformersGenerator(name, converted_dir(GENERATORS[name], cache_dir, report),
                                         threads, int8=int8, kernels=kernels)

        return compute.run(load)  # torch work stays on the compute thread
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
