"""QA: question (+ history) -> retrieval -> prompt -> streamed, cited, checked Answer."""

from __future__ import annotations

import collections.abc
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from qa.answer.attribution import attributed
from qa.answer.citations import (
    MarkerStream,
    cite_phrase,
    clean_markers,
    repair,
    resolve,
    strip_markers,
    support,
)
from qa.answer.decision import refusal_model
from qa.answer.followups import needs_context, usable_rewrite, with_earlier_turn
from qa.answer.guard import OutputGuard, protected_terms
from qa.answer.languages import language_of_documents, names_of_documents, other_language
from qa.answer.pages import with_pages
from qa.answer.prompting import (
    ANSWER_SYSTEM,
    REFUSAL,
    answer_messages,
    answer_prefix,
    asked_as,
    looks_like_refusal,
    passages_prefix,
    rewrite_messages,
)
from qa.answer.questions import check_question, clean_text, whole_reply
from qa.answer.short import MAX_SHORT_TOKENS, SHORT_WORDS, pick_short, short_messages
from qa.answer.translation import translated_answer, translated_question
from qa.config import Settings
from qa.generate.base import Generator
from qa.generate.registry import generator_for
from qa.index.embedding import Embedder
from qa.index.store import Index, load_index
from qa.progress import Reporter, print_reporter
from qa.retrieve.hybrid import Retriever
from qa.retrieve.windows import sentence_windows
from qa.types import Answer, Citation, Hit, Message, RefusalReason

EventKind = Literal["query", "hits", "token", "done"]
# What the refusal decision may read of an answer (qa.answer.decision; bench/fit_refusal.py).
SIGNALS = ("refusal_logprob", "reply_logprob", "top_similarity", "support", "grounded",
           "retried", "citations")


@dataclass(frozen=True)
class Event:
    """One step of a streamed answer: the standalone query, the hits, a token, or done (with
    the final Answer)."""

    kind: EventKind
    text: str = ""
    hits: list[Hit] = field(default_factory=list)
    answer: Answer | None = None


@dataclass
class Draft:
    """One question on its way to an Answer: what was asked, found and generated so far."""

    question: str
    query: str
    started: float
    timings: dict[str, float] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    relevant: list[Hit] = field(default_factory=list)
    text: str = ""
    refusal_logprob: float | None = None  # the model's own log-probability of refusing
    reply_logprob: float | None = None  # the mean log-probability of the reply's tokens
    retried: bool = False  # asked a second time, with more passages, after a refusal
    asked_as: str = ""  # the query in the question's own language, when it was translated


@dataclass
class Reply:
    """One generated answer: its prompt, raw and cleaned text, and how it ended."""

    messages: list[Message]
    raw: str
    text: str
    tripped: bool  # the output guard stopped it
    refusal_logprob: float | None
    reply_logprob: float | None
    held: str = ""  # the refusal, not streamed, when it was held back


