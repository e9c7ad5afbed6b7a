"""Follow-ups: which questions are rewritten, which rewrites are kept, and the fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.answer.followups import needs_context, usable_rewrite, with_earlier_turn
from qa.answer.pipeline import QA
from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import build_index
from tests.fakes import ScriptedGenerator

NOTES = ("The quarterly review meeting is held every second Tuesday in room 4B. "
         "Attendance is mandatory for team leads.")
HISTORY = [{"role": "user", "content": "Where is the quarterly review held?"},
           {"role": "assistant", "content": "It is held every second Tuesday in room 4B."}]


@pytest.mark.parametrize("question", [
    "And when did that happen?", "Who must attend it?", "What about 2019?", "Why?",
    "When was this decided?", "How many?", "Who else spoke?", "Где это было?", "那是什么时候？"])
def test_questions_that_lean_on_the_conversation(question: str) -> None:
    assert needs_context(question) is True


@pytest.mark.parametrize("question", [
    "Which countries were granted full membership of the SCO?", "Who is Rashid Alimov?",
    "Where was the high-level event held in 2018?", "What does the report conclude?"])
def test_standalone_questions(question: str) -> None:
    assert needs_context(question) is False


@pytest.mark.parametrize(("rewrite", "usable"), [
    ("Who must attend the quarterly review meeting?", True),
    # The case: a statement that repeats the previous answer.
    ("The quarterly review meeting must be held every second Tuesday in room 4B.", False),
    ("Who must attend it?", False),  # nothing named from the conversation
    ("Where is the quarterly review held?", False),  # no longer asks who
    ("Who must attend it in room 4B?", False),  # "it" still stands for something
    ("Who must attend the quarterly review meeting? " * 8, False),  # far longer than needed
])
def test_a_rewrite_is_kept_when_it_is_the_question_made_standalone(rewrite: str,
                                                                   usable: bool) -> None:
    assert usable_rewrite(rewrite.strip(), "Who must attend it?", HISTORY) is usable


def test_the_fallback_names_the_previous_exchange() -> None:
    assert with_earlier_turn("Who must attend it?", HISTORY) == (
        "Who must attend it? (Earlier: Where is the quarterly review held? It is held every "
        "second Tuesday in room 4B.)")
    assert with_earlier_turn("Why?", []) == "Why?"
    long = [{"role": "user", "content": "word " * 100}]
    assert with_earlier_turn("Why?", long).endswith("word …)")


@pytest.fixture
def notes_qa(tmp_path: Path, settings: Settings, embedder: Embedder) -> QA:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text(NOTES + "\n", encoding="utf-8")
    index = build_index([tmp_path / "docs"], tmp_path / "index", settings, embedder).index
    return QA(settings, index, embedder, ScriptedGenerator())


def test_a_standalone_follow_up_costs_no_generation(notes_qa: QA) -> None:
    notes_qa.generator.replies = ["Team leads must attend [1]."]  # type: ignore[attr-defined]
    answer = notes_qa.answer("Who must attend the quarterly review meeting?", HISTORY)
    assert answer.query == "Who must attend the quarterly review meeting?"
    assert len(notes_qa.generator.calls) == 1  # type: ignore[attr-defined]


def test_a_statement_for_a_rewrite_gives_way_to_the_question_and_its_context(
        notes_qa: QA) -> None:
    notes_qa.generator.replies = [  # type: ignore[attr-defined]
        "The quarterly review meeting must be held every second Tuesday in room 4B.",
        "Attendance is mandatory for team leads [1]."]
    answer = notes_qa.answer("Who must attend it?", HISTORY)
    assert answer.query == with_earlier_turn("Who must attend it?", HISTORY)
    assert not answer.refused and answer.text == "Attendance is mandatory for team leads [1]."

