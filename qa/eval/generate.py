"""A question file made from an index's own documents (`qa eval generate`): the model writes a
question and its answer phrase for sampled sentences, and questions the documents never answer.

A pair is kept only when its answer phrase occurs verbatim in its sentence; an unanswerable
question only when retrieval finds no passage at the similarity floor or the question names a
word that no document contains. The rows are in the format `qa eval qa --questions` reads."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from qa.answer.examples import usable_question
from qa.answer.questions import whole_reply
from qa.config import Settings
from qa.generate.base import Generator
from qa.index.embedding import Embedder
from qa.index.lexical import tokenize
from qa.index.store import Index
from qa.ingest.chunking import sentence_spans
from qa.progress import Reporter, silent_reporter
from qa.retrieve.hybrid import Retriever
from qa.types import Message

PAIR_SYSTEM = (
    "You write quiz questions from one sentence. Pick one short fact that the sentence states "
    "(a name, number, date, place or thing; at most six words) and write a question whose "
    "answer is exactly that fact. The question names its subject and does not contain the "
    "answer. Reply in exactly two lines:\nQuestion: <the question>\n"
    "Answer: <the fact, copied word for word from the sentence>"
)
UNANSWERABLE_SYSTEM = (
    "Rewrite the question so that it asks the same thing about a different, real person, "
    "organisation or place, one that the question does not name. Reply with the new question "
    "only."
)
QUESTION_FOR_SYSTEM = (
    "You write quiz questions from one sentence. Write one question that the sentence answers "
    "with exactly the given answer. The question must make sense to a reader who never saw "
    "the sentence: it names who or what it is about (never 'this' or 'the sentence') and does "
    "not contain the answer. Reply with the question only."
)
ANSWER_SYSTEM = (
    "Answer the question from the sentence with the shortest phrase that answers it, copied "
    "word for word from the sentence. Reply with the phrase only."
)
_EXAMPLE = "The bridge over the Tagus, opened in 1966, is 2,277 metres long."
_PAIR_SHOT: list[Message] = [
    {"role": "user", "content": f"Sentence: {_EXAMPLE}"},
    {"role": "assistant", "content": "Question: When was the bridge over the Tagus opened?\n"
                                     "Answer: 1966"},
]
_ANSWER_SHOT: list[Message] = [
    {"role": "user", "content": f"Sentence: {_EXAMPLE}\nQuestion: How long is the bridge "
                                "over the Tagus?"},
    {"role": "assistant", "content": "2,277 metres"},
]
_QUOTE = "\"Exports grew by 4 % last year,\" the trade minister said in Lisbon."
_QUESTION_FOR_SHOT: list[Message] = [
    {"role": "user", "content": f"Sentence: {_EXAMPLE}\nAnswer: 2,277 metres"},
    {"role": "assistant", "content": "How long is the bridge over the Tagus?"},
    {"role": "user", "content": f"Sentence: {_QUOTE}\nAnswer: the trade minister"},
    {"role": "assistant", "content": "Who said that exports grew by 4 % last year?"},
]
_UNANSWERABLE_SHOT: list[Message] = [
    {"role": "user", "content": "Question: When was the bridge over the Tagus opened?"},
    {"role": "assistant", "content": "When was the Chain Bridge in Budapest opened?"},
]
_LABELLED = re.compile(r"\**\b(question|answer)\**\s*:\s*", re.IGNORECASE)
# A name in a question: capitalised words in a row (not the question's first word).
_NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][\w-]+(?:\s+(?:of\s+|the\s+)?[A-Z][\w-]+)*")
_LABEL = re.compile(r"^\**question\**\s*:\s*", re.IGNORECASE)
_MENTIONS_SENTENCE = re.compile(r"\bsentences?\b", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_OPENS = "\"'\u201c\u2018("  # a capital after these starts a quote, not a name
MAX_ANSWER_WORDS = 12
MIN_SENTENCE_WORDS, MAX_SENTENCE_WORDS = 6, 60
ROUNDS = 6  # questions asked of one sentence at most, each for a fact not asked before
# Names, numbers and dates of a sentence: what a later question about it is asked to be about.
_FACT = re.compile(r"\d[\d,.]*(?:\s+[A-Z][a-z]+)?(?:\s+\d{4})?|"
                   r"[A-Z][\w-]*(?:\s+(?:of\s+|the\s+|and\s+)?[A-Z][\w-]*)*")


@dataclass(frozen=True)
class Sentence:
    """A sentence of a document, where the questions about it come from."""

    text: str
    source: str
    page: int | None


@dataclass
class Generated:
    """The rows written and why the others were dropped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def answerable(self) -> int:
        return sum(1 for r in self.rows if r["answers"])


def heading(text: str) -> bool:
    """Whether a line reads as a title (no closing punctuation, half its words or more
    capitalised) rather than a sentence that states something."""
    words = text.split()
    capitalised = sum(1 for w in words if w[:1].isupper())
    return not text.rstrip("\"'\u201d\u2019)").endswith((".", "!", "?")) and (
        2 * capitalised >= len(words))


