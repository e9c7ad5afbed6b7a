"""A deterministic generator implementing the real Generator interface, for plumbing tests."""

from __future__ import annotations

from collections.abc import Iterator

from qa.generation import Message


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
