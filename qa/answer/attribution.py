"""Words put in the right mouth: an answer to "what did X say?" must cite a passage sentence
that gives someone's words (a quote or a verb of saying) and is attributed to X (X named in
it or in the sentence just before it)."""

from __future__ import annotations

import re

from qa.ingest.chunking import sentence_spans
from qa.types import Citation, Hit

_SPEECH_VERB = (r"(?:say|tell|state|stress|note|mention|speak|express|remark|quote|claim|argue|"
                r"call for|warn|announce)")
# "What did <speaker> say ...?", "Which threats did <speaker> mention?"; the verb in lower
# case ("What does the Islamic State lack?" asks for nobody's words).
_ASKED = re.compile(rf"\b(?i:did|does|do|has|have|had|will|would)\s+(.{{1,80}}?)\s+"
                    rf"{_SPEECH_VERB}\b")
# Words given in a passage: quotation marks, "according to", or a verb of saying in the past
# or present tense.
_QUOTES = "\"“”«»"
_WORDS_GIVEN = re.compile(
    rf"[{_QUOTES}]|\baccording to\b|\b(?:said|says|told|tells|stated|states|stressed|noted|"
    r"mentioned|spoke|speaks|expressed|remarked|claimed|argued|called for|warned|announced|"
    r"added|emphasi[sz]ed|wrote|writes|declared|described|explained|insisted|suggested|"
    r"proposed|urged|asked|replied|answered|promised|admitted|acknowledged|recalled|"
    r"praised|critici[sz]ed|believed|thought)\b", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][\w'-]*[a-z][\w'-]*\b")  # a capitalised word, not an acronym


def asked_speaker(question: str) -> list[str]:
    """The capitalised words naming whose words a question asks for ("What did Jane Roe say
    about it?": Jane, Roe); [] when it asks for nobody's words."""
    match = _ASKED.search(question)
    return _NAME.findall(match.group(1)) if match else []


def attributed(question: str, citations: list[Citation], hits: list[Hit]) -> bool:
    """Whether some cited sentence gives someone's words and it, or the sentence before it in
    its passage, names the speaker the question asks about (True when it asks about nobody's
    words)."""
    names = {n.lower() for n in asked_speaker(question)}
    if not names:
        return True
    by_id = {h.chunk.id: h.chunk for h in hits}
    for citation in citations:
        chunk = by_id.get(citation.chunk_id)
        if chunk is None:
            continue
        spans = sentence_spans(chunk.text)
        start = citation.start - chunk.start
        at = max((i for i, (a, _) in enumerate(spans) if a <= start), default=0)
        nearby = chunk.text[spans[max(0, at - 1)][0]:citation.end - chunk.start].lower()
        cited = chunk.text[start:citation.end - chunk.start]
        # A sentence inside a quotation opened earlier in the passage gives words too.
        quoted = sum(chunk.text[:start].count(mark) for mark in _QUOTES) % 2 == 1
        if (quoted or _WORDS_GIVEN.search(cited)) and any(
                re.search(rf"\b{re.escape(n)}\b", nearby) for n in names):
            return True
    return False
