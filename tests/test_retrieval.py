"""Hybrid retrieval over the default corpus: known top-1 passages, fusion, modes, floor."""

from __future__ import annotations

import pytest

from qa.config import Settings
from qa.retrieve.hybrid import Retriever


def _search(index, embedder, question: str, **overrides: object):
    return Retriever(index, embedder, Settings.from_env(**overrides)).search(question)


@pytest.mark.parametrize(("question", "expected"), [
    ("Who became full members of the organisation?", "full membership to\xa0India and Pakistan"),
    ("What ties does the SCO have with UNESCO?", "Office of\xa0Counter-Terrorism"),
    ("Which city hosted the summit of SCO leaders?", "summit in\xa0Qingdao"),
    ("Was Antonio Guterres among the attendees?", "Secretary-General Antonio Guterres"),
])
@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_top1_passage_for_known_questions(corpus_index, embedder, question: str, expected: str,
                                          fusion: str) -> None:
    hits = _search(corpus_index, embedder, question, fusion=fusion)
    assert expected in hits[0].chunk.text


def test_hits_are_ranked_and_carry_both_scores(corpus_index, embedder) -> None:
    hits = _search(corpus_index, embedder, "India and Pakistan membership", top_k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].bm25_score > 0 and 0 < hits[0].dense_score <= 1
    assert hits[0].source == "sco-un-special-event-2018.txt"
    assert hits[0].title.startswith("SCO Secretary-General")


def test_modes_rank_by_their_own_score(corpus_index, embedder) -> None:
    retriever = Retriever(corpus_index, embedder, Settings.from_env(top_k=5))
    dense = retriever.search("illegal drug trafficking", mode="dense")
    bm25 = retriever.search("illegal drug trafficking", mode="bm25")
    assert [h.score for h in dense] == [h.dense_score for h in dense]
    assert [h.score for h in bm25] == [h.bm25_score for h in bm25]
    assert "drug trafficking" in bm25[0].chunk.text
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        retriever.search("x", mode="magic")


def test_off_topic_question_stays_below_the_relevance_floor(corpus_index, embedder,
                                                            settings) -> None:
    hits = _search(corpus_index, embedder, "What is the capital of France?")
    assert max(h.dense_score for h in hits) < settings.min_dense_score
    on_topic = _search(corpus_index, embedder, "Where was the UN-SCO event held?")
    assert on_topic[0].dense_score > settings.min_dense_score


def test_top_k_larger_than_corpus_returns_every_chunk(corpus_index, embedder) -> None:
    hits = _search(corpus_index, embedder, "SCO", top_k=50, candidates=60)
    assert len(hits) == len(corpus_index.chunks)
    assert len({h.chunk.id for h in hits}) == len(hits)
