"""Picks a backend for a model (a packaged name, your own file or folder, or a server) and loads
it, preparing packaged model files on first use; says what runs where."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from qa import compute
from qa.config import LOCAL_BACKENDS, Backend, Settings, auto_backend, public_url
from qa.errors import ModelUnavailable, SettingsError
from qa.files import sha256_file
from qa.generate.base import Generator
from qa.generate.model_files import OwnModel, check_gguf, own_model
from qa.generate.models import GENERATORS, assemble_gguf, converted_dir
from qa.progress import Reporter, print_reporter

API_KEY_VARIABLE = "QA_OPENAI_API_KEY"  # read from the environment only, never shown
# What the refusal decision (qa.answer.decision) reads besides the model's log-probabilities.
OTHER_SIGNALS = ("top_similarity", "support", "grounded", "retried", "citations")


def generator_for(settings: Settings, name: str | None = None,
                  report: Reporter = print_reporter) -> Generator:
    """The generator that settings name (name: another model on the same backend); one
    line on stderr says which engine runs it and why."""
    print(f"qa: generator {engine_line(settings, name)}", file=sys.stderr)
    if settings.backend == "openai":
        from qa.generate.openai_backend import OpenAIGenerator

        return OpenAIGenerator(settings.openai_base_url, settings.openai_model,
                               os.environ.get(API_KEY_VARIABLE) or None, settings.openai_timeout)
    return load_generator(name or settings.model, settings.cache_dir, settings.threads, report,
                          settings.backend)


def engine_line(settings: Settings, name: str | None = None) -> str:
    """Which engine runs the model, and why (set by QA_BACKEND, or picked by auto)."""
    model = name or settings.model
    if settings.backend == "openai":
        return f"on the server {public_url(settings.openai_base_url)} (QA_BACKEND=openai)"
    own = own_model(model, settings.backend)
    backend = own.backend if own else settings.backend
    picked, reason = auto_backend(model)
    why = ("a .gguf file runs on llama.cpp" if own and own.kind == "gguf"
           else reason if backend == picked and os.environ.get("QA_BACKEND", "auto").strip()
           in ("", "auto") else "chosen with QA_BACKEND or --backend")
    return f"{model} on {backend} ({_kernels(backend)}): {why}"


def _kernels(backend: Backend) -> str:
    """What computes the products: llama.cpp's CPU features as built, or PyTorch's."""
    if backend == "llama.cpp" and importlib.util.find_spec("llama_cpp") is not None:
        import llama_cpp

        pairs = (item.rpartition("=") for item in
                 llama_cpp.llama_print_system_info().decode().split("|"))
        features = [name.strip().removeprefix("CPU :").strip() for name, _, on in pairs
                    if on.strip() == "1"]
        simd = [f for f in features if f.startswith(("AVX", "FMA", "F16C"))]
        return f"llama.cpp CPU kernels: {' '.join(simd) or 'generic x86-64'}"
    if backend == "transformers-int8":
        return "int8 weights on PyTorch's fbgemm kernels"
    return "bf16 weights on PyTorch's kernels"


def check_model(settings: Settings) -> OwnModel | None:
    """Check an own model path of settings before anything starts (SettingsError, one line:
    exit status 2); None for a packaged model or a server."""
    own = own_model(settings.model, settings.backend)
    if own is not None and own.kind == "gguf":
        _need_llama_cpp()
        check_gguf(own)
    return own


def load_generator(name: str, cache_dir: Path, threads: int = 2,
                   report: Reporter = print_reporter,
                   backend: Backend = "auto") -> Generator:
    """The named model (or own model path) on the named backend ("auto": see
    qa.config.auto_backend), prepared from its packages on first use."""
    if backend == "auto":
        backend = auto_backend(name)[0]
    if backend not in LOCAL_BACKENDS:
        raise SettingsError(f"unknown backend {backend!r}; choose one of "
                            f"{', '.join(LOCAL_BACKENDS)} (openai: generator_for)")
    own = own_model(name, backend)
    if own is None and name not in GENERATORS:
        raise SettingsError(f"unknown model {name!r}; choose one of {', '.join(GENERATORS)}")
    if (own.backend if own else backend) == "llama.cpp":
        _need_llama_cpp()
        from qa.generate.llamacpp_backend import LlamaCppGenerator

        if own is not None:
            check_gguf(own)
        gguf = own.path if own else assemble_gguf(GENERATORS[name], cache_dir, report)
        # The kept prefixes' states are keyed by the weights' hash: a packaged model's is
        # known, an own file is read once for it (about a second per GB).
        sha256 = sha256_file(gguf) if own else GENERATORS[name].sha256
        return compute.run(LlamaCppGenerator, own.name if own else name, gguf, threads,
                           state_dir=cache_dir / "prefix-states", weights_sha256=sha256)
    from qa.generate.transformers_backend import TransformersGenerator

    def load() -> Generator:
        folder = own.path if own else converted_dir(GENERATORS[name], cache_dir, report)
        return TransformersGenerator(own.name if own else name, folder, threads,
                                     int8=backend == "transformers-int8")

    return compute.run(load)  # torch work stays on the compute thread


def _need_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelUnavailable("the llama.cpp backend needs llama-cpp-python, which compiles "
                               "from source: run `make setup-llama`, or choose another "
                               "backend (transformers-int8, transformers)")


def describe(settings: Settings, generator: Generator | None = None) -> dict[str, Any]:
    """The backend, the model and where it runs (a server's URL without credentials, a file,
    or this process), and the refusal signals in use; generator: the loaded one, if any."""
    if settings.backend == "openai":
        logprobs = getattr(generator, "logprobs", None)
        where = public_url(settings.openai_base_url)
        return {"backend": "openai",
                "model": (generator.name if generator else settings.openai_model) or None,
                "where": where,
                "refusal_signals": [*(["reply_logprob"] if logprobs else []), *OTHER_SIGNALS],
                "logprobs": {True: "returned by the server", False: "not returned by the server",
                             None: "asked for; no reply yet"}[logprobs]}
    own = own_model(settings.model, settings.backend)
    backend = own.backend if own else settings.backend
    return {"backend": backend, "model": own.name if own else settings.model,
            "where": str(own.path) if own else "this process (packaged model)",
            "refusal_signals": ["refusal_logprob", "reply_logprob", *OTHER_SIGNALS]}
