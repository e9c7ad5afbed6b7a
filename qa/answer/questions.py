"""The one check of a question (or a search query) before any work is done on it."""

from __future__ import annotations

import unicodedata

from qa.errors import QuestionError, QuestionTooLong
from qa.generate.base import Generator
from qa.types import Message


def clean_text(text: str) -> str:
    """Text safe for the tokenizers and for JSON: lone surrogates become '?', control
    characters other than newline and tab are dropped."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def whole_reply(generator: Generator, messages: list[Message], max_new_tokens: int) -> str:
    """The model's whole reply to messages, cleaned (clean_text); the stream is closed."""
    pieces = generator.stream(messages, max_new_tokens)
    try:
        return clean_text("".join(pieces))
    finally:
        pieces.close()


def check_question(text: str | None, max_chars: int, what: str = "question") -> str:
    """The cleaned, stripped text; QuestionError when it is empty, QuestionTooLong when it has
    more than max_chars characters (`what` names it in the message)."""
    cleaned = clean_text(text or "").strip()
    if not cleaned:
        raise QuestionError(f"the {what} is empty")
    if len(cleaned) > max_chars:
        raise QuestionTooLong(f"the {what} is longer than {max_chars} characters")
    return cleaned
