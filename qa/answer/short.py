"""The short answer: the key phrase of an answer, asked of the model in the same conversation
(its key/value cache is reused) and copied from a passage where the passage has it."""

from __future__ import annotations

import re

from qa.answer.citations import strip_markers
from qa.answer.prompting import looks_like_refusal
from qa.index.lexical import tokenize
from qa.types import Message

SHORT_REQUEST = (
    "What is the short answer? Reply with just the few words from the passages that answer "
    "the question (a name, number, date, place or short phrase), not a full sentence."
)
MAX_SHORT_TOKENS = 12  # a short answer is a few words; a longer reply is cut here
SHORT_WORDS = 5  # an answer of this many words or fewer is its own short answer
_EDGES = " \t\"'“”‘’`*.,;:"


def short_messages(messages: list[Message], reply: str) -> list[Message]:
    """The answer conversation continued: the model's reply, then the short-answer request."""
    return [*messages, {"role": "assistant", "content": reply},
            {"role": "user", "content": SHORT_REQUEST}]


def _spaced(text: str) -> str:
    return " ".join(text.split())


def trim_to_new(phrase: str, question: str) -> str:
    """phrase without the words at its ends that only repeat the question or are stop words
    ("Jim Gray covered the pre-game show" to "What did Jim Gray cover?": "pre-game show");
    words with digits stay. The phrase as it is when nothing would remain."""
    asked = set(tokenize([question])[0])
    words = phrase.split()

    def repeats(word: str) -> bool:
        return not any(c.isdigit() for c in word) and set(
            tokenize([word.strip(_EDGES)])[0]) <= asked

    start, end = 0, len(words)
    while start < end and repeats(words[start]):
        start += 1
    while end > start and repeats(words[end - 1]):
        end -= 1
    return " ".join(words[start:end]).strip(_EDGES) or phrase


def pick_short(reply: str, passages: list[str], answer: str, question: str = "") -> str:
    """The short answer from the model's reply to SHORT_REQUEST: its first line without
    markers, quotes and the words at its ends that repeat the question, in the passage's own
    spelling. Empty when the reply is empty, a refusal, a sentence no shorter than the answer,
    or in neither a passage nor the answer (a phrase the model made up)."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    phrase = _spaced(strip_markers(lines[0])).strip(_EDGES) if lines else ""
    if not phrase or looks_like_refusal(phrase):
        return ""
    phrase = trim_to_new(phrase, question) if question else phrase
    plain = _spaced(strip_markers(answer))
    if len(phrase.split()) > SHORT_WORDS and len(phrase) >= len(plain.rstrip(_EDGES)):
        return ""  # the answer's sentence again
    pattern = re.compile(r"\s+".join(re.escape(word) for word in phrase.split()), re.IGNORECASE)
    for text in [*passages, plain]:
        found = pattern.search(text)
        if found:
            return _spaced(found.group(0))
    return ""
