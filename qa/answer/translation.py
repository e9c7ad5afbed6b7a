"""A question in another language than the documents': translated for retrieval, and the
answer (written and checked in the documents' language) streamed as its translation."""

from __future__ import annotations

import collections.abc
import time
from dataclasses import replace

from qa.answer.citations import faithful, plain_brackets
from qa.answer.languages import name, refusal_in
from qa.answer.prompting import translation_messages
from qa.answer.questions import clean_text, whole_reply
from qa.generate.base import Generator
from qa.types import Answer

QUESTION_TOKENS = 96  # a translated question is one line


def translated_question(generator: Generator, question: str, language: str,
                        names: list[str]) -> str:
    """The question in the documents' language and names (one short generation); the question
    as it is when the reply is no single question."""
    text = whole_reply(generator, translation_messages(question, name(language), names=names),
                       QUESTION_TOKENS).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line if line and len(line) <= 3 * len(question) + 100 else question


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def translated_answer(generator: Generator, answer: Answer, language: str,
                      max_new_tokens: int, started: float
                      ) -> collections.abc.Generator[str, None, Answer]:
    """The pieces of the answer's translation into the question's language as they come (the
    refusal in that language for a refusal), then the Answer as shown: written and checked in
    the documents' language, translated. A translation that loses a citation number or a
    number gives way to the checked text."""
    t0 = time.perf_counter()
    timings = dict(answer.timings)
    timings.pop("first_token_ms", None)  # the translation's first piece is the first
    if answer.refused:
        text = refusal_in(language)
        timings["first_token_ms"] = _ms(t0 - started)
        yield text
    else:
        pieces = generator.stream(translation_messages(answer.text, name(language), answer=True),
                                  2 * max_new_tokens)
        written = ""
        try:
            for piece in pieces:
                piece = clean_text(piece)
                if piece:
                    timings.setdefault("first_token_ms", _ms(time.perf_counter() - started))
                    written += piece
                    yield piece
        finally:
            pieces.close()
        text = plain_brackets(written).strip() if faithful(answer.text, written) else answer.text
    timings["translate_ms"] = _ms(time.perf_counter() - t0)
    timings["total_ms"] = _ms(time.perf_counter() - started)
    return replace(answer, text=text, language=language, timings=timings)