def sentences(index: Index) -> list[Sentence]:
    """The index's document sentences of 6 to 60 words, headings left out, in document
    order, each once."""
    found: dict[str, Sentence] = {}
    for doc in sorted(index.documents.values(), key=lambda d: d.source):
        for start, end in sentence_spans(doc.text):
            text = doc.text[start:end]
            if MIN_SENTENCE_WORDS <= len(text.split()) <= MAX_SENTENCE_WORDS and not heading(
                    text):
                found.setdefault(text, Sentence(text, doc.source, doc.page_at(start)))
    return list(found.values())


def facts(sentence: str) -> list[str]:
    """The names, numbers and dates of a sentence, in order, each once (its first word only
    when it is more than a capital letter's start, and so for a quote's)."""
    found = [m.group().strip() for m in _FACT.finditer(sentence)
             if " " in m.group().strip()
             or (m.start() > 0 and sentence[m.start() - 1] not in _OPENS)]
    return list(dict.fromkeys(f for f in found if len(f) > 1))


def pair_messages(sentence: str) -> list[Message]:
    """Chat messages asking for a question and its answer phrase about sentence."""
    return [{"role": "system", "content": PAIR_SYSTEM}, *_PAIR_SHOT,
            {"role": "user", "content": f"Sentence: {sentence}"}]


def question_for_messages(sentence: str, answer: str) -> list[Message]:
    """Chat messages asking for a question that sentence answers with answer."""
    return [{"role": "system", "content": QUESTION_FOR_SYSTEM}, *_QUESTION_FOR_SHOT,
            {"role": "user", "content": f"Sentence: {sentence}\nAnswer: {answer}"}]


def answer_messages(sentence: str, question: str) -> list[Message]:
    """Chat messages asking for the phrase of sentence that answers question."""
    return [{"role": "system", "content": ANSWER_SYSTEM}, *_ANSWER_SHOT,
            {"role": "user", "content": f"Sentence: {sentence}\nQuestion: {question}"}]


def unanswerable_messages(question: str) -> list[Message]:
    """Chat messages asking to turn a question the documents answer into the same question
    about someone or something else."""
    return [{"role": "system", "content": UNANSWERABLE_SYSTEM}, *_UNANSWERABLE_SHOT,
            {"role": "user", "content": f"Question: {question}"}]


def locate(phrase: str, text: str) -> str:
    """phrase as text writes it: the first run of text's words that are phrase's words, case,
    punctuation and spacing aside ('' when text has no such run)."""
    want = [w.casefold() for w in _WORD.findall(phrase)]
    words = list(_WORD.finditer(text))
    have = [m.group().casefold() for m in words]
    for i in range(len(have) - len(want) + 1) if want else ():
        if have[i:i + len(want)] == want:
            return text[words[i].start():words[i + len(want) - 1].end()]
    return ""


def parse_question(reply: str) -> tuple[str, str] | str:
    """(question, answer as the model wrote it, '' when it wrote none) from the model's reply;
    or why it is dropped."""
    parts = _LABELLED.split(reply)  # text, label, text, label, text ...
    lines: dict[str, str] = {}
    for key, value in zip(parts[1::2], parts[2::2], strict=True):
        lines.setdefault(key.lower(), (value.strip().splitlines() or [""])[0].strip())
    question = usable_question(lines.get("question", ""))
    if not question or _MENTIONS_SENTENCE.search(question):
        return "no usable question"
    return question, lines.get("answer", "")


def check_answer(question: str, answer: str, sentence: str) -> tuple[str, str] | str:
    """(question, answer in the sentence's own characters); or why the pair is dropped."""
    if not _WORD.search(answer) or len(answer.split()) > MAX_ANSWER_WORDS:
        return "no short answer"
    found = locate(answer, sentence)
    if not found:
        return "answer not in its sentence"
    if locate(found, question):
        return "answer given away in the question"
    return question, found


def parse_pair(reply: str, sentence: str) -> tuple[str, str] | str:
    """(question, answer) from the model's reply, the answer as it stands in the sentence;
    or why the pair is dropped."""
    parsed = parse_question(reply)
    return parsed if isinstance(parsed, str) else check_answer(*parsed, sentence)


def _answered_from(generator: Generator, sentence: str, question: str) -> str:
    """The phrase of sentence the model answers question with (first line of its reply)."""
    reply = whole_reply(generator, answer_messages(sentence, question), 24)
    return (reply.strip().splitlines() or [""])[0]


def _pair(generator: Generator, sentence: str) -> tuple[str, str] | str:
    """The model's question about sentence and its answer phrase, or why none is kept; a
    reply without an answer has its question answered from the sentence in a second request."""
    parsed = parse_question(whole_reply(generator, pair_messages(sentence), 64))
    if isinstance(parsed, str):
        return parsed
    question, answer = parsed
    if not _WORD.search(answer):
        answer = _answered_from(generator, sentence, question)
    return check_answer(question, answer, sentence)


