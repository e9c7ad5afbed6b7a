"""A deterministic generator implementing the real Generator interface, for plumbing tests."""

from __future__ import annotations

from collections.abc import Iterator

from qa.generation import Message
from qa.prompting import VERIFY_SYSTEM


def is_check(messages: list[Message]) -> bool:
    """Whether messages are the pipeline's answer check (the verify prompt)."""
    return bool(messages) and messages[0]["content"] == VERIFY_SYSTEM


class ScriptedGenerator:
    """Replies with a fixed script, split into small pieces; records what it was asked.
    Answer checks (the verify prompt) get `verdict` and are recorded apart, in `checks`."""

    name = "scripted"

    def __init__(self, *replies: str, piece: int = 3, verdict: str = "Yes") -> None:
        self.replies = list(replies)
        self.piece = piece
        self.verdict = verdict
        self.calls: list[list[Message]] = []
        self.checks: list[list[Message]] = []

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        if is_check(messages):
            self.checks.append(messages)
            reply = self.verdict
        else:
            self.calls.append(messages)
            reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for i in range(0, len(reply), self.piece):
            yield reply[i:i + self.piece]

    def keep_prefix(self, messages: list[Message]) -> None:
        self.prefix = messages
