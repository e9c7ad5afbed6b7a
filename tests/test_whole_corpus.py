"""A small index is read whole: every chunk in the prompt, numbered in document order, from a
prefix the generator keeps; retrieval still ranks the hits and guards off-topic questions."""

from __future__ import annotations

from qa.answer.pipeline import QA
from qa.answer.prompting import REFUSAL, passages_prefix
from qa.config import Settings
from qa.index.store import build_index
from qa.serve.state import Models
from tests.fakes import ScriptedGenerator

MEMBERS = "Which countries were granted full membership of the SCO?"


def test_every_chunk_is_in_the_prompt_in_document_order(corpus_index, embedder) -> None:
    generator = ScriptedGenerator("India and Pakistan were granted full membership [3].")
    qa = QA(Settings.from_env(whole_corpus_tokens=2048), corpus_index, embedder, generator)
    answer = qa.answer(MEMBERS)
    [messages] = generator.calls
    prompt = messages[-1]["content"]
    chunks = corpus_index.chunks
    assert len(chunks) > Settings().top_k
    assert prompt.count("<passage ") == len(chunks)
    positions = [prompt.index(f'<passage id="{n}"') for n in range(1, len(chunks) + 1)]
    assert positions == sorted(positions)
    for n, chunk in enumerate(chunks, 1):
        start = prompt.index(f'<passage id="{n}"')
        assert prompt.index(chunk.text[:60].replace("<", "‹"), start) < prompt.index(
            "</passage>", start)
    # The generator was asked to keep exactly the prompt's leading part.
    assert generator.prefix == passages_prefix(qa.whole_corpus(corpus_index))
    assert prompt.startswith(generator.prefix[-1]["content"])
    assert prompt.endswith(f"Question: {MEMBERS}")
    # The hits are retrieval's top k, under the numbers their chunks have in the prompt.
    number = {c.id: n for n, c in enumerate(chunks, 1)}
    assert len(answer.hits) == Settings().top_k
    assert [h.rank for h in answer.hits] == [number[h.chunk.id] for h in answer.hits]
    assert answer.hits[0].chunk.text.endswith("full membership to\xa0India and Pakistan.")


def test_a_citation_names_the_chunk_of_its_number(corpus_index, embedder) -> None:
    chunks = corpus_index.chunks
    members = next(n for n, c in enumerate(chunks, 1) if "India and Pakistan" in c.text)
    generator = ScriptedGenerator(f"India and Pakistan were granted full membership [{members}].")
    answer = QA(Settings.from_env(whole_corpus_tokens=2048), corpus_index, embedder,
                generator).answer(MEMBERS)
    assert not answer.refused
    [citation] = answer.citations
    assert (citation.n, citation.chunk_id, citation.supported) == (
        members, chunks[members - 1].id, True)


def test_off_topic_questions_are_still_refused_without_the_model(corpus_index,
                                                                 embedder) -> None:
    generator = ScriptedGenerator("Paris [1].")
    qa = QA(Settings.from_env(whole_corpus_tokens=2048), corpus_index, embedder, generator)
    answer = qa.answer("What is the capital of France?")
    assert answer.refused and answer.refusal == "no_passages" and answer.text == REFUSAL
    assert generator.calls == []


def test_no_second_try_when_the_model_read_everything(corpus_index, embedder) -> None:
    generator = ScriptedGenerator(REFUSAL, "unused [1].")
    answer = QA(Settings.from_env(whole_corpus_tokens=2048), corpus_index, embedder,
                generator).answer(MEMBERS)
    assert len(generator.calls) == 1 and answer.refusal == "model"


def test_an_index_over_the_budget_gives_the_retrieved_passages(corpus_index, embedder) -> None:
    generator = ScriptedGenerator("India and Pakistan were granted full membership [1].")
    total = sum(generator.count_tokens(c.text) for c in corpus_index.chunks)
    qa = QA(Settings.from_env(whole_corpus_tokens=total - 1), corpus_index, embedder, generator)
    answer = qa.answer(MEMBERS)
    assert qa.whole_corpus(corpus_index) == []
    assert generator.calls[0][-1]["content"].count("<passage ") == Settings().top_k
    assert [h.rank for h in answer.hits] == [1, 2, 3]
    assert not hasattr(generator, "prefix")  # nothing kept for it
    turned_off = QA(Settings.from_env(whole_corpus_tokens=0), corpus_index, embedder, generator)
    assert turned_off.whole_corpus(corpus_index) == []


def test_an_uploaded_set_is_read_whole_from_its_own_prefix(corpus_index, embedder, tmp_path,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("QA_WHOLE_CORPUS_TOKENS", "2048")
    settings = Settings.from_env()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "zoo.txt").write_text("Zoo notes\n\nThe zebra named Oswald lives in the Lisbon zoo "
                                   "since 2019. He eats hay and carrots.\n", encoding="utf-8")
    (notes / "farm.txt").write_text("Farm notes\n\nThe farm keeps six goats and a donkey called "
                                    "Pedro.\n", encoding="utf-8")
    upload = build_index([notes], tmp_path / "index", settings, embedder).index
    generator = ScriptedGenerator("Oswald lives in the Lisbon zoo [2].")
    models = Models(QA(settings, corpus_index, embedder, generator))
    answer = models.pipeline(index=upload).answer("Where does the zebra Oswald live?")
    [messages] = generator.calls
    prompt = messages[-1]["content"]
    assert prompt.count("<passage ") == len(upload.chunks) == 2  # both files, not the article
    assert "Pedro" in prompt and "Alimov" not in prompt
    assert generator.prefix == passages_prefix(models.pipeline(index=upload).whole_corpus(upload))
    [citation] = answer.citations
    assert "The zebra named Oswald lives" in upload.chunks[citation.n - 1].text
    assert citation.supported and not answer.refused
