"""Where a build loads, chunks and embeds: in this process (`LocalEngine`), or on a Ray
cluster (qa.index.ray_engine). Both hand the same documents, chunks and vectors to
qa.index.store, which writes, verifies and swaps the index the same way for either."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from qa.config import Settings
from qa.index.embedding import Embedder
from qa.ingest.chunking import chunk_document
from qa.ingest.corpus import Skipped, load_paths
from qa.progress import Reporter
from qa.types import Chunk, Document

EMBED_BATCH = 64  # chunks embedded per job (a compute-thread job locally: an answer waits
# at most one batch), the same batches on every engine


class Engine(Protocol):
    """Loading, chunking and embedding for a build."""

    name: str

    def load(self, paths: Sequence[str | Path]) -> tuple[list[Document], list[Skipped]]:
        """The documents under paths, sorted by source, and what was skipped."""
        ...

    def chunk(self, documents: list[Document], embedder: Embedder,
              settings: Settings) -> list[list[Chunk]]:
        """Each document's chunks, in document order."""
        ...

    def embed(self, texts: list[str], embedder: Embedder, report: Reporter) -> np.ndarray:
        """(len(texts), dim) unit vectors, row i for texts[i]."""
        ...


def batches(texts: list[str]) -> list[list[str]]:
    """texts cut into the embedding batches every engine uses."""
    return [texts[i:i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]


def chunk_one(doc: Document, embedder: Embedder, settings: Settings) -> list[Chunk]:
    """One document's chunks under settings."""
    return chunk_document(doc, embedder.token_offsets, settings.chunk_tokens,
                          settings.chunk_overlap_tokens)


class LocalEngine:
    """Everything in this process, embedding on the shared compute thread."""

    name = "local"

    def load(self, paths: Sequence[str | Path]) -> tuple[list[Document], list[Skipped]]:
        return load_paths(paths)

    def chunk(self, documents: list[Document], embedder: Embedder,
              settings: Settings) -> list[list[Chunk]]:
        return [chunk_one(doc, embedder, settings) for doc in documents]

    def embed(self, texts: list[str], embedder: Embedder, report: Reporter) -> np.ndarray:
        parts, done = [], 0
        for part in batches(texts):
            parts.append(embedder.encode(part))
            done += len(part)
            report("Embedding chunks", done, len(texts))
        if not parts:
            return np.zeros((0, embedder.dimension), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)
