"""The generator contract: everything the answer pipeline asks of a backend.

A backend module imports this contract and the shared helpers (`qa.compute`, `qa.types`,
`qa.errors`), never the pipeline. `qa.generate.registry` picks and loads a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from qa.config import Backend
from qa.types import Message

# Prompt prefixes a generator keeps at once (the latest kept): the app's documents, the fixed
# instructions, and the sets that visitors uploaded.
KEPT_PREFIXES = 4


class ReplyStream(Iterator[str]):
    """A reply's text pieces as they are generated; `close()` stops generation.

    When the stream was asked to score an alternative reply, `alternative_logprob` holds, once
    every piece has been read, the log-probability the model gives that reply to the same
    prompt (None: not asked, not measured, or the stream was closed early), and
    `reply_logprob` the mean log-probability of the reply's own tokens (None where the backend
    does not measure it or the reply was empty)."""

    def __init__(self, pieces: Iterable[str] = ()) -> None:
        self.pieces: Iterator[str] = iter(pieces)
        self.alternative_logprob: float | None = None
        self.reply_logprob: float | None = None

    def __next__(self) -> str:
        return next(self.pieces)

    def close(self) -> None:
        """Stop generation (the backend's own iterator is closed)."""
        close = getattr(self.pieces, "close", None)  # generator functions have one
        if close is not None:
            close()


class Generator(Protocol):
    """A local chat model that streams greedy replies to chat messages."""

    name: str
    backend: Backend
    # Whether stream(..., alternative=...) measures the alternative reply's log-probability.
    scores_alternatives: bool

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        """The reply, piece by piece (lazily: nothing runs before the first piece is read).
        With `alternative` on a backend that scores alternatives, the stream also measures
        that reply's log-probability; elsewhere it is ignored."""
        ...

    def keep_prefix(self, messages: list[Message], persist: bool = False) -> None:
        """Precompute the leading messages that later prompts start with (warm-up); a prompt
        that begins with them skips their evaluation. When the last of them is a user
        message, later prompts continue its text (an open message), and a prompt that shares
        only the messages before it still skips those. The latest `KEPT_PREFIXES` prefixes
        are kept side by side; keeping one again costs nothing (it becomes the latest); an
        empty list forgets them all. persist: a backend that can also keeps it on disk for
        the next start (the app's instructions and documents, never a visitor's upload)."""
        ...

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat template applied to messages."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (for speed figures)."""
        ...


def prefix_tokens(generator: Generator, messages: list[Message]) -> tuple[list[int], int]:
    """(ids, needed) of a prefix for `keep_prefix`: the tokens later prompts start with, and
    how many of them a prompt must share to reuse it (all of them, or with an open last user
    message only the messages before it)."""
    ids = generator.prompt_tokens(messages, generation_prompt=False)
    if not messages or messages[-1]["role"] != "user":
        return ids, len(ids)
    # The tokens common to this message and a longer one: the message's text, without its
    # end of turn (nor a last token that a continuation could merge with).
    longer = [*messages[:-1], {"role": "user", "content": messages[-1]["content"] + " ~"}]
    common = 0
    for a, b in zip(ids, generator.prompt_tokens(longer, generation_prompt=False), strict=False):
        if a != b:
            break
        common += 1
    before = generator.prompt_tokens(messages[:-1], generation_prompt=False)
    return ids[:max(common - 1, len(before))], len(before)


def reply_tokens(generator: Generator, messages: list[Message], ids: list[int], reply: str,
                 is_end: Callable[[int], bool]) -> list[int]:
    """The tokens the model would generate after the prompt ids to give `reply`, up to its
    end-of-turn token ([] where the template renders the prompt otherwise)."""
    full = generator.prompt_tokens([*messages, {"role": "assistant", "content": reply}],
                                   generation_prompt=False)
    if full[:len(ids)] != ids:
        return []
    tokens = full[len(ids):]
    ends = [i for i, t in enumerate(tokens) if is_end(t)]
    return tokens[:ends[0] + 1] if ends else tokens
