"""Retrieval, SQuAD-style and answer-containment metrics (pure Python)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "answer_score",
    "contains_answer",
    "exact_match",
    "f1_score",
    "max_over_golds",
    "mean",
    "mrr_at_k",
    "ndcg_at_k",
    "normalize_answer",
    "percentile",
    "recall_at_k",
]


# --------------------------------------------------------------------------- retrieval


def _dedupe(ranked: Sequence[str]) -> list[str]:
    """Return `ranked` with later duplicates dropped (first position kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
    return out


def _top_k(ranked: Sequence[str], k: int) -> list[str]:
    """Return the first `k` distinct doc ids of `ranked`."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return _dedupe(ranked)[:k]


def _relevant(qrels: Mapping[str, int]) -> dict[str, int]:
    """Return only the qrels entries with a positive grade."""
    return {doc_id: grade for doc_id, grade in qrels.items() if grade > 0}


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gain and 1/log2(rank+1) discount (BEIR / pytrec_eval)."""
    rel = _relevant(qrels)
    if not rel:
        return 0.0
    top = _top_k(ranked, k)
    dcg = sum(rel.get(d, 0) / math.log2(i + 1) for i, d in enumerate(top, start=1))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Fraction of all relevant docs (grade > 0) found in the top k; 0.0 if none exist."""
    rel = _relevant(qrels)
    if not rel:
        return 0.0
    hits = sum(1 for d in _top_k(ranked, k) if d in rel)
    return hits / len(rel)


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant doc within the top k, else 0.0."""
    rel = _relevant(qrels)
    for i, d in enumerate(_top_k(ranked, k), start=1):
        if d in rel:
            return 1.0 / i
    return 0.0


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for empty input."""
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def percentile(values: Iterable[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation, like numpy's default."""
    vals = sorted(values)
    if not vals:
        raise ValueError("percentile of empty input")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    pos = (len(vals) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    frac = pos - lo
    return vals[lo] + (vals[hi] - vals[lo]) * frac


# --------------------------------------------------------------------------- SQuAD v1.1

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


_APOSTROPHE = re.compile(r"['\u2019]")
# A word character of a script written with spaces between words (not kana or CJK ideographs).
_SPACED_WORD = r"[^\W\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]"


def normalize_answer(s: str) -> str:
    """Lower-case, strip punctuation and articles, collapse whitespace (SQuAD v1.1)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level bag-of-words F1 between normalised prediction and gold."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_golds(fn: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """Best `fn(prediction, gold)` over all golds; 0.0 when there are none."""
    return max((fn(prediction, g) for g in golds), default=0.0)


# --------------------------------------------------------------------------- project answers


def contains_answer(prediction: str, gold: str) -> bool:
    """True if normalised gold occurs in normalised prediction on word boundaries; a script
    written without spaces (Chinese, Japanese) is its own boundary ('2018年', '在青岛举行'),
    and so is an apostrophe ("l'Inde", "Alimov's")."""
    norm_gold = normalize_answer(_APOSTROPHE.sub(" ", gold))
    if not norm_gold:
        return False
    found = re.search(rf"(?<!{_SPACED_WORD}){re.escape(norm_gold)}(?!{_SPACED_WORD})",
                      normalize_answer(_APOSTROPHE.sub(" ", prediction)))
    return found is not None


def answer_score(
    prediction: str, answers: Sequence[str], kind: str, require_all: bool = False
) -> float:
    """Score a prediction: all-or-nothing if require_all, list fraction, else any-match; a gold
    may name its other spellings after '|' ('Vienna|Vienne|Wien'), any of which counts."""
    if not answers:
        raise ValueError("answer_score needs at least one gold answer")
    found = [any(contains_answer(prediction, form) for form in a.split("|")) for a in answers]
    if require_all:
        return float(all(found))
    if kind == "list":
        return sum(found) / len(found)
    return float(any(found))
