"""A deterministic generator implementing the real Generator interface, for plumbing tests."""

from __future__ import annotations

from collections.abc import Iterator

from qa.generation import Message, ScoredStream


class ScriptedGenerator:
    """Replies with a fixed script, split into small pieces; records what it was asked."""

    name = "scripted"

    def __init__(self, *replies: str, piece: int = 3) -> None:
        self.replies = list(replies)
        self.piece = piece
        self.calls: list[list[Message]] = []

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for i in range(0, len(reply), self.piece):
            yield reply[i:i + self.piece]

    def keep_prefix(self, messages: list[Message]) -> None:
        self.prefix = messages


class ScoringScriptedGenerator(ScriptedGenerator):
    """A ScriptedGenerator that also reports a fixed log-probability for the alternative reply
    (the ScoringGenerator interface), once its script has been read to the end."""

    def __init__(self, *replies: str, alternative_logprob: float) -> None:
        super().__init__(*replies)
        self.alternative_logprob = alternative_logprob
        self.alternatives: list[str] = []

    def stream_scored(self, messages: list[Message], max_new_tokens: int,
                      alternative: str) -> ScoredStream:
        self.alternatives.append(alternative)
        scored = ScoredStream()

        def pieces() -> Iterator[str]:
            yield from self.stream(messages, max_new_tokens)
            scored.alternative_logprob = self.alternative_logprob

        scored.pieces = pieces()
        return scored
