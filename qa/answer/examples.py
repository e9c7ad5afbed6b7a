"""Example questions made from the loaded documents: the model writes a question for a passage
spread over the index, and only the questions the pipeline answers (not refuses) are kept."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

from qa.answer.pipeline import QA
from qa.answer.questions import whole_reply
from qa.types import Chunk, Message

EXAMPLE_SYSTEM = (
    "Write one question that the passage answers with a fact it states: a name, a number, a "
    "date, a place, or what someone did. Name the subject in the question, as a reader who "
    "has not seen the passage would ask it. Reply with the question only."
)
_REFERS_TO_TEXT = re.compile(r"\b(?:passage|text|article|document|paragraph|excerpt)s?\b",
                             re.IGNORECASE)
MAX_QUESTION_TOKENS = 40


def spread(chunks: list[Chunk], count: int) -> list[Chunk]:
    """Up to count chunks at even steps through the index, the first one included."""
    if count <= 0 or not chunks:
        return []
    step = max(1, len(chunks) // count)
    return chunks[::step][:count]


def question_messages(passage: str) -> list[Message]:
    """Chat messages asking for one question that the passage answers."""
    return [{"role": "system", "content": EXAMPLE_SYSTEM},
            {"role": "user", "content": f"Passage:\n{passage.strip()}"}]


def usable_question(text: str) -> str:
    """The first line of the model's reply when it is one plain question ('' otherwise): a
    question mark at its end, 4 to 25 words, and no talk of 'the passage'."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = " ".join(lines[0].strip("\"'“”*").split()) if lines else ""
    words = len(line.split())
    if not line.endswith("?") or not 4 <= words <= 25 or _REFERS_TO_TEXT.search(line):
        return ""
    return line


def make_examples(qa: QA, count: int = 3, tries: int = 6) -> list[str]:
    """Up to count questions written from passages spread over qa's index, each one that qa
    answers rather than refuses (a question may be tried for each of `tries` passages)."""
    # Only whether a question is answered counts here: no short answers are asked for.
    checker = QA(replace(qa.settings, short_answer=False), qa.index, qa.embedder, qa.generator)
    found: list[str] = []
    for chunk in spread(qa.index.chunks, tries):
        if len(found) >= count:
            break
        question = usable_question(whole_reply(qa.generator, question_messages(chunk.text),
                                               MAX_QUESTION_TOKENS))
        if question and question not in found and not checker.answer(question).refused:
            found.append(question)
    return found


def cached_examples(qa: QA, folder: Path, count: int = 3) -> list[str]:
    """make_examples for qa's index and model, kept in folder as JSON by index build and
    model, so a restart over the same index reuses them (a broken file is remade)."""
    path = folder / f"{qa.index.version or 'unversioned'}-{qa.model_name}.json"
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(kept, list) and all(isinstance(q, str) for q in kept):
            return kept[:count]
    except (OSError, ValueError):
        pass
    found = make_examples(qa, count)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(found, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache: made again on the next start
    return found
