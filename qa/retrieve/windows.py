"""Sentence windows: each retrieved chunk cut down to the sentences around its best match."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qa.index.embedding import Embedder
from qa.ingest.chunking import sentence_spans
from qa.types import Hit


def sentence_windows(hits: list[Hit], query: str, embedder: Embedder,
                     sentences: int) -> list[Hit]:
    """Hits whose chunk text is the `sentences` consecutive sentences around the sentence most
    similar to query; offsets stay exact and the chunk id is kept. sentences <= 0 keeps all."""
    if sentences <= 0 or not hits:
        return hits
    spans = [sentence_spans(h.chunk.text) for h in hits]
    texts = [h.chunk.text[a:b] for h, hs in zip(hits, spans, strict=True) for a, b in hs]
    if not texts:
        return hits
    vectors = embedder.encode([query, *texts])
    scores = iter((vectors[1:] @ vectors[0]).tolist())
    out = []
    for hit, hs in zip(hits, spans, strict=True):
        sims = [next(scores) for _ in hs]
        if len(hs) <= sentences:
            out.append(hit)
            continue
        best = int(np.argmax(sims))
        first = min(max(0, best - (sentences - 1) // 2), len(hs) - sentences)
        start, end = hs[first][0], hs[first + sentences - 1][1]
        chunk = replace(hit.chunk, text=hit.chunk.text[start:end],
                        start=hit.chunk.start + start, end=hit.chunk.start + end)
        out.append(replace(hit, chunk=chunk))
    return out
