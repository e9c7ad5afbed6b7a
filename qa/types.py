"""Result and data types shared by every module (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Message = dict[str, str]  # one chat message: {"role": ..., "content": ...}
RetrievalMode = Literal["hybrid", "dense", "bm25"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)
# Why an answer was refused: no passage was similar enough, the model said the passages do not
# answer, its answer cited nothing, no cited passage supported it, the model found refusing
# about as likely, or it was about to repeat protected text.
RefusalReason = Literal["", "no_passages", "model", "uncited", "unsupported", "unsure", "guard"]


@dataclass(frozen=True)
class Document:
    """A loaded source document; `id` is a content hash of its text. `pages` holds the
    (start, end) span of each page of a paged file (a PDF; page n is `pages[n - 1]`), and is
    empty for other files."""

    id: str
    source: str
    title: str
    text: str
    pages: tuple[tuple[int, int], ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character `offset` (the page before it when the offset
        falls between two pages); None for a document without pages."""
        page = None
        for n, (start, _) in enumerate(self.pages, 1):
            if start > offset:
                break
            page = n
        return page if page is not None or not self.pages else 1


@dataclass(frozen=True)
class Chunk:
    """A contiguous span of a document: `text == document.text[start:end]`."""

    id: str
    doc_id: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk; `rank` is the 1-based number the model sees as [rank]."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float = 0.0
    bm25_score: float = 0.0
    source: str = ""
    title: str = ""


@dataclass(frozen=True)
class Citation:
    """A `[n]` marker of an answer, resolved to an exact document span."""

    n: int
    chunk_id: str
    doc_id: str
    source: str
    title: str
    start: int
    end: int
    snippet: str
    supported: bool
    support: float = 0.0
    page: int | None = None  # the 1-based page of a paged document (a PDF), else None


@dataclass(frozen=True)
class Answer:
    """What the pipeline returns for one question."""

    question: str
    text: str
    citations: list[Citation]
    hits: list[Hit]
    refused: bool
    query: str = ""
    model: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    refusal: RefusalReason = ""
    # The log-probability the model gave the refusal as its reply (None: not measured).
    refusal_logprob: float | None = None
    # The refusal decision's probability that the question is answerable (None: not decided).
    confidence: float | None = None
    short: str = ""  # the answer's key phrase, copied from a passage where it can be
    # The language the answer was translated into (the question's), when not the documents'.
    language: str = ""
    withheld: str = ""  # the model's text that the checks refused (never sent to clients)
    # What the refusal decision read (log-probabilities, similarity, support; for evals).
    signals: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (timings in milliseconds), without the withheld text and the
        decision's signals."""
        out = asdict(self)
        del out["withheld"], out["signals"]
        return out
