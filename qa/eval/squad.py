"""SQuAD (v1.1 / v2.0) end-to-end evaluation: paragraphs as documents, sampled questions."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import SquadFormatError
from qa.eval.beir import collapse
from qa.eval.metrics import (
    contains_answer,
    exact_match,
    f1_score,
    max_over_golds,
    mean,
    normalize_answer,
    percentile,
)
from qa.ingest.corpus import document_id
from qa.progress import Reporter, silent_reporter
from qa.types import Document


@dataclass(frozen=True)
class SquadQuestion:
    """One question with its gold answers and the id of its paragraph's Document."""

    id: str
    question: str
    answers: list[str]
    is_impossible: bool
    doc_id: str


@dataclass(frozen=True)
class SquadData:
    """Paragraph documents, questions, and whether the file has v2.0 unanswerable questions."""

    documents: list[Document]
    questions: list[SquadQuestion]
    v2: bool


def load_squad(path: Path) -> SquadData:
    """Parse an official SQuAD JSON file; each paragraph becomes a Document."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = raw["data"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SquadFormatError(f"cannot read {path}: {exc}") from None
    except (KeyError, TypeError):
        raise SquadFormatError(f"{path}: no 'data' list (not a SQuAD file?)") from None
    documents: dict[str, Document] = {}
    questions: list[SquadQuestion] = []
    v2 = False
    try:
        for a, article in enumerate(articles):
            title = str(article.get("title") or f"article {a}").replace("_", " ")
            for p, paragraph in enumerate(article["paragraphs"]):
                context = paragraph["context"]
                doc_id = document_id(context)
                documents.setdefault(doc_id, Document(id=doc_id, source=f"{title} #{p + 1}",
                                                      title=title, text=context))
                for qa in paragraph["qas"]:
                    v2 = v2 or "is_impossible" in qa
                    answers = [str(x["text"]) for x in qa.get("answers", [])]
                    questions.append(SquadQuestion(
                        id=str(qa["id"]), question=str(qa["question"]), answers=answers,
                        is_impossible=bool(qa.get("is_impossible", False)), doc_id=doc_id))
    except (KeyError, TypeError, AttributeError) as exc:
        raise SquadFormatError(f"{path}: unexpected layout ({exc!r})") from None
    if not questions:
        raise SquadFormatError(f"{path}: no questions")
    return SquadData(documents=list(documents.values()), questions=questions, v2=v2)


def sample_questions(questions: Sequence[SquadQuestion], limit: int | None,
                     seed: int) -> list[SquadQuestion]:
    """A seeded random sample of `limit` questions (all, shuffled, when limit is None)."""
    n = len(questions) if limit is None else min(limit, len(questions))
    return random.Random(seed).sample(list(questions), n)  # nosec B311 - sampling, not security


def gold_answers(q: SquadQuestion) -> list[str]:
    """Golds as in the official v2.0 script: non-empty answers, else the empty string."""
    golds = [a for a in q.answers if normalize_answer(a)]
    return golds or [""]


def score_prediction(prediction: str, q: SquadQuestion) -> tuple[float, float]:
    """(EM, F1) of a prediction against the question's golds ('' for a refusal)."""
    golds = gold_answers(q)
    return (max_over_golds(exact_match, prediction, golds),
            max_over_golds(f1_score, prediction, golds))


