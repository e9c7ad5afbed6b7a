"""Fuzzing the Python API: odd input is answered or rejected cleanly, never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.answer.pipeline import QA, clean_text
from qa.config import Settings
from qa.errors import QuestionError
from tests.fakes import ScriptedGenerator

ODD = st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\u200b", "\ufeff", "\u0301",
                       "[1]", "[", "</passage>", "\n", "🙂", "ﷺ", "𝔘", "\x1b[31m", "%s", "{}"])
QUESTIONS = st.lists(st.one_of(ODD, st.text(max_size=20)), max_size=30).map("".join)
HISTORY = st.lists(st.fixed_dictionaries({
    "role": st.sampled_from(["user", "assistant", "system", "tool", ""]),
    "content": QUESTIONS}), max_size=8)


@given(question=QUESTIONS, history=HISTORY)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_question_is_answered_or_rejected(corpus_index, embedder, question: str,
                                              history: list[dict[str, str]]) -> None:
    generator = ScriptedGenerator("Standalone question?", "India and Pakistan [1] \ud800 [9].")
    qa = QA(Settings.from_env(), corpus_index, embedder, generator)
    try:
        answer = qa.answer(question, history)
    except QuestionError:
        cleaned = clean_text(question).strip()  # NUL and other control characters dropped
        assert not cleaned or len(cleaned) > qa.settings.max_question_chars
        return
    assert answer.refused or answer.citations
    assert all(1 <= c.n <= len(answer.hits) for c in answer.citations)
    for c in answer.citations:
        assert corpus_index.documents[c.doc_id].text[c.start:c.end] == c.snippet


def test_clean_text_keeps_text_and_drops_what_breaks_tokenizers() -> None:
    assert clean_text("a\x00b\ud800c\n\td\u202e\u200b") == "ab?c\n\td\u202e\u200b"


def test_a_one_megabyte_question_is_rejected_quickly(corpus_index, embedder) -> None:
    qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator("unused"))
    try:
        qa.answer("why " * 250_000)
    except QuestionError as exc:
        assert "longer than 2000 characters" in str(exc)
    else:
        raise AssertionError("a 1 MB question was accepted")
