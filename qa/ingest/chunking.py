"""Document -> overlapping, sentence-aware chunks with exact character offsets."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from qa.types import Chunk, Document

TokenOffsets = Callable[[str], list[tuple[int, int]]]

# A sentence ends at . ! ? or … (plus closing quotes/brackets) followed by whitespace,
# or at any line break.
_BOUNDARY = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n+")
_ABBREVIATION = re.compile(r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|Prof|St|vs|etc|e\.g|i\.e|No|Fig))\.$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences (and lines), whitespace trimmed, never empty."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        head = text[start:match.start()]
        if "\n" not in match.group() and _ABBREVIATION.search(head.rstrip("\"'\u201d\u2019)]")):
            continue
        spans.append((start, match.start() + len(match.group()) - len(match.group().lstrip(
            "\"'\u201d\u2019)]"))))
        start = match.end()
    spans.append((start, len(text)))
    return [s for s in (_trim(text, a, b) for a, b in spans) if s[1] > s[0]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_id(doc_id: str, start: int, end: int) -> str:
    """Stable id of a span of a content-addressed document."""
    return hashlib.sha256(f"{doc_id}:{start}:{end}".encode()).hexdigest()[:16]


def _segments(text: str, token_offsets: TokenOffsets,
              max_tokens: int) -> list[tuple[int, int, int]]:
    """Sentences as (start, end, tokens); sentences longer than max_tokens are cut at tokens."""
    out: list[tuple[int, int, int]] = []
    for start, end in sentence_spans(text):
        offsets = token_offsets(text[start:end])
        if len(offsets) <= max_tokens:
            out.append((start, end, max(1, len(offsets))))
            continue
        for i in range(0, len(offsets), max_tokens):
            window = offsets[i:i + max_tokens]
            piece_end = offsets[i + max_tokens][0] if i + max_tokens < len(offsets) else end - start
            # The first piece starts with the sentence: characters no token covers (a
            # zero-width space) are not lost.
            a, b = _trim(text, start + (window[0][0] if i else 0), start + piece_end)
            if b > a:
                out.append((a, b, len(window)))
    return out


def chunk_document(doc: Document, token_offsets: TokenOffsets, max_tokens: int = 128,
                   overlap_tokens: int = 32) -> list[Chunk]:
    """Pack whole sentences into chunks of at most max_tokens, repeating up to
    overlap_tokens of trailing sentences at the start of the next chunk."""
    segs = _segments(doc.text, token_offsets, max_tokens)
    chunks: list[Chunk] = []
    i = 0
    while i < len(segs):
        j, total = i, 0
        while j < len(segs) and (j == i or total + segs[j][2] <= max_tokens):
            total += segs[j][2]
            j += 1
        start, end = segs[i][0], segs[j - 1][1]
        chunks.append(Chunk(id=chunk_id(doc.id, start, end), doc_id=doc.id,
                            text=doc.text[start:end], start=start, end=end))
        if j == len(segs):
            break
        k, overlap = j, 0
        while k - 1 > i and overlap + segs[k - 1][2] <= overlap_tokens:
            overlap += segs[k - 1][2]
            k -= 1
        i = k
    return chunks
