"""Retrieval-only evaluation on a question file."""

from __future__ import annotations

from qa.config import Settings
from qa.eval.passages import evaluate_passages, gold_rank
from qa.retrieve.hybrid import Retriever

ROWS = [
    {"id": "a", "q": "Who became full members of the organisation?",
     "answers": ["India and Pakistan"], "kind": "fact"},
    {"id": "b", "q": "Which city hosted the summit of SCO leaders?", "answers": ["Qingdao"],
     "kind": "fact"},
    {"id": "c", "q": "What is the capital of France?", "answers": [], "kind": "unanswerable"},
]


def test_gold_rank_finds_the_passage_holding_the_answer(corpus_index, embedder) -> None:
    retriever = Retriever(corpus_index, embedder, Settings.from_env())
    assert gold_rank(retriever, ROWS[0], "hybrid", 10) == 1
    assert gold_rank(retriever, {"q": "x", "answers": ["no such words anywhere"]}, "dense",
                     10) is None


def test_report_has_every_variant_and_skips_unanswerable(corpus_index, embedder) -> None:
    retriever = Retriever(corpus_index, embedder, Settings.from_env())
    report = evaluate_passages(retriever, ROWS)
    assert list(report) == ["dense", "bm25", "hybrid-rrf", "hybrid-weighted"]
    k = Settings().top_k
    assert report["hybrid-rrf"] == {"hit@1": 1.0, f"hit@{k}": 1.0, "mrr@10": 1.0}