def load_warm_generator(settings: Settings, name: str | None = None,
                        report: Reporter = print_reporter) -> Generator:
    """The named model (default: the settings') loaded once, with the fixed answer-prompt
    prefix already evaluated so the first question does not pay for it."""
    generator = generator_for(settings, name, report)
    generator.keep_prefix(answer_prefix(), persist=True)
    return generator


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class QA:
    """The question-answering pipeline over one index; the generator loads on first use."""

    def __init__(self, settings: Settings, index: Index, embedder: Embedder,
                 generator: Generator | None = None, report: Reporter = print_reporter,
                 system_prompt: str = ANSWER_SYSTEM) -> None:
        self.settings = settings
        self.system_prompt = system_prompt
        self.embedder = embedder
        # The index and its retriever are one immutable pair: swap_index replaces it in one
        # assignment, and an answer reads it once, so it never mixes two index versions.
        self.retriever = Retriever(index, embedder, settings)
        self._generator = generator
        self._report = report
        self._load_lock = threading.Lock()
        self._corpus: tuple[Index, list[Hit]] | None = None  # see whole_corpus()
        # The documents' language and names (see documents_language()).
        self._language: tuple[Index, str, list[str]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, index_dir: Path | None = None,
                      generator: Generator | None = None) -> QA:
        """Load the index (verified) and the embedder; the generator stays lazy."""
        embedder = Embedder.from_settings(settings)
        return cls(settings, load_index(index_dir or settings.index_dir, settings), embedder,
                   generator)

    @property
    def index(self) -> Index:
        """The index searched now."""
        return self.retriever.index

    def swap_index(self, index: Index) -> None:
        """Serve index from now on; searches already running finish on the old one."""
        self.retriever = Retriever(index, self.embedder, self.settings)

    def warm(self) -> Generator:
        """The generator, loaded, with this index's prompt prefix kept: what start-up does so
        that the first question costs no more than the next."""
        generator = self.generator
        self.whole_corpus(self.index, persist=True)
        return generator

    def whole_corpus(self, index: Index, persist: bool = False) -> list[Hit]:
        """Every chunk of an index that fits `whole_corpus_tokens`, numbered in document
        order, with the prompt prefix that holds them kept by the generator (persist: also
        for the next start); [] when the index is larger (the model then reads the
        retrieved passages only)."""
        budget = self.settings.whole_corpus_tokens
        kept = self._corpus
        if kept is not None and kept[0] is index:
            hits = kept[1]
        elif budget <= 0 or sum(len(c.text) for c in index.chunks) > 8 * budget:
            hits = []  # a cheap bound first: no tokenizer pass over a large index
        else:
            generator = self.generator
            if sum(generator.count_tokens(c.text) for c in index.chunks) > budget:
                hits = []
            else:
                docs = index.documents
                hits = [Hit(chunk=c, score=0.0, rank=n, source=docs[c.doc_id].source,
                            title=docs[c.doc_id].title) for n, c in enumerate(index.chunks, 1)]
        if hits:
            self.generator.keep_prefix(passages_prefix(hits, self.system_prompt), persist)
        self._corpus = (index, hits)
        return hits

    @property
    def model_name(self) -> str:
        return self._generator.name if self._generator else self.settings.model

    @property
    def generator(self) -> Generator:
        """The generator, loaded once (thread-safe)."""
        with self._load_lock:
            if self._generator is None:
                self._generator = load_warm_generator(self.settings, report=self._report)
            return self._generator

    def check_question(self, question: str | None) -> str:
        """The cleaned question, or QuestionError for empty or over-long input."""
        return check_question(question, self.settings.max_question_chars)

    def standalone(self, question: str, history: list[Message]) -> str:
        """The question rewritten to stand alone, using the conversation. A question that
        does not lean on it is kept as it is (no generation); a rewrite that is no usable
        question gives way to the question followed by the previous exchange."""
        if not history or not needs_context(question):
            return question
        turns = [{"role": m["role"], "content": clean_text(strip_markers(m["content"])[:600])}
                 for m in history if m.get("role") in ("user", "assistant") and m.get("content")]
        if not turns:
            return question
        text = whole_reply(self.generator, rewrite_messages(question, turns), 64)
        line = text.strip().splitlines()[0].strip() if text.strip() else ""
        return line if usable_rewrite(line, question, turns) else with_earlier_turn(question,
                                                                                    turns)

    def answer(self, question: str, history: list[Message] | None = None,
               top_k: int | None = None) -> Answer:
        """The complete Answer (consumes stream())."""
        for event in self.stream(question, history, top_k):
            if event.answer is not None:
                return event.answer
        raise RuntimeError("the answer stream ended without a result")

    def stream(self, question: str, history: list[Message] | None = None,
               top_k: int | None = None) -> collections.abc.Generator[Event, None, None]:
        """Events: the standalone query, the hits, answer tokens, then the final Answer."""
        started = time.perf_counter()
        question = self.check_question(question)
        draft = Draft(question=question, query=question, started=started)
        draft.query = self.standalone(question, history or [])
        retriever = self.retriever  # read once: a concurrent swap_index does not mix indexes
        documents, names = self.documents_language(retriever.index)
        asked = other_language(question, documents) if self.settings.translate else None
        if asked and other_language(draft.query, documents):
            draft.asked_as = draft.query
            draft.query = translated_question(self.generator, draft.query, documents, names)
        draft.timings["rewrite_ms"] = _ms(time.perf_counter() - started)
        yield Event("query", text=draft.query)
        events = self._answered(draft, retriever, top_k)
        yield from (self._in_language(events, asked, draft) if asked else events)

    def documents_language(self, index: Index) -> tuple[str, list[str]]:
        """The language of an index's documents and their most frequent names (found once per
        index)."""
        kept = self._language
        if kept is None or kept[0] is not index:
            texts = [c.text for c in index.chunks]
            kept = self._language = (index, language_of_documents(texts),
                                     names_of_documents(texts))
        return kept[1], kept[2]

    def _in_language(self, events: collections.abc.Iterator[Event], language: str,
                     draft: Draft) -> collections.abc.Generator[Event, None, None]:
        """The answer events, the answer's tokens those of its translation (qa.answer.
        translation)."""
        for event in events:
            if event.kind == "token":
                continue  # the documents' language: not shown
            if event.kind != "done" or event.answer is None:
                yield event
                continue
            translation = translated_answer(self.generator, event.answer, language,
                                            self.settings.max_new_tokens, draft.started)
            while True:
                try:
                    yield Event("token", text=next(translation))
                except StopIteration as finished:
                    yield Event("done", answer=finished.value)
                    break

    def _answered(self, draft: Draft, retriever: Retriever, top_k: int | None
                  ) -> collections.abc.Generator[Event, None, None]:
        """Retrieval, the streamed answer and its checks, for draft.query."""
        t0 = time.perf_counter()
        draft.hits = retriever.search(draft.query, top_k or self.settings.top_k)
        draft.timings["retrieve_ms"] = _ms(time.perf_counter() - t0)
        corpus = self.whole_corpus(retriever.index)
        if corpus:  # the hits keep the numbers the model sees their chunks under
            number = {h.chunk.id: h.rank for h in corpus}
            draft.hits = [replace(h, rank=number[h.chunk.id]) for h in draft.hits]
        yield Event("hits", hits=draft.hits)
        near = [h for h in draft.hits if h.dense_score >= self.settings.min_dense_score]
        draft.relevant = corpus if near and corpus else sentence_windows(
            near, draft.query, self.embedder, self.settings.window_sentences)
        if not draft.relevant:
            draft.timings["first_token_ms"] = _ms(time.perf_counter() - draft.started)
            yield Event("token", text=REFUSAL)
            yield Event("done", answer=self._refusal(draft, "no_passages"))
            return

        # With more context to offer, the model's refusal is held back (not streamed) while
        # the reply can still become it: a refused first try is then asked again, once.
        reply = yield from self._generate(draft, hold=self.settings.retry_refusals and not corpus)
        if reply.held:
            wider = self._wider(draft, retriever, top_k or self.settings.top_k)
            if wider:
                t0 = time.perf_counter()
                draft.hits = draft.relevant = wider
                draft.retried = True
                reply = yield from self._generate(draft, hold=False)
                draft.timings["retry_ms"] = _ms(time.perf_counter() - t0)
            else:
                yield Event("token", text=reply.held)
        draft.timings.setdefault("first_token_ms", _ms(time.perf_counter() - draft.started))
        if reply.tripped:  # a protected term: nothing of it was shown; refuse
            yield Event("done", answer=self._refusal(draft, "guard"))
            return
        draft.text = reply.text
        draft.refusal_logprob = reply.refusal_logprob
        draft.reply_logprob = reply.reply_logprob
        answer = self._check(draft, retriever.index)
        if not answer.refused and self.settings.short_answer:
            answer = self._with_short(answer, reply.messages, reply.raw, draft, retriever.index)
        yield Event("done", answer=answer)

    def _generate(self, draft: Draft, hold: bool) -> collections.abc.Generator[Event, None, Reply]:
        """Stream the model's answer from draft.relevant as token events; with `hold`, a reply
        that is exactly the refusal is not streamed but returned as `held`."""
        t0 = time.perf_counter()
        markers = MarkerStream(len(draft.relevant))
        guard = self._guard(draft)
        question = asked_as(draft.query, draft.asked_as) if draft.asked_as else draft.query
        messages = answer_messages(question, draft.relevant, self.system_prompt)
        generator = self.generator
        # Scoring the refusal costs a forward pass; skip it when the decision is off (0).
        scored = generator.scores_alternatives and self.settings.min_confidence > 0
        pieces = generator.stream(messages, self.settings.max_new_tokens,
                                  alternative=REFUSAL if scored else None)
        held = ""  # text not shown yet because it may still turn out to be the refusal
        try:
            for piece in pieces:
                delta = guard.feed(markers.feed(clean_text(piece)))
                if guard.tripped:
                    break
                if hold:
                    held += delta
                    if REFUSAL.startswith(held.lstrip()):
                        continue
                    delta, held, hold = held, "", False
                if delta:
                    draft.timings.setdefault("first_token_ms",
                                             _ms(time.perf_counter() - draft.started))
                    yield Event("token", text=delta)
        finally:
            pieces.close()
        held += guard.feed(markers.flush()) + guard.flush()
        draft.timings["generate_ms"] = round(
            draft.timings.get("generate_ms", 0.0) + _ms(time.perf_counter() - t0), 1)
        reply = Reply(messages=messages, raw=markers.raw, tripped=guard.tripped,
                      text=guard.clean(clean_markers(markers.raw, len(draft.relevant))).strip(),
                      refusal_logprob=pieces.alternative_logprob,
                      reply_logprob=pieces.reply_logprob)
        if hold and held.strip() == REFUSAL:
            reply.held = held
        elif held:
            yield Event("token", text=held)
        return reply

    def _wider(self, draft: Draft, retriever: Retriever, top_k: int) -> list[Hit]:
        """Whole passages, twice as many, for asking again; [] when that adds nothing."""
        floor = self.settings.min_dense_score
        wider = [h for h in retriever.search(draft.query, 2 * top_k) if h.dense_score >= floor]
        return [] if [h.chunk for h in wider] == [h.chunk for h in draft.relevant] else wider

    def _with_short(self, answer: Answer, messages: list[Message], reply: str,
                    draft: Draft, index: Index) -> Answer:
        """The answer with its short form, asked in the same conversation (whose cache the
        generator reuses: only the request's few tokens are evaluated), and the sentence that
        states it citing a passage that holds it."""
        t0 = time.perf_counter()
        if len(strip_markers(answer.text).split()) <= SHORT_WORDS:
            text = strip_markers(answer.text)  # short already: no generation
        else:
            text = whole_reply(self.generator, short_messages(messages, reply), MAX_SHORT_TOKENS)
            if self.generator.count_tokens(text) >= MAX_SHORT_TOKENS:
                text = ""  # cut off at the cap: no short answer rather than half of one
        guard = self._guard(draft)
        short = pick_short(guard.feed(text) + guard.flush(),
                           [h.chunk.text for h in draft.relevant], answer.text, draft.query)
        short = "" if guard.tripped else short
        text, citations = answer.text, answer.citations
        relevant = self._whole(draft)
        pointed = cite_phrase(text, relevant, short, self.settings.min_support, draft.query)
        if pointed != text:
            text, citations = pointed, with_pages(
                resolve(pointed, relevant, self.settings.min_support, draft.query),
                index.documents)
        timings = {**answer.timings, "short_ms": _ms(time.perf_counter() - t0),
                   "total_ms": _ms(time.perf_counter() - draft.started)}
        return replace(answer, short=short, text=text, citations=citations, timings=timings)

    @staticmethod
    def _whole(draft: Draft) -> list[Hit]:
        """The passages the model read, as whole chunks (a window may leave out what supports
        a true claim)."""
        whole = {h.chunk.id: h for h in draft.hits}
        return [whole.get(h.chunk.id, h) for h in draft.relevant]

    def _guard(self, draft: Draft) -> OutputGuard:
        """The output guard for this question's passages."""
        return OutputGuard(protected_terms(
            self.system_prompt, [h.chunk.text for h in draft.relevant], draft.query))

    def _check(self, draft: Draft, index: Index) -> Answer:
        """Decide refusal: the model's own words, citations present and supported, then one
        calibrated confidence over the answer's signals (qa.answer.decision)."""
        relevant = self._whole(draft)
        text, query = draft.text, draft.query
        if text and not looks_like_refusal(text):
            # Small models cite the wrong passage or none: re-point markers by support.
            text = repair(text, relevant, self.settings.min_support, query,
                          lambda claim: self._similarity(claim, relevant, index))
        citations = with_pages(resolve(text, relevant, self.settings.min_support, query),
                               index.documents)
        grounded = any(c.supported for c in citations) or support(
            strip_markers(text), " ".join(h.chunk.text for h in relevant), query
        ) >= self.settings.min_support
        grounded = grounded and attributed(query, citations, relevant)
        signals = self._signals(draft, citations, grounded)
        confidence = (refusal_model().confidence(signals) if self.settings.min_confidence > 0
                      else None)
        unsure = confidence is not None and confidence < self.settings.min_confidence
        reason: RefusalReason = (
            "model" if not text or looks_like_refusal(text) else "uncited" if not citations
            else "unsupported" if not grounded else "unsure" if unsure else "")
        if reason:
            return self._refusal(draft, reason, signals, confidence)
        draft.timings["total_ms"] = _ms(time.perf_counter() - draft.started)
        return Answer(question=draft.question, text=text, citations=citations, hits=draft.hits,
                      refused=False, query=query, model=self.model_name, timings=draft.timings,
                      refusal_logprob=draft.refusal_logprob, confidence=confidence,
                      signals=signals)

    @staticmethod
    def _signals(draft: Draft, citations: list[Citation], grounded: bool) -> dict[str, float]:
        """What the refusal decision reads, by name (a log-probability not measured is left
        out)."""
        signals = {
            "top_similarity": max((h.dense_score for h in draft.hits), default=0.0),
            "support": max((c.support for c in citations), default=0.0),
            "grounded": float(grounded), "retried": float(draft.retried),
            "citations": float(len(citations)),
        }
        for name, value in (("refusal_logprob", draft.refusal_logprob),
                            ("reply_logprob", draft.reply_logprob)):
            if value is not None:
                signals[name] = value
        return signals

    def _similarity(self, claim: str, hits: list[Hit], index: Index) -> dict[int, float]:
        """Cosine between the claim and each hit's stored passage vector, by rank."""
        vector = self.embedder.encode([claim])[0]
        rows = [index.row_of[h.chunk.id] for h in hits]
        return dict(zip([h.rank for h in hits], (index.vectors[rows] @ vector).tolist(),
                        strict=True))

    def _refusal(self, draft: Draft, reason: RefusalReason,
                 signals: dict[str, float] | None = None,
                 confidence: float | None = None) -> Answer:
        draft.timings["total_ms"] = _ms(time.perf_counter() - draft.started)
        return Answer(question=draft.question, text=REFUSAL, citations=[], hits=draft.hits,
                      refused=True, query=draft.query, model=self.model_name,
                      timings=draft.timings, refusal=reason,
                      refusal_logprob=draft.refusal_logprob, confidence=confidence,
                      withheld="" if reason == "model" else draft.text,
                      signals=signals or {})
