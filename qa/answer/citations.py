"""Citation markers: parse [n], drop invalid ones, check support, locate cited spans."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from qa.index.lexical import tokenize
from qa.ingest.chunking import sentence_spans
from qa.types import Citation, Hit

MARKER = re.compile(r"\s*\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_PARTIAL = re.compile(r"\s*(?:\[[\d,\s]{0,12})?$")


@dataclass(frozen=True)
class Marker:
    """One [n] (or [n, m]) marker found in an answer."""

    numbers: tuple[int, ...]
    start: int
    end: int


def find_markers(text: str) -> list[Marker]:
    """Every citation marker with its character span in text."""
    return [Marker(tuple(int(n) for n in m.group(1).split(",")), m.start(), m.end())
            for m in MARKER.finditer(text)]


def plain_brackets(text: str) -> str:
    """text with full-width brackets (［1］, 【1】) written as the markers' own."""
    return text.translate(_BRACKETS)


def faithful(text: str, translation: str) -> bool:
    """Whether a translation of text keeps its citation numbers and every run of digits
    (full-width brackets count as brackets)."""
    translation = plain_brackets(translation)
    def cited(t: str) -> set[int]:
        return {n for m in find_markers(t) for n in m.numbers}

    def digits(t: str) -> set[str]:
        return set(_DIGITS.findall(strip_markers(t)))

    return bool(translation.strip()) and cited(translation) == cited(text) and (
        digits(text) <= digits(translation))


def clean_markers(text: str, k: int) -> str:
    """Drop numbers outside 1..k (and markers left empty), normalising '[1,2]' to '[1][2]'."""
    def fix(match: re.Match[str]) -> str:
        valid = list(dict.fromkeys(int(n) for n in match.group(1).split(",") if 1 <= int(n) <= k))
        lead = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip())]
        return lead + "".join(f"[{n}]" for n in valid) if valid else ""

    return MARKER.sub(fix, text)


def strip_markers(text: str) -> str:
    """The text without any citation markers."""
    return MARKER.sub("", text).strip()


