"""The short answer: the key phrase of an answer, asked of the model in the same conversation
(its key/value cache is reused) and copied from a passage where the passage has it."""

from __future__ import annotations

import re

from qa.answer.citations import claims, strip_markers
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


def _agrees(phrase: str, answer: str) -> bool:
    """Whether the answer says what phrase says: its content words are the answer's (the
    phrase itself, for one of stop words only)."""
    words = set(tokenize([phrase])[0])
    if not words:
        return phrase.lower() in answer.lower()
    return words <= set(tokenize([answer])[0])


def _repeats_question(phrase: str, question: str) -> bool:
    words = set(tokenize([phrase])[0])
    return bool(words) and not any(c.isdigit() for c in phrase) and words <= set(
        tokenize([question])[0])


def pick_short(reply: str, passages: list[str], answer: str, question: str = "") -> str:
    """The short answer from the model's reply to SHORT_REQUEST: its first line without
    markers, quotes and the words at its ends that repeat the question, in the passage's own
    spelling. When the reply only repeats the question ("Who is X?": "X"), the answer's own
    words that the question lacks, if they are few. Empty when the reply is empty, a refusal,
    a sentence no shorter than the answer, not what the answer says (the model answering
    something else), or in neither a passage nor the answer (a phrase the model made up)."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    phrase = _spaced(strip_markers(lines[0])).strip(_EDGES) if lines else ""
    if not phrase or looks_like_refusal(phrase):
        return ""
    plain = _spaced(strip_markers(answer))
    if _repeats_question(phrase, question):
        first = claims(answer)[0][0] if claims(answer) else plain
        new = trim_to_new(_spaced(first), question)
        phrase = new if len(new.split()) <= SHORT_WORDS and new != _spaced(first) else phrase
    phrase = trim_to_new(phrase, question) if question else phrase
    if len(phrase.split()) > SHORT_WORDS and len(phrase) >= len(plain.rstrip(_EDGES)):
        return ""  # the answer's sentence again
    if not _agrees(phrase, plain):
        return ""
    pattern = re.compile(r"\s+".join(re.escape(word) for word in phrase.split()), re.IGNORECASE)
    for text in [*passages, plain]:
        found = pattern.search(text)
        if found:
            return _spaced(found.group(0))
    return ""
