"""Hybrid search: dense (FAISS) and BM25 candidates, fused into ranked Hits."""

from __future__ import annotations

import numpy as np

from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.lexical import bm25_scores
from qa.index.store import Index
from qa.types import RETRIEVAL_MODES, Hit, RetrievalMode


class Retriever:
    """Searches one loaded index; cheap to construct."""

    def __init__(self, index: Index, embedder: Embedder, settings: Settings) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def search(self, query: str, top_k: int | None = None,
               mode: RetrievalMode = "hybrid") -> list[Hit]:
        """The top_k chunks for query, best first, ranked 1..k (mode: hybrid, dense or bm25)."""
        if mode not in RETRIEVAL_MODES:  # checked first: no work for a mode that is not there
            raise ValueError(f"unknown retrieval mode {mode!r}")
        k = top_k or self.settings.top_k
        n = len(self.index.chunks)
        pool = min(n, max(self.settings.candidates, k))
        qvec = self.embedder.encode([query])[0]
        # Dense candidates from FAISS; exact cosine for any row from the stored unit vectors.
        _, rows = self.index.dense.search(qvec[None, :], pool)
        dense_rows = [int(r) for r in rows[0] if r >= 0]
        sparse = bm25_scores(self.index.bm25, query, n)
        sparse_rows = [int(r) for r in np.argsort(-sparse, kind="stable")[:pool] if sparse[r] > 0]
        candidates = list(dict.fromkeys(dense_rows + sparse_rows))
        cos = self.index.vectors[candidates] @ qvec
        dense = dict(zip(candidates, cos.tolist(), strict=True))
        fused = self._fuse(mode, candidates, dense, dense_rows, sparse, sparse_rows)
        order = sorted(candidates, key=lambda r: (-fused[r], r))[:k]
        hits = []
        for rank, row in enumerate(order, 1):
            chunk = self.index.chunks[row]
            doc = self.index.documents[chunk.doc_id]
            hits.append(Hit(chunk=chunk, score=round(fused[row], 6), rank=rank,
                            dense_score=round(dense[row], 6),
                            bm25_score=round(float(sparse[row]), 6),
                            source=doc.source, title=doc.title))
        return hits

    def _fuse(self, mode: RetrievalMode, candidates: list[int], dense: dict[int, float],
              dense_rows: list[int], sparse: np.ndarray,
              sparse_rows: list[int]) -> dict[int, float]:
        if mode == "dense":
            return dense
        if mode == "bm25":
            return {r: float(sparse[r]) for r in candidates}
        if self.settings.fusion == "rrf":
            # Reciprocal rank fusion: each list adds 1 / (rrf_k + rank).
            rk = self.settings.rrf_k
            fused = dict.fromkeys(candidates, 0.0)
            for ranked in (dense_rows, sparse_rows):
                for rank, row in enumerate(ranked, 1):
                    fused[row] += 1.0 / (rk + rank)
            return fused
        # Weighted sum of cosine and BM25 scaled to [0, 1] by the best candidate.
        top = max((float(sparse[r]) for r in candidates), default=0.0) or 1.0
        w = self.settings.dense_weight
        return {r: w * dense[r] + (1 - w) * float(sparse[r]) / top for r in candidates}
