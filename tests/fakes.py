"""Deterministic generators implementing the real Generator contract, for plumbing tests."""

from __future__ import annotations

from collections.abc import Iterator

from qa.answer.short import SHORT_REQUEST
from qa.config import Backend
from qa.generate.base import ReplyStream
from qa.types import Message


class FakeGenerator:
    """The Generator contract over `pieces()`, which subclasses write; no model behind it.

    The pipeline's request for a short answer (qa.answer.short) gets `short` as its reply and
    is recorded in `short_calls`, apart from the scripted conversation."""

    name = "fake"
    backend: Backend = "transformers"
    scores_alternatives = False
    short = ""

    def pieces(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        raise NotImplementedError

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        if messages and messages[-1]["content"] == SHORT_REQUEST:
            self.short_calls = [*getattr(self, "short_calls", []), messages]
            return ReplyStream([self.short])
        return ReplyStream(self.pieces(messages, max_new_tokens))

    def keep_prefix(self, messages: list[Message], persist: bool = False) -> None:
        self.prefix = messages

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        return [len(word) for m in messages for word in m["content"].split()]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class ScriptedGenerator(FakeGenerator):
    """Replies with a fixed script, split into small pieces; records what it was asked."""

    name = "scripted"

    def __init__(self, *replies: str, piece: int = 3) -> None:
        self.replies = list(replies)
        self.piece = piece
        self.calls: list[list[Message]] = []

    def pieces(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for i in range(0, len(reply), self.piece):
            yield reply[i:i + self.piece]


class ScoringScriptedGenerator(ScriptedGenerator):
    """A ScriptedGenerator that scores alternatives: it reports a fixed log-probability for the
    alternative reply (and, when given, for the reply's own tokens) once its script has been
    read to the end."""

    scores_alternatives = True

    def __init__(self, *replies: str, alternative_logprob: float,
                 reply_logprob: float | None = None) -> None:
        super().__init__(*replies)
        self.alternative_logprob = alternative_logprob
        self.reply_logprob = reply_logprob
        self.alternatives: list[str] = []

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        if alternative is None or messages[-1]["content"] == SHORT_REQUEST:
            return super().stream(messages, max_new_tokens)
        self.alternatives.append(alternative)
        scored = ReplyStream()

        def pieces() -> Iterator[str]:
            yield from self.pieces(messages, max_new_tokens)
            scored.alternative_logprob = self.alternative_logprob
            scored.reply_logprob = self.reply_logprob

        scored.pieces = pieces()
        return scored