class MarkerStream:
    """Turns raw streamed pieces into cleaned text deltas that never end in half a marker."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.raw = ""
        self.sent = 0

    def feed(self, piece: str) -> str:
        """Add a piece; return the newly safe cleaned text."""
        self.raw += piece
        partial = _PARTIAL.search(self.raw)
        return self._emit(self.raw[: partial.start()] if partial else self.raw)

    def flush(self) -> str:
        """Everything left at the end of the stream."""
        return self._emit(self.raw)

    def _emit(self, safe: str) -> str:
        cleaned = clean_markers(safe, self.k)
        delta = cleaned[self.sent:]
        self.sent = len(cleaned)
        return delta


_TIE = 0.05
Similarity = Callable[[str], dict[int, float]]
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGITS = re.compile(r"\d+")
_BRACKETS = str.maketrans("［【］】", "[[]]")
# "Yes, ..." answers a yes/no question; the word itself is nothing a passage has to hold.
_REPLY_WORDS = frozenset(tokenize(["yes"])[0])


def support(claim: str, passage: str, question: str = "") -> float:
    """Fraction of the claim's content words (stemmed, no stop words) found in the passage,
    quartered when the claim has a number that neither the passage nor the question has (a
    likely invention).

    Words the claim merely repeats from the question are left out when others remain: the
    answer's new words are what the passage has to hold.
    """
    words = set(tokenize([claim])[0]) - _REPLY_WORDS
    novel = words - set(tokenize([question])[0]) if question else words
    words = novel or words
    if not words:
        return 0.0
    score = len(words & set(tokenize([passage])[0])) / len(words)
    if not set(_NUMBER.findall(claim)) <= set(_NUMBER.findall(passage + " " + question)):
        score /= 4
    return score


def claims(text: str) -> list[tuple[str, list[int]]]:
    """Answer sentences without markers, each with the numbers cited in or right after it."""
    out: list[tuple[str, list[int]]] = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        numbers = [n for m in find_markers(sentence) for n in m.numbers]
        plain = strip_markers(sentence)
        if not plain.strip(" .") and out:
            out[-1][1].extend(numbers)  # a marker standing after the sentence's full stop
        elif plain:
            out.append((plain, numbers))
    return out


def best_sentence(claim: str, hit: Hit, question: str = "") -> tuple[int, int, float]:
    """Document span of the passage sentence that best supports claim, and its support."""
    text = hit.chunk.text
    best = (0, len(text), 0.0)
    for start, end in sentence_spans(text):
        score = support(claim, text[start:end], question)
        if score > best[2]:
            best = (start, end, score)
    return hit.chunk.start + best[0], hit.chunk.start + best[1], best[2]


def resolve(text: str, hits: list[Hit], min_support: float,
            question: str = "") -> list[Citation]:
    """One Citation per distinct cited passage, with the best-supported cited sentence."""
    by_rank = {h.rank: h for h in hits}
    found: dict[int, Citation] = {}
    for claim, numbers in claims(text):
        for n in numbers:
            hit = by_rank.get(n)
            if hit is None:
                continue
            score = support(claim, hit.chunk.text, question)
            if n in found and found[n].support >= score:
                continue
            start, end, _ = best_sentence(claim, hit, question)
            offset = start - hit.chunk.start
            found[n] = Citation(
                n=n, chunk_id=hit.chunk.id, doc_id=hit.chunk.doc_id, source=hit.source,
                title=hit.title, start=start, end=end,
                snippet=hit.chunk.text[offset:offset + end - start],
                supported=score >= min_support, support=round(score, 3))
    return [found[n] for n in sorted(found)]


def _sentences(text: str) -> list[tuple[int, int]]:
    """Spans of text's sentences, markers standing after a full stop joined to the sentence
    before them."""
    groups: list[tuple[int, int]] = []
    for start, end in sentence_spans(text):
        if groups and not strip_markers(text[start:end]).strip(" ."):
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    return groups


def _marked(plain: str, numbers: list[int]) -> str:
    """A sentence without markers with numbers' markers placed before its final
    punctuation."""
    body, stop = (plain[:-1], plain[-1]) if plain[-1:] in ".!?" else (plain, "")
    marks = "".join(f"[{n}]" for n in numbers)
    return f"{body} {marks}{stop}" if marks else plain


def repair(text: str, hits: list[Hit], min_support: float, question: str = "",
           similarity: Similarity | None = None) -> str:
    """Re-point each sentence's markers at the passages that support it best.

    Passages are ranked by lexical support plus, when given, embedding similarity to the
    sentence. A cited passage is kept when it reaches min_support and ranks within `_TIE` of
    the best; otherwise the best passage is cited instead, if it reaches min_support. Markers
    are placed before the sentence's final punctuation.
    """
    by_rank = {h.rank: h for h in hits}
    pieces, cursor = [], 0
    for start, end in _sentences(text):
        sentence = text[start:end]
        cited = [n for m in find_markers(sentence) for n in m.numbers if n in by_rank]
        plain = strip_markers(sentence)
        scores = {h.rank: support(plain, h.chunk.text, question) for h in hits}
        near = similarity(plain) if similarity and plain else {}
        rank = {n: s + near.get(n, 0.0) for n, s in scores.items()}
        top = max(rank.values(), default=0.0)
        keep = [n for n in dict.fromkeys(cited)
                if scores[n] >= min_support and rank[n] >= top - _TIE]
        if not keep and scores:
            best = max(rank, key=lambda n: (rank[n], -n))
            keep = [best] if scores[best] >= min_support else list(dict.fromkeys(cited))
        pieces.append(text[cursor:start] + _marked(plain, keep))
        cursor = end
    return "".join(pieces) + text[cursor:]


def _folded(text: str) -> str:
    return " ".join(text.split()).lower()


def cite_phrase(text: str, hits: list[Hit], phrase: str, min_support: float,
                question: str = "") -> str:
    """text with each sentence that states phrase (the short answer) citing a passage that
    holds it: where none of the sentence's cited passages does, the holder that supports the
    sentence best is cited instead, if it reaches min_support."""
    needle = _folded(phrase)
    holders = [h for h in hits if needle and needle in _folded(h.chunk.text)]
    if not holders:
        return text
    pieces, cursor = [], 0
    for start, end in _sentences(text):
        sentence = text[start:end]
        plain = strip_markers(sentence)
        cited = {n for m in find_markers(sentence) for n in m.numbers}
        if needle not in _folded(plain) or any(h.rank in cited for h in holders):
            continue
        score, best = max((support(plain, h.chunk.text, question), -h.rank) for h in holders)
        if score < min_support:
            continue
        pieces.append(text[cursor:start] + _marked(plain, [-best]))
        cursor = end
    return "".join(pieces) + text[cursor:]
