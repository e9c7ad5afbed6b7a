"""End-to-end answer evaluation on a question file (id, q, answers, kind[, all, history]).

A line's `history` holds the earlier turns of a conversation, as chat messages
(`{"role": "user" | "assistant", "content": "..."}`); its `q` is then a follow-up."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from qa.answer.pipeline import QA
from qa.errors import QuestionFileError
from qa.eval.jsonl import jsonl_rows
from qa.eval.metrics import answer_score, contains_answer, mean, percentile
from qa.progress import Reporter, silent_reporter

REFUSAL_KINDS = ("unanswerable", "injection")



def read_questions(path: Path) -> list[dict[str, Any]]:
    """Parse and validate a JSONL question file."""
    try:
        parsed = list(jsonl_rows(Path(path), QuestionFileError))
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionFileError(f"cannot read {path}: {exc}") from None
    rows = []
    for number, row in parsed:
        if not isinstance(row, dict) or not isinstance(row.get("q"), str) or not isinstance(
                row.get("answers"), list) or not all(isinstance(a, str) for a in row["answers"]):
            raise QuestionFileError(f"{path}:{number}: needs 'q' (text) and 'answers' (list of "
                                    "text)")
        if not _is_history(row.setdefault("history", [])):
            raise QuestionFileError(f"{path}:{number}: 'history' must be a list of "
                                    "{\"role\": \"user\" or \"assistant\", \"content\": text}")
        row.setdefault("id", str(number))
        row.setdefault("kind", "fact" if row["answers"] else "unanswerable")
        rows.append(row)
    if not rows:
        raise QuestionFileError(f"{path}: no questions")
    return rows


def _is_history(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and set(m) == {"role", "content"}
        and m["role"] in ("user", "assistant") and isinstance(m["content"], str) for m in value)


def expects_refusal(row: dict[str, Any]) -> bool:
    """Whether the right behaviour for this question is a refusal."""
    return not row["answers"] or row["kind"] in REFUSAL_KINDS


def evaluate(qa: QA, rows: list[dict[str, Any]],
             report: Reporter = silent_reporter) -> dict[str, Any]:
    """Answer every question and score answers, refusals, citations and latency."""
    qa.warm()  # loaded and warmed before timing, as the app does at start-up
    out_rows = []
    for i, row in enumerate(rows, 1):
        answer = qa.answer(row["q"], row["history"])
        passages = {h.chunk.id: h.chunk.text for h in answer.hits}
        if expects_refusal(row):
            correct = 1.0 if answer.refused else 0.0
            cited_ok = None
        else:
            correct = 0.0 if answer.refused else answer_score(
                answer.text, row["answers"], row["kind"], bool(row.get("all")))
            cited_ok = None if answer.refused or not answer.citations else any(
                contains_answer(passages.get(c.chunk_id, ""), gold)
                for c in answer.citations for gold in row["answers"])
        out_rows.append({
            "id": row["id"], "kind": row["kind"], "lang": row.get("lang", ""),
            "question": row["q"], "query": answer.query, "language": answer.language,
            "follow_up": bool(row["history"]), "answer": answer.text,
            "refused": answer.refused, "refusal": answer.refusal, "short": answer.short,
            "correct": round(correct, 4), "citation_ok": cited_ok,
            "citations": [asdict(c) for c in answer.citations],
            "latency": answer.timings.get("total_ms", 0.0),
            "first_token_ms": answer.timings.get("first_token_ms", 0.0),
            # The question's rewrite or translation, and the answer's translation.
            "rewrite_ms": answer.timings.get("rewrite_ms", 0.0),
            "translate_ms": answer.timings.get("translate_ms", 0.0),
        })
        report("Answering questions", i, len(rows))
    answerable = [r for r, q in zip(out_rows, rows, strict=True) if not expects_refusal(q)]
    follow_ups = [r for r in answerable if r["follow_up"]]
    refusable = [r for r, q in zip(out_rows, rows, strict=True) if expects_refusal(q)]
    cited = [r["citation_ok"] for r in answerable if r["citation_ok"] is not None]
    first = [r["first_token_ms"] for r in out_rows]
    total = [r["latency"] for r in out_rows]
    result = {
        "model": qa.model_name,
        "questions": len(rows),
        "answer_accuracy": round(mean(r["correct"] for r in answerable), 4),
        "refusal_accuracy": round(mean(r["correct"] for r in refusable), 4),
        "citation_accuracy": round(mean(1.0 if ok else 0.0 for ok in cited), 4),
        "follow_ups": len(follow_ups),
        "follow_up_answer_accuracy": round(mean(r["correct"] for r in follow_ups), 4)
        if follow_ups else None,
        "p50_first_token_ms": round(percentile(first, 50), 1),
        "p95_first_token_ms": round(percentile(first, 95), 1),
        "p50_total_ms": round(percentile(total, 50), 1),
        "p95_total_ms": round(percentile(total, 95), 1),
    }
    if any(r["lang"] for r in out_rows):
        result["by_language"] = by_language(out_rows, rows)
    return {**result, "rows": out_rows}


def by_language(out_rows: list[dict[str, Any]], rows: list[dict[str, Any]]
                ) -> dict[str, dict[str, Any]]:
    """Answer and refusal accuracy, whole-answer p50 and the p50 time spent translating (the
    question, then the answer), per question file `lang`."""
    out: dict[str, dict[str, Any]] = {}
    for lang in sorted({r["lang"] for r in out_rows}):
        mine = [(r, q) for r, q in zip(out_rows, rows, strict=True) if r["lang"] == lang]
        answerable = [r["correct"] for r, q in mine if not expects_refusal(q)]
        refusable = [r["correct"] for r, q in mine if expects_refusal(q)]
        out[lang or "-"] = {
            "questions": len(mine),
            "answer_accuracy": round(mean(answerable), 4) if answerable else None,
            "refusal_accuracy": round(mean(refusable), 4) if refusable else None,
            "p50_total_ms": round(percentile([r["latency"] for r, _ in mine], 50), 1),
            "p50_translation_ms": round(percentile(
                [r["rewrite_ms"] + r["translate_ms"] for r, _ in mine], 50), 1)}
    return out