def question_for_fact(generator: Generator, sentence: str, fact: str) -> tuple[str, str] | str:
    """A question that sentence answers with fact, or why none is kept: the model writes it
    for the answer, then answers it from the sentence, and the two answers must overlap."""
    reply = whole_reply(generator, question_for_messages(sentence, fact), 48)
    question = usable_question(_LABEL.sub("", reply.strip(), count=1))
    if not question or _MENTIONS_SENTENCE.search(question):
        return "no usable question"
    checked = check_answer(question, fact, sentence)
    if isinstance(checked, str):
        return checked
    answer = _answered_from(generator, sentence, question)
    if not _WORD.search(answer) or not (locate(answer, fact) or locate(fact, answer)):
        return "answered otherwise from its sentence"
    return checked


def generate_questions(index: Index, generator: Generator, embedder: Embedder,
                       settings: Settings, n: int = 50, unanswerable: float = 0.2,
                       seed: int = 0, report: Reporter = silent_reporter) -> Generated:
    """Up to n questions about index's documents, a share `unanswerable` of them about
    things the documents never mention; sentences are sampled with `seed`."""
    pool = sentences(index)
    random.Random(seed).shuffle(pool)  # nosec B311 - sampling, not security
    wanted_unanswerable = round(n * unanswerable)
    wanted = n - wanted_unanswerable
    out = Generated()
    seen: set[str] = set()
    asked: dict[str, list[str]] = {s.text: [] for s in pool}
    for round_ in range(ROUNDS):
        for sentence in pool:
            if out.answerable >= wanted:
                break
            # First the model's own pick of a fact; then a question written for a name or
            # number not asked about.
            before = [a.lower() for a in asked[sentence.text]]
            left = [f for f in facts(sentence.text)
                    if not any(f.lower() in a or a in f.lower() for a in before)]
            if round_ and not left:
                continue
            about = left[0] if round_ else ""
            if about:
                asked[sentence.text].append(about)  # asked once, answered or not
            parsed = question_for_fact(generator, sentence.text, about) if about else _pair(
                generator, sentence.text)
            if isinstance(parsed, str):
                out.dropped[parsed] += 1
                continue
            question, answer = parsed
            if question.lower() in seen or answer.lower() in before:
                out.dropped["asked before"] += 1
                continue
            seen.add(question.lower())
            asked[sentence.text].append(answer)
            report("Writing questions", len(out.rows) + 1, n)
            row: dict[str, Any] = {
                "id": f"g{out.answerable + 1:03d}", "q": question, "answers": [answer],
                "kind": "fact", "source": sentence.source, "sentence": sentence.text}
            if sentence.page is not None:
                row["page"] = sentence.page
            out.rows.append(row)
    vocabulary = {word for words in tokenize([c.text for c in index.chunks]) for word in words}
    retriever = Retriever(index, embedder, settings)
    made = 0
    for source in [r["q"] for r in out.rows]:
        if made >= wanted_unanswerable:
            break
        reply = whole_reply(generator, unanswerable_messages(source), 40)
        question = usable_question(_LABEL.sub("", reply.strip(), count=1))
        if not question or question.lower() in seen:
            out.dropped["no usable question" if not question else "asked before"] += 1
            continue
        why = _why_unanswerable(question, retriever, vocabulary, settings.min_dense_score)
        if not why:
            out.dropped["unanswerable question the documents may answer"] += 1
            continue
        seen.add(question.lower())
        made += 1
        out.rows.append({"id": f"u{made:03d}", "q": question, "answers": [],
                         "kind": "unanswerable", "why": why})
        report("Writing questions", len(out.rows), n)
    return out


def absent_names(question: str, vocabulary: set[str]) -> list[str]:
    """The names in question (capitalised words in a row) that no document may mean: none of
    their words is in the documents' vocabulary, nor their initials ('United Nations', 'UN')."""
    names = _NAME.findall(question)
    missing = []
    for name, words in zip(names, tokenize(names), strict=True):
        initials = "".join(w[0] for w in name.split() if w[:1].isupper()).lower()
        if words and not set(words) & vocabulary and not (
                len(initials) > 1 and initials in vocabulary):
            missing.append(name)
    return list(dict.fromkeys(missing))


def _why_unanswerable(question: str, retriever: Retriever, vocabulary: set[str],
                      floor: float) -> str:
    """Why no document answers question ('' when one may): no passage at the similarity
    floor, or a name that no document may mean (absent_names)."""
    hits = retriever.search(question, 1)
    if not hits or hits[0].dense_score < floor:
        return "no passage reaches the similarity floor"
    missing = absent_names(question, vocabulary)
    return f"no document names {', '.join(missing)}" if missing else ""
