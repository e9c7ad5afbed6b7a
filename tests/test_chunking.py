"""Chunking: exact offsets, sentence boundaries, token budget, overlap."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qa.index.embedding import Embedder
from qa.ingest.chunking import chunk_document, sentence_spans
from qa.ingest.corpus import document_id
from qa.types import Document
from tests.conftest import ARTICLE


def _doc(text: str) -> Document:
    return Document(id=document_id(text), source="t.txt", title="t", text=text)


def test_sentence_spans_split_on_sentence_ends_and_lines() -> None:
    text = 'First one. "Second," he said. Mr. Smith stayed!\n\nA heading\nLast?'
    spans = [text[a:b] for a, b in sentence_spans(text)]
    assert spans == ["First one.", '"Second," he said.', "Mr. Smith stayed!", "A heading",
                     "Last?"]


def test_article_chunks_are_exact_spans_within_budget(embedder: Embedder) -> None:
    text = ARTICLE.read_text(encoding="utf-8")
    doc = _doc(text)
    chunks = chunk_document(doc, embedder.token_offsets, 128, 32)
    assert len(chunks) == 8
    assert chunks[0].start == 0
    assert chunks[0].text.startswith("SCO Secretary-General: Combatting Global Challenges")
    assert chunks[-1].end == len(text.rstrip())
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert len(embedder.token_offsets(c.text)) <= 128
    # Every sentence of the article is inside some chunk.
    for a, b in sentence_spans(text):
        assert any(c.start <= a and b <= c.end for c in chunks)
    # Ids are stable content hashes.
    assert [c.id for c in chunks] == [c.id for c in chunk_document(
        _doc(text), embedder.token_offsets, 128, 32)]


def test_chunks_overlap_by_whole_sentences(embedder: Embedder) -> None:
    text = " ".join(f"Sentence number {i} is short." for i in range(40))
    chunks = chunk_document(_doc(text), embedder.token_offsets, 40, 16)
    assert len(chunks) > 3
    for prev, nxt in pairwise(chunks):
        assert nxt.start < prev.end  # overlap
        assert text[nxt.start:].startswith("Sentence number")  # starts at a sentence


def test_very_long_sentence_is_cut_at_token_boundaries(embedder: Embedder) -> None:
    text = "word " * 1000
    chunks = chunk_document(_doc(text), embedder.token_offsets, 64, 8)
    assert len(chunks) == 16  # 1000 tokens / 64 per chunk
    assert all(c.text == text[c.start:c.end] and c.text.strip() == c.text for c in chunks)
    assert all(len(embedder.token_offsets(c.text)) <= 64 for c in chunks)


def test_empty_and_blank_documents_have_no_chunks(embedder: Embedder) -> None:
    assert chunk_document(_doc(""), embedder.token_offsets) == []
    assert chunk_document(_doc(" \n\n \t"), embedder.token_offsets) == []


_texts = st.text(
    alphabet=st.sampled_from(
        [*"abc xyz.!?\n\"'", "é", "日", "本", "🙂", "\u200b", "\xa0", "Ü", "\r"]),
    max_size=400,
) | st.lists(st.sampled_from(["Hello world.", "\n\n", "Привет мир!", "a" * 300, " ",
                              "数字 123.", "Mr. X", "\n"]), max_size=30).map("".join)


@example(text="\u200b?????????", size=8, overlap=0)  # no token covers its first character
@given(text=_texts, size=st.integers(8, 128), overlap=st.integers(0, 7))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_chunks_are_exact_ordered_and_cover_all_text(
        embedder: Embedder, text: str, size: int, overlap: int) -> None:
    chunks = chunk_document(_doc(text), embedder.token_offsets, size, overlap)
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.text and c.text == c.text.strip()
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
