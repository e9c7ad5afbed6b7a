"""Whose words: the speaker a question asks about, and whether a citation names them."""

from __future__ import annotations

import pytest

from qa.answer.attribution import asked_speaker


@pytest.mark.parametrize(("question", "speaker"), [
    ("What did Antonio Guterres say at the event?", ["Antonio", "Guterres"]),
    ("What threats to global stability did Alimov mention?", ["Alimov"]),
    ("What did the SCO Secretary-General say about Eurasia?", ["Secretary-General"]),
    ("What did Tesla tell Edison?", ["Tesla"]),
    ("Who is Rashid Alimov?", []),  # nobody's words are asked for
    ("Which words did the speaker use?", []),  # words, but no one named
    # "State" is a name here, not the verb "state" (SQuAD v2.0: a right answer was refused).
    ("What does the Islamic State lack from the international community?", []),
    ("What did Islamic State state as its aim?", ["Islamic", "State"]),
])
def test_the_speaker_asked_about(question: str, speaker: list[str]) -> None:
    assert asked_speaker(question) == speaker
