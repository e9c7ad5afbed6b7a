"""Output guard against prompt injection: links never reach the reader, protected terms
(secret-looking codes from the instructions, or from passage sentences that give orders to
an assistant) stop the answer before any character of them is shown."""

from __future__ import annotations

import re

from qa.ingest.chunking import sentence_spans

URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]{}\"'`]+(?<![.,;:!?])", re.IGNORECASE)
LINK_REMOVED = "[link removed]"
_PARTIAL_LINK = re.compile(r"(?:h(?:t(?:t(?:ps?)?)?)?|https?:/{0,2}|w(?:ww?)?|www\.)$|"
                           r"(?:https?://|www\.)\S*$", re.IGNORECASE)
# Code-like words: six or more characters with a digit, or in capitals: what a canary,
# key or password looks like. Ordinary words of an answer are neither.
_CODE = re.compile(r"(?<![\w-])(?=[\w-]*(?:\d|[A-Z]{3}))[A-Za-z0-9][\w-]{5,}(?![\w-])")
# Sentences of retrieved text that address the assistant or the reader with orders.
_ORDER = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules|prompt|above)\b|"
    r"\b(?:reply|respond|answer|say|output|print|write)\b.{0,30}\b(?:only|exactly|instead)\b|"
    r"\b(?:add|include|insert|append)\b.{0,40}\b(?:link|url|website)\b|"
    r"\b(?:you are now|act as|pretend to be|new instructions|system prompt|developer mode)\b|"
    r"\b(?:assistant|AI|language model|chatbot)s?\b.{0,40}\b(?:must|should|shall|will)\b",
    re.IGNORECASE)


def code_terms(text: str) -> set[str]:
    """The code-like words of text."""
    return set(_CODE.findall(text))


def ordering_sentences(text: str) -> list[str]:
    """Sentences of text that give orders to an assistant (likely injected instructions)."""
    return [text[a:b] for a, b in sentence_spans(text) if _ORDER.search(text[a:b])]


def protected_terms(system_prompt: str, passages: list[str], question: str) -> set[str]:
    """Terms an answer must never contain: code-like words of the instructions and of
    ordering sentences in the passages, unless the reader's question or an ordinary
    passage sentence uses them."""
    ordering = [s for p in passages for s in ordering_sentences(p)]
    plain = " ".join(p for p in passages) + " " + question
    for sentence in ordering:
        plain = plain.replace(sentence, " ")
    allowed = code_terms(plain)
    return {t for t in code_terms(system_prompt) | code_terms(" ".join(ordering))
            if t not in allowed}


FRAGMENT = 6  # characters; protected terms are at least this long (see _CODE)


class OutputGuard:
    """Filters streamed answer text: removes links, trips on protected terms."""

    def __init__(self, protected: set[str]) -> None:
        self.protected = {t.lower() for t in protected}
        # A secret half told is told: any FRAGMENT-character piece of a term trips the guard
        # (seen: a stream that ended after "QX-7741-K" of "QX-7741-KESTREL").
        self.fragments = {t[i:i + FRAGMENT] for t in self.protected
                          for i in range(max(1, len(t) - FRAGMENT + 1))}
        self.hold = max((len(t) for t in self.protected), default=0)
        self.text = ""
        self.sent = 0
        self.tripped = False

    def clean(self, text: str) -> str:
        """text with links removed (whole text, not streamed)."""
        return URL.sub(LINK_REMOVED, text)

    def feed(self, piece: str) -> str:
        """Add streamed text; return what is safe to show now ('' once tripped)."""
        if self.tripped:
            return ""
        self.text += piece
        lowered = self.text.lower()
        if any(f in lowered for f in self.fragments):
            self.tripped = True
            return ""
        # Hold back enough to catch a protected term, and what may still become a link.
        cut = self.text[: len(self.text) - self.hold] if self.hold else self.text
        partial = _PARTIAL_LINK.search(cut)
        return self._emit(cut[: partial.start()] if partial else cut)

    def flush(self) -> str:
        """The rest of the text at the end of the stream."""
        return "" if self.tripped else self._emit(self.text)

    def _emit(self, upto: str) -> str:
        cleaned = self.clean(upto)
        if len(cleaned) < self.sent:
            return ""
        delta, self.sent = cleaned[self.sent:], len(cleaned)
        return delta
