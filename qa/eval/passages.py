"""Retrieval quality on a question file: where is the first passage holding a gold answer?"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qa.config import Fusion
from qa.eval.metrics import contains_answer, mean
from qa.eval.qa_eval import expects_refusal
from qa.retrieve.hybrid import Retriever
from qa.types import RetrievalMode

VARIANTS: tuple[tuple[str, RetrievalMode, Fusion | None], ...] = (
    ("dense", "dense", None), ("bm25", "bm25", None), ("hybrid-rrf", "hybrid", "rrf"),
    ("hybrid-weighted", "hybrid", "weighted"))


def gold_rank(retriever: Retriever, row: dict[str, Any], mode: RetrievalMode,
              depth: int) -> int | None:
    """1-based rank of the first passage containing a gold string, or None within depth."""
    for hit in retriever.search(row["q"], depth, mode):
        if any(contains_answer(hit.chunk.text, gold) for gold in row["answers"]):
            return hit.rank
    return None


def evaluate_passages(retriever: Retriever, rows: list[dict[str, Any]],
                      depth: int = 10) -> dict[str, dict[str, float]]:
    """Hit@1, hit@top_k and MRR@depth of gold-bearing passages for each retrieval variant."""
    answerable = [r for r in rows if not expects_refusal(r)]
    k = retriever.settings.top_k
    report = {}
    for name, mode, fusion in VARIANTS:
        variant = Retriever(retriever.index, retriever.embedder,
                            replace(retriever.settings, fusion=fusion or retriever.settings.fusion))
        ranks = [gold_rank(variant, row, mode, depth) for row in answerable]
        report[name] = {
            "hit@1": round(mean(1.0 if r == 1 else 0.0 for r in ranks), 4),
            f"hit@{k}": round(mean(1.0 if r and r <= k else 0.0 for r in ranks), 4),
            f"mrr@{depth}": round(mean(1.0 / r if r else 0.0 for r in ranks), 4),
        }
    return report
