"""Sentence windows: the best-matching sentence and its neighbours, with exact offsets."""

from __future__ import annotations

from qa.config import Settings
from qa.retrieve.hybrid import Retriever
from qa.retrieve.windows import sentence_windows


def test_window_keeps_the_best_sentence_and_exact_offsets(corpus_index, embedder) -> None:
    question = "Which city hosted the summit of SCO leaders?"
    hits = Retriever(corpus_index, embedder, Settings.from_env(top_k=4)).search(question)
    windows = sentence_windows(hits, question, embedder, 1)
    assert "summit in\xa0Qingdao" in windows[0].chunk.text
    assert len(windows[0].chunk.text) < len(hits[0].chunk.text)
    for hit, window in zip(hits, windows, strict=True):
        doc = corpus_index.documents[hit.chunk.doc_id]
        assert doc.text[window.chunk.start:window.chunk.end] == window.chunk.text
        assert hit.chunk.start <= window.chunk.start < window.chunk.end <= hit.chunk.end
        assert (window.chunk.id, window.rank, window.score) == (hit.chunk.id, hit.rank, hit.score)


def test_window_size_counts_sentences(corpus_index, embedder) -> None:
    question = "Was Antonio Guterres among the attendees?"
    hits = Retriever(corpus_index, embedder, Settings.from_env(top_k=4)).search(question)
    one = sentence_windows(hits, question, embedder, 1)
    three = sentence_windows(hits, question, embedder, 3)
    for short, wide, full in zip(one, three, hits, strict=True):
        assert short.chunk.text in wide.chunk.text and wide.chunk.text in full.chunk.text
    assert "Secretary-General Antonio Guterres" in one[0].chunk.text
    assert sentence_windows(hits, question, embedder, 0) == hits
    assert sentence_windows(hits, question, embedder, 50) == hits
