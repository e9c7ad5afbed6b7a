"""Settings: one dataclass with defaults, QA_* environment overrides and validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAMES = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")
FUSION_METHODS = ("rrf", "weighted")
BACKENDS = ("transformers-int8", "llama.cpp", "transformers")


class SettingsError(ValueError):
    """A setting has an invalid value."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of the system; `Settings.from_env()` applies QA_* overrides."""

    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    cache_dir: Path = Path.home() / ".cache" / "qa"
    chunk_tokens: int = 128
    chunk_overlap_tokens: int = 32
    top_k: int = 3
    window_sentences: int = 2  # 0: whole chunks in the prompt; n: n sentences around the best
    candidates: int = 30
    fusion: str = "weighted"
    rrf_k: int = 60
    dense_weight: float = 0.7
    min_dense_score: float = 0.25
    min_support: float = 0.5
    # Refuse an answer when the model gave the refusal itself a log-probability above this
    # (-2.0: about 13.5%) as its reply. 0 turns the check off. Set on SQuAD v2.0 (BENCHMARKS.md).
    refusal_logprob: float = -2.0
    model: str = "qwen2.5-coder-1.5b"
    backend: str = "transformers-int8"
    max_new_tokens: int = 160
    threads: int = 2
    # The int8 backend's decode steps through qa/kernels (compiled on first use; AVX-512 VNNI).
    native_kernels: bool = True
    max_question_chars: int = 2000
    max_upload_mb: float = 10.0  # per uploaded file in the app
    max_upload_files: int = 5  # per upload in the app
    # HTTP API and widget (qa/api.py): CORS allow-list (comma separated; empty = localhost
    # only, plus the Space's own address on Hugging Face) and abuse bounds.
    allowed_origins: str = ""
    rate_limit_per_minute: float = 12.0
    rate_limit_burst: int = 6
    max_concurrent_generations: int = 1
    max_answer_seconds: float = 120.0
    proxy_hops: int = 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then QA_<FIELD> environment variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"QA_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, type(getattr(cls(), f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError naming the first invalid value."""
        positive = ("chunk_tokens", "top_k", "candidates", "rrf_k", "max_new_tokens", "threads",
                    "max_question_chars", "max_upload_mb", "max_upload_files",
                    "rate_limit_per_minute", "rate_limit_burst",
                    "max_concurrent_generations", "max_answer_seconds")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.chunk_overlap_tokens < self.chunk_tokens:
            raise SettingsError("chunk_overlap_tokens must be >= 0 and below chunk_tokens")
        if self.chunk_tokens > 256:
            raise SettingsError("chunk_tokens must be at most 256 (the embedder's input limit)")
        if self.candidates < self.top_k:
            raise SettingsError("candidates must be at least top_k")
        if self.fusion not in FUSION_METHODS:
            raise SettingsError(f"fusion must be one of {', '.join(FUSION_METHODS)}")
        for name in ("dense_weight", "min_support"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1")
        if self.refusal_logprob > 0:
            raise SettingsError("refusal_logprob is a log-probability: 0 or below")
        if not -1.0 <= self.min_dense_score <= 1.0:
            raise SettingsError("min_dense_score must be between -1 and 1")
        if self.window_sentences < 0:
            raise SettingsError(f"window_sentences must be 0 or more, got {self.window_sentences}")
        if self.proxy_hops < 0:
            raise SettingsError(f"proxy_hops must be 0 or more, got {self.proxy_hops}")
        if self.backend not in BACKENDS:
            raise SettingsError(
                f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.model not in MODEL_NAMES:
            raise SettingsError(
                f"model must be one of {', '.join(MODEL_NAMES)}, got {self.model!r}")


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        if issubclass(kind, Path):
            return Path(raw).expanduser()
        if kind is bool:
            return {"1": True, "true": True, "yes": True, "on": True, "0": False,
                    "false": False, "no": False, "off": False}[raw.strip().lower()]
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except (ValueError, KeyError):
        raise SettingsError(f"QA_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None
