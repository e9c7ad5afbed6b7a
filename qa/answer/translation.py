"""A question in another language than the documents': translated for retrieval, and the
answer (written and checked in the documents' language) streamed as its translation."""

from __future__ import annotations

import collections.abc
import re
import time
from dataclasses import replace

from qa.answer.citations import faithful, find_markers, plain_brackets, strip_markers
from qa.answer.languages import name, refusal_in
from qa.answer.prompting import translation_messages
from qa.answer.questions import clean_text, whole_reply
from qa.generate.base import Generator
from qa.ingest.chunking import sentence_spans
from qa.types import Answer

QUESTION_TOKENS = 96  # a translated question is one line
_END = re.compile(r"[\s.!?;:。！？；：…]*$")  # a sentence's closing punctuation
_CJK_STOP = ("。", "！", "？")
_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")  # written without spaces


def translated_question(generator: Generator, question: str, language: str,
                        names: list[str]) -> str:
    """The question in the documents' language and names (one short generation); the question
    as it is when the reply is no single question."""
    text = whole_reply(generator, translation_messages(question, name(language), names=names),
                       QUESTION_TOKENS).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line if line and len(line) <= 3 * len(question) + 100 else question


def cited_sentences(text: str) -> list[tuple[str, str]]:
    """(sentence without its markers, its markers written '[1][2]') for each sentence of a
    cited answer; markers standing alone after a sentence's end count as that sentence's."""
    out: list[tuple[str, str]] = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        numbers = [n for m in find_markers(sentence) for n in m.numbers]
        markers = "".join(f"[{n}]" for n in dict.fromkeys(numbers))
        words = strip_markers(sentence)
        if not words.strip(".!?;: ") and out:
            out[-1] = (out[-1][0], out[-1][1] + markers)
        elif words:
            out.append((words, markers))
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _sentence_translation(generator: Generator, sentence: str, markers: str, language: str,
                          max_new_tokens: int) -> collections.abc.Generator[str, None, str]:
    """The pieces of one sentence's translation as they come, its markers put back before its
    closing punctuation (held back until the end); returns the whole."""
    pieces = generator.stream(translation_messages(sentence, name(language), answer=True),
                              max_new_tokens)
    written = shown = ""
    try:
        for piece in pieces:
            written += clean_text(piece)
            if "\n" in written.strip():  # one sentence in, one line out
                written = written.strip().split("\n")[0]
                break
            ready = _END.sub("", written, count=1)
            if len(ready) > len(shown):
                yield ready[len(shown):]
                shown = ready
    finally:
        pieces.close()
    written = written.strip()
    head = _END.sub("", written, count=1)
    if not head:
        return ""
    gap = "" if not markers or _CJK.match(head[-1]) else " "
    whole = head + gap + markers + written[len(head):].strip()
    yield whole[len(shown):]
    return whole


def translated_answer(generator: Generator, answer: Answer, language: str,
                      max_new_tokens: int, started: float
                      ) -> collections.abc.Generator[str, None, Answer]:
    """The pieces of the answer's translation into the question's language as they come (the
    refusal in that language for a refusal), then the Answer as shown: written and checked in
    the documents' language, translated sentence by sentence without its citation markers,
    which are put back at each sentence's end. A translation that loses a number or a
    sentence gives way to the checked text."""
    t0 = time.perf_counter()
    timings = dict(answer.timings)
    timings.pop("first_token_ms", None)  # the translation's first piece is the first
    if answer.refused:
        text = refusal_in(language)
        timings["first_token_ms"] = _ms(t0 - started)
        yield text
    else:
        written = ""
        for sentence, markers in cited_sentences(answer.text):
            gap = " " if written and not written.endswith(_CJK_STOP) else ""
            if gap:
                written += gap
                yield gap
            whole = ""
            pieces = _sentence_translation(generator, sentence, markers, language,
                                           2 * max_new_tokens)
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as done:
                    whole = done.value
                    break
                if piece:
                    timings.setdefault("first_token_ms", _ms(time.perf_counter() - started))
                    yield piece
            if not whole:
                written = ""
                break
            written += whole
        text = plain_brackets(written).strip() if faithful(answer.text, written) else answer.text
    timings["translate_ms"] = _ms(time.perf_counter() - t0)
    timings["total_ms"] = _ms(time.perf_counter() - started)
    return replace(answer, text=text, language=language, timings=timings)