def evaluate_squad(qa: Any, data: SquadData, questions: Sequence[SquadQuestion],
                   report: Reporter = silent_reporter) -> dict[str, Any]:
    """Answer each question with qa (a `QA`) and score answers, retrieval and refusals."""
    from qa.answer.citations import strip_markers

    qa.warm()  # loaded and warmed before timing, as the app does at start-up
    rows = []
    for i, q in enumerate(questions, 1):
        ranked = collapse(qa.retriever.search(q.question, 20))
        answer = qa.answer(q.question)
        prediction = "" if answer.refused else " ".join(strip_markers(answer.text).split())
        short = "" if answer.refused else answer.short or prediction
        em, f1 = score_prediction(short, q)
        first = answer.citations[0].doc_id if answer.citations else None
        # The passages the model was given: the hits that reached the similarity floor.
        given = {h.chunk.doc_id for h in answer.hits
                 if h.dense_score >= qa.settings.min_dense_score}
        rows.append({
            "id": q.id, "question": q.question, "answers": q.answers[:3],
            "is_impossible": q.is_impossible, "prediction": prediction, "short": short,
            "refused": answer.refused, "refusal": answer.refusal, "withheld": answer.withheld,
            "refusal_logprob": answer.refusal_logprob,
            "top_similarity": max((h.dense_score for h in answer.hits), default=0.0),
            "support": max((c.support for c in answer.citations), default=0.0),
            "signals": answer.signals,
            "em": em, "f1": round(f1, 4),
            "f1_sentence": round(score_prediction(prediction, q)[1], 4),
            "contains": any(contains_answer(prediction, g) for g in q.answers),
            "gold_rank": ranked.index(q.doc_id) + 1 if q.doc_id in ranked[:20] else None,
            "gold_in_context": q.doc_id in given,
            "citation_ok": None if answer.refused else first == q.doc_id,
            "cited": [c.doc_id for c in answer.citations],
            "latency_ms": answer.timings.get("total_ms", 0.0),
            "first_token_ms": answer.timings.get("first_token_ms", 0.0),
        })
        report("Answering questions", i, len(questions))
    return summarize(rows, qa.model_name, len(data.documents), data.v2)


def _misses(answerable: list[dict[str, Any]]) -> dict[str, Any]:
    """Answerable questions whose answer lacks the gold span, split by cause: retrieval (the
    gold paragraph was not among the passages the model was given) or reading (it was)."""
    misses = [r for r in answerable if not r["contains"]]
    by_retrieval = sum(not r["gold_in_context"] for r in misses)
    return {"misses": len(misses),
            "misses_from_retrieval": round(by_retrieval / len(misses), 4) if misses else 0.0,
            "misses_from_reading": round(1 - by_retrieval / len(misses), 4) if misses else 0.0}


def summarize(rows: list[dict[str, Any]], model: str, paragraphs: int,
              v2: bool) -> dict[str, Any]:
    """Aggregate figures of scored rows (see evaluate_squad)."""
    answerable = [r for r in rows if not r["is_impossible"]]
    answered = [r for r in answerable if not r["refused"]]
    latency = [r["latency_ms"] for r in rows] or [0.0]
    first = [r["first_token_ms"] for r in rows] or [0.0]
    out: dict[str, Any] = {
        "model": model, "paragraphs": paragraphs, "questions": len(rows),
        "em": round(100 * mean(r["em"] for r in rows), 2),
        "f1": round(100 * mean(r["f1"] for r in rows), 2),
        "f1_sentence": round(100 * mean(r["f1_sentence"] for r in rows), 2),
        "answer_contains_gold": round(mean(float(r["contains"]) for r in answerable), 4),
        "retrieval_recall@1": round(mean(
            float(r["gold_rank"] == 1) for r in answerable), 4),
        "retrieval_recall@5": round(mean(
            float(r["gold_rank"] is not None and r["gold_rank"] <= 5) for r in answerable), 4),
        "citation_accuracy": round(mean(float(bool(r["citation_ok"])) for r in answered), 4),
        **_misses(answerable),
        # Why answerable questions were refused (see qa.types.RefusalReason).
        "answerable_refused_by": dict(sorted(Counter(
            r["refusal"] for r in answerable if r["refused"]).items())),
        "refusal_rate": round(mean(float(r["refused"]) for r in rows), 4),
        "p50_latency_ms": round(percentile(latency, 50), 1),
        "p95_latency_ms": round(percentile(latency, 95), 1),
        "p50_first_token_ms": round(percentile(first, 50), 1),
    }
    if v2:
        refused = [r for r in rows if r["refused"]]
        impossible = [r for r in rows if r["is_impossible"]]
        both = [r for r in refused if r["is_impossible"]]
        out.update({
            "impossible": len(impossible),
            "has_answer_f1": round(100 * mean(r["f1"] for r in answerable), 2),
            "refusal_precision": round(len(both) / len(refused), 4) if refused else 0.0,
            "refusal_recall": round(len(both) / len(impossible), 4) if impossible else 0.0,
        })
    out["rows"] = rows
    return out
