"""BM25 over chunk texts with bm25s (English stemming and stop words)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}
BM25_FILES = ("params.index.json", "vocab.index.json", "data.csc.index.npy",
              "indices.csc.index.npy", "indptr.csc.index.npy")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed word tokens without English stop words."""
    tokens: list[list[str]] = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(),
                                             return_ids=False, show_progress=False)
    return tokens


def build_bm25(texts: list[str], folder: Path) -> None:
    """Index texts and save the arrays (no pickle) under folder."""
    model = bm25s.BM25(**BM25_PARAMS)
    model.index(tokenize(texts), show_progress=False)
    model.save(str(folder), allow_pickle=False, show_progress=False)


def load_bm25(folder: Path) -> bm25s.BM25:
    """Load a saved BM25 index (no pickle)."""
    return bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)


def bm25_scores(model: bm25s.BM25, query: str, num_docs: int) -> np.ndarray:
    """BM25 score of every document for the query (zeros when no query term is known)."""
    terms = [t for t in tokenize([query])[0] if t in model.vocab_dict]
    if not terms:
        return np.zeros(num_docs, dtype=np.float32)
    return np.asarray(model.get_scores(terms), dtype=np.float32)
