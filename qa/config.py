"""Settings: one dataclass with defaults, QA_* environment overrides and validation."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit, urlunsplit

from qa.errors import SettingsError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_CHECKOUT = Path(__file__).resolve().parent.parent
# A source checkout keeps corpus/ and index/ beside the package; an installed package (in
# site-packages) looks for them in the working directory.
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() else Path.cwd()

ModelName = Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"]
Fusion = Literal["rrf", "weighted"]
Backend = Literal["auto", "llama.cpp", "transformers-int8", "transformers", "openai"]
EmbedBackend = Literal["onnx-int8", "onnx", "torch"]
DenseIndex = Literal["auto", "flat", "ivf"]
MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)
FUSION_METHODS: tuple[Fusion, ...] = get_args(Fusion)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
EMBED_BACKENDS: tuple[EmbedBackend, ...] = get_args(EmbedBackend)
DENSE_INDEXES: tuple[DenseIndex, ...] = get_args(DenseIndex)
LOCAL_BACKENDS = tuple(b for b in BACKENDS if b not in ("auto", "openai"))  # load model files
T = TypeVar("T")
ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}|\*))?$")
DEFAULT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")


def parse_origins(text: str) -> tuple[str, ...]:
    """Comma-separated origins (`scheme://host[:port]`, port `*` = any, or just `*`).

    Raises SettingsError naming the first entry that is not an origin.
    """
    origins = []
    for raw in text.split(","):
        entry = raw.strip().rstrip("/").lower()
        if not entry:
            continue
        if entry != "*" and not ORIGIN.match(entry):
            raise SettingsError(f"{raw.strip()!r} is not an origin like https://example.org "
                                "or http://localhost:*")
        origins.append(entry)
    return tuple(origins)


@dataclass(frozen=True)
class Settings:
    """Every tunable of the system; `Settings.from_env()` applies QA_* overrides."""

    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    cache_dir: Path = Path.home() / ".cache" / "qa"
    chunk_tokens: int = 128
    chunk_overlap_tokens: int = 32
    top_k: int = 3
    # When every chunk of the index fits this many tokens, the model reads them all, from a
    # prompt prefix evaluated once per index (0: always the retrieved passages only).
    whole_corpus_tokens: int = 2048
    window_sentences: int = 2  # 0: whole chunks in the prompt; n: n sentences around the best
    candidates: int = 30
    fusion: Fusion = "weighted"
    rrf_k: int = 60
    dense_weight: float = 0.7
    min_dense_score: float = 0.25
    min_support: float = 0.5
    # Refuse an answer whose calibrated confidence (qa.answer.decision: the probability that
    # the question is answerable) is below this; 0 turns the decision off. Set on SQuAD v2.0
    # by bench/fit_refusal.py (BENCHMARKS.md section 2).
    min_confidence: float = 0.2
    # A packaged model (MODEL_NAMES), or a path: a .gguf file (llama.cpp) or a transformers
    # model folder with a chat template (qa.generate.model_files checks it at start-up).
    model: str = "qwen2.5-coder-1.5b"
    # "auto" (resolved when Settings are made, see auto_backend): llama.cpp where
    # llama-cpp-python is installed, else transformers-int8.
    backend: Backend = "auto"
    # backend "openai": an OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI). Its API
    # key comes from the QA_OPENAI_API_KEY environment variable only, never from Settings.
    openai_base_url: str = ""  # e.g. http://127.0.0.1:8080/v1
    openai_model: str = ""  # empty: the first model the server lists
    openai_timeout: float = 60.0  # seconds to connect, and between two streamed pieces
    max_new_tokens: int = 160
    # Example questions the app shows, written by the model from the documents (0: none).
    example_questions: int = 3
    # When the model refuses, ask once more with whole passages, twice as many.
    retry_refusals: bool = True
    # Ask the model, in the same conversation, for the answer's key phrase (Answer.short).
    short_answer: bool = True
    # A question in another language than the documents' is translated for retrieval and
    # answered in its own language.
    translate: bool = True
    threads: int = 2
    # The embedder's runtime (qa.index.embedding): ONNX Runtime with int8 weights, ONNX Runtime
    # in float32, or PyTorch. Indexes record it: changing it makes the index stale.
    embed_backend: EmbedBackend = "onnx-int8"
    # The dense index a build writes (qa.index.dense): exact (flat) below ann_min_vectors
    # chunks, IVF (approximate) from there on; "flat" or "ivf" forces one. ann_nprobe: the IVF
    # lists searched per query (0: the build's recorded value, nlist / 8).
    dense_index: DenseIndex = "auto"
    ann_min_vectors: int = 250_000
    ann_nprobe: int = 0
    # A served index folder is checked this often for a new build (0: never; qa.serve.replica).
    index_poll_seconds: float = 2.0
    max_question_chars: int = 2000
    max_upload_mb: float = 10.0  # per uploaded file in the app
    max_upload_files: int = 5  # per upload in the app
    # A visitor's uploaded set in all: its text and its passages (embedding costs ~60 a second
    # on the one compute thread that every answer shares).
    max_upload_chars: int = 1_000_000
    max_upload_chunks: int = 3000
    upload_queue: int = 4  # uploads waiting to be indexed (one is indexed at a time)
    # Each uploaded file is parsed in a child process stopped after this long or this much
    # memory (a parser bomb costs the child, not the server).
    upload_read_seconds: float = 30.0
    upload_read_mb: int = 1024
    max_upload_storage_mb: float = 500.0  # every session's uploads; the least recently used go
    upload_idle_minutes: float = 60.0  # a session's uploads are deleted after this long unused
    # HTTP API and widget (qa/serve): CORS allow-list (comma separated; empty = localhost
    # only, plus the Space's own address on Hugging Face) and abuse bounds.
    allowed_origins: str = ""
    rate_limit_per_minute: float = 12.0
    rate_limit_burst: int = 6
    max_concurrent_generations: int = 1
    max_answer_seconds: float = 120.0
    proxy_hops: int = 0

    def __post_init__(self) -> None:
        if self.backend == "auto":
            object.__setattr__(self, "backend", auto_backend(self.model)[0])

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
        values.setdefault("backend", "auto")  # picked for the model asked for, not the default
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError naming the first invalid value."""
        positive = ("chunk_tokens", "top_k", "candidates", "rrf_k", "max_new_tokens", "threads",
                    "max_question_chars", "max_upload_mb", "max_upload_files",
                    "max_upload_chars", "max_upload_chunks", "upload_queue",
                    "max_upload_storage_mb", "upload_idle_minutes", "upload_read_seconds",
                    "upload_read_mb",
                    "rate_limit_per_minute", "rate_limit_burst",
                    "max_concurrent_generations", "max_answer_seconds", "openai_timeout",
                    "ann_min_vectors")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.chunk_overlap_tokens < self.chunk_tokens:
            raise SettingsError("chunk_overlap_tokens must be >= 0 and below chunk_tokens")
        if self.chunk_tokens > 256:
            raise SettingsError("chunk_tokens must be at most 256 (the embedder's input limit)")
        if self.candidates < self.top_k:
            raise SettingsError("candidates must be at least top_k")
        one_of("fusion", self.fusion, FUSION_METHODS)
        for name in ("dense_weight", "min_support", "min_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1")
        if not -1.0 <= self.min_dense_score <= 1.0:
            raise SettingsError("min_dense_score must be between -1 and 1")
        if not 0 <= self.example_questions <= 10:
            raise SettingsError(f"example_questions must be 0 to 10, got {self.example_questions}")
        if self.whole_corpus_tokens < 0:
            raise SettingsError(f"whole_corpus_tokens must be 0 or more, got "
                                f"{self.whole_corpus_tokens}")
        if self.window_sentences < 0:
            raise SettingsError(f"window_sentences must be 0 or more, got {self.window_sentences}")
        try:
            parse_origins(self.allowed_origins)
        except SettingsError as exc:
            raise SettingsError(f"allowed_origins: {exc}") from None
        if self.proxy_hops < 0:
            raise SettingsError(f"proxy_hops must be 0 or more, got {self.proxy_hops}")
        one_of("backend", self.backend, BACKENDS)
        one_of("embed_backend", self.embed_backend, EMBED_BACKENDS)
        one_of("dense_index", self.dense_index, DENSE_INDEXES)
        for name in ("ann_nprobe", "index_poll_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.backend == "openai":
            check_base_url(self.openai_base_url)
        elif self.model not in MODEL_NAMES and not Path(self.model).expanduser().exists():
            raise SettingsError(f"model must be one of {', '.join(MODEL_NAMES)} or the path "
                                f"of a .gguf file or model folder; got {self.model!r} (no "
                                "such file)")

    def origins(self, environ: dict[str, str] | None = None) -> tuple[str, ...]:
        """The origins allowed to use the API: allowed_origins, or by default localhost only,
        plus on a Space (SPACE_HOST set) its own https address."""
        env = os.environ if environ is None else environ
        raw = self.allowed_origins.strip()
        if raw:
            return parse_origins(raw)
        space = env.get("SPACE_HOST", "").strip()  # set by Hugging Face Spaces
        return (*DEFAULT_ORIGINS, f"https://{space.lower()}") if space else DEFAULT_ORIGINS


def auto_backend(model: str) -> tuple[Backend, str]:
    """The backend QA_BACKEND=auto picks for model, and why (one line for the start-up log)."""
    if model not in MODEL_NAMES and not model.lower().endswith(".gguf"):
        return "transformers-int8", "a model folder runs on transformers"
    if importlib.util.find_spec("llama_cpp") is not None:
        return "llama.cpp", ("llama-cpp-python is installed: the 4-bit weights, about a third "
                             "of int8's memory")
    return "transformers-int8", ("llama-cpp-python is not installed (it compiles from source: "
                                 "make setup-llama)")


def check_base_url(url: str) -> None:
    """SettingsError unless url is an http(s) base URL without credentials in it."""
    parts = urlsplit(url)
    if not url:
        raise SettingsError("backend openai needs QA_OPENAI_BASE_URL, for example "
                            "http://127.0.0.1:8080/v1")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"openai_base_url must be an http(s) URL like "
                            f"http://127.0.0.1:8080/v1, got {public_url(url)!r}")
    if parts.username or parts.password:
        raise SettingsError("openai_base_url must not hold credentials; set "
                            "QA_OPENAI_API_KEY instead")


def public_url(url: str) -> str:
    """url without user, password, query or fragment: safe to log and show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def one_of(name: str, value: object, options: tuple[T, ...]) -> T:
    """value as one of a closed set of options (Literal values), else SettingsError."""
    for option in options:
        if value == option:
            return option
    raise SettingsError(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}")


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
