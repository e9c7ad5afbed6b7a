"""`qa eval qa` on question files with conversations: a line's history makes it a follow-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import QuestionFileError
from qa.eval.qa_eval import evaluate, read_questions
from qa.index.embedding import Embedder
from qa.index.store import build_index
from tests.fakes import ScriptedGenerator

NOTES = ("The quarterly review meeting is held every second Tuesday in room 4B. "
         "Attendance is mandatory for team leads.")
HISTORY = [{"role": "user", "content": "Where is the quarterly review held?"},
           {"role": "assistant", "content": "It is held every second Tuesday in room 4B [1]."}]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_line_with_history_is_answered_as_a_follow_up(tmp_path: Path, settings: Settings,
                                                        embedder: Embedder) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text(NOTES + "\n", encoding="utf-8")
    index = build_index([tmp_path / "docs"], tmp_path / "index", settings, embedder).index
    rewrite = "Who must attend the quarterly review meeting?"
    generator = ScriptedGenerator(rewrite, "Attendance is mandatory for team leads [1].")
    qa = QA(settings, index, embedder, generator)
    rows = read_questions(_write(tmp_path / "q.jsonl", [
        {"id": "f1", "q": "Who must attend it?", "answers": ["team leads"],
         "history": HISTORY}]))
    report = evaluate(qa, rows)
    [row] = report["rows"]
    assert row["query"] == rewrite and row["follow_up"] is True
    assert row["correct"] == 1.0 and row["citation_ok"] is True
    assert (report["follow_ups"], report["follow_up_answer_accuracy"]) == (1, 1.0)
    rewrite_prompt = generator.calls[0][-1]["content"]
    assert "Where is the quarterly review held?" in rewrite_prompt
    assert "Last question: Who must attend it?" in rewrite_prompt
    assert generator.calls[1][-1]["content"].endswith(f"Question: {rewrite}")


def test_questions_without_history_are_no_follow_ups(tmp_path: Path) -> None:
    [row] = read_questions(_write(tmp_path / "q.jsonl", [{"q": "Where?", "answers": ["4B"]}]))
    assert row["history"] == [] and row["kind"] == "fact"


@pytest.mark.parametrize("history", [
    "earlier", [{"role": "system", "content": "x"}], [{"role": "user"}],
    [{"role": "user", "content": 3}], [{"role": "user", "content": "x", "extra": 1}]])
def test_a_malformed_history_names_its_line(tmp_path: Path, history: object) -> None:
    path = _write(tmp_path / "q.jsonl", [{"q": "fine", "answers": []},
                                         {"q": "Who?", "answers": [], "history": history}])
    with pytest.raises(QuestionFileError) as error:
        read_questions(path)
    assert str(error.value) == (f"{path}:2: 'history' must be a list of "
                                '{"role": "user" or "assistant", "content": text}')
