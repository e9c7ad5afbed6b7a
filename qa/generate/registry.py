"""Picks a backend for a model name and loads it, preparing the model files on first use."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from qa import compute
from qa.config import BACKENDS, Backend
from qa.errors import ModelUnavailable, SettingsError
from qa.generate.base import Generator
from qa.generate.models import GENERATORS, assemble_gguf, converted_dir
from qa.progress import Reporter, print_reporter


def load_generator(name: str, cache_dir: Path, threads: int = 2,
                   report: Reporter = print_reporter,
                   backend: Backend = "transformers-int8",
                   native_kernels: bool = True) -> Generator:
    """The named model on the named backend, prepared from its packages on first use;
    native_kernels: the int8 backend decodes with qa.generate.int8.kernels where they run."""
    if name not in GENERATORS:
        raise SettingsError(f"unknown model {name!r}; choose one of {', '.join(GENERATORS)}")
    if backend not in BACKENDS:
        raise SettingsError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "llama.cpp":
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelUnavailable("the llama.cpp backend needs llama-cpp-python, which compiles "
                                   "from source: run `make setup-llama`, or choose another "
                                   f"backend ({', '.join(b for b in BACKENDS if b != backend)})")
        from qa.generate.llamacpp_backend import LlamaCppGenerator

        gguf = assemble_gguf(GENERATORS[name], cache_dir, report)
        return compute.run(LlamaCppGenerator, name, gguf, threads)
    from qa.generate.int8.kernels import load as load_kernels
    from qa.generate.transformers_backend import TransformersGenerator

    int8 = backend == "transformers-int8"

    def load() -> Generator:
        kernels = load_kernels(cache_dir) if int8 and native_kernels else None
        return TransformersGenerator(name, converted_dir(GENERATORS[name], cache_dir, report),
                                     threads, int8=int8, kernels=kernels)

    return compute.run(load)  # torch work stays on the compute thread
