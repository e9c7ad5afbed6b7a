"""Hand-checked tests for qa.eval.metrics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.eval.metrics import (
    answer_score,
    contains_answer,
    exact_match,
    f1_score,
    max_over_golds,
    mean,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
)

QRELS = {"d1": 2, "d2": 1}


# --------------------------------------------------------------------------- nDCG


def test_ndcg_hand_computed() -> None:
    """DCG = 0/log2(2) + 2/log2(3) + 1/log2(4); IDCG = 2/log2(2) + 1/log2(3)."""
    expected = (2 / math.log2(3) + 1 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert ndcg_at_k(["d3", "d1", "d2"], QRELS) == pytest.approx(expected)
    assert expected == pytest.approx(0.669672, abs=1e-6)  # 1.761860 / 2.630930


def test_ndcg_k_cuts_list() -> None:
    """k=1: only d3 (gain 0) -> 0; k=2: DCG = 2/log2(3), IDCG = 2/1 + 1/log2(3)."""
    assert ndcg_at_k(["d3", "d1", "d2"], QRELS, k=1) == 0.0
    expected = (2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["d3", "d1", "d2"], QRELS, k=2) == pytest.approx(expected)


def test_ndcg_linear_gain_not_exponential() -> None:
    """Ranked [d2, d1]: DCG = 1 + 2/log2(3) (linear gain), IDCG = 2 + 1/log2(3)."""
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["d2", "d1"], QRELS) == pytest.approx(expected)
    exp_gain = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))  # the 2**rel - 1 variant
    assert ndcg_at_k(["d2", "d1"], QRELS) != pytest.approx(exp_gain)


def test_ndcg_perfect_and_edges() -> None:
    """Perfect order -> 1; empty qrels -> 0; nothing relevant retrieved -> 0."""
    assert ndcg_at_k(["d1", "d2", "d9"], QRELS) == pytest.approx(1.0)
    assert ndcg_at_k(["d1", "d2"], {}) == 0.0
    assert ndcg_at_k(["d1", "d2"], {"d1": 0}) == 0.0
    assert ndcg_at_k(["x", "y"], QRELS) == 0.0
    assert ndcg_at_k([], QRELS) == 0.0


def test_ndcg_duplicates_count_once() -> None:
    """[d1, d1, d2] is deduplicated to [d1, d2]: the repeat adds no gain -> 1.0."""
    assert ndcg_at_k(["d1", "d1", "d2"], QRELS) == pytest.approx(1.0)
    assert ndcg_at_k(["d1", "d1", "d2"], QRELS, k=2) == pytest.approx(1.0)
    # [d3, d3, d1] -> [d3, d1]: same as the k=2 case of the main example.
    expected = (2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["d3", "d3", "d1"], QRELS) == pytest.approx(expected)


# --------------------------------------------------------------------------- recall / MRR

RECALL_QRELS = {"a": 1, "b": 3, "c": 1, "z": 0}


def test_recall_hand_computed() -> None:
    """3 relevant docs (z has grade 0); top-2 [a, x] -> 1/3; top-4 [a, x, b, z] -> 2/3."""
    ranked = ["a", "x", "b", "z", "c"]
    assert recall_at_k(ranked, RECALL_QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, RECALL_QRELS, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, RECALL_QRELS, 5) == 1.0
    assert recall_at_k(ranked, RECALL_QRELS, 100) == 1.0


def test_recall_edges() -> None:
    """Empty qrels, no hits, duplicates and k=0."""
    assert recall_at_k(["a"], {}, 10) == 0.0
    assert recall_at_k(["x", "y"], RECALL_QRELS, 10) == 0.0
    assert recall_at_k(["a", "a", "a"], RECALL_QRELS, 3) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "a", "b"], RECALL_QRELS, 2) == pytest.approx(2 / 3)
    assert recall_at_k(["a"], RECALL_QRELS, 0) == 0.0


def test_mrr_hand_computed() -> None:
    """First relevant at rank 3 -> 1/3; cut at k=2 -> 0; rank 1 -> 1."""
    assert mrr_at_k(["x", "y", "c", "a"], RECALL_QRELS) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "c"], RECALL_QRELS, k=2) == 0.0
    assert mrr_at_k(["b", "a"], RECALL_QRELS) == 1.0


def test_mrr_edges() -> None:
    """Grade-0 docs are not relevant; duplicates are removed before ranking."""
    assert mrr_at_k(["z", "a"], RECALL_QRELS) == 0.5
    assert mrr_at_k(["x", "x", "a"], RECALL_QRELS, k=2) == 0.5
    assert mrr_at_k(["a"], {}) == 0.0
    assert mrr_at_k([], RECALL_QRELS) == 0.0


# --------------------------------------------------------------------------- mean / percentile


def test_mean() -> None:
    """(1 + 2 + 6) / 3 = 3; empty -> 0."""
    assert mean([1, 2, 6]) == 3.0
    assert mean([]) == 0.0
    assert mean(x for x in [0.5, 1.0]) == 0.75


def test_percentile_linear_interpolation() -> None:
    """Sorted [1, 2, 3, 4]: q=50 -> pos 1.5 -> 2.5; q=90 -> pos 2.7 -> 3.7."""
    vals = [4, 1, 3, 2]
    assert percentile(vals, 50) == pytest.approx(2.5)
    assert percentile(vals, 90) == pytest.approx(3.7)
    assert percentile(vals, 0) == 1
    assert percentile(vals, 100) == 4
    assert percentile([5.0], 37) == 5.0
    # [10, 20, 30]: q=25 -> pos 0.5 -> 15.
    assert percentile([30, 10, 20], 25) == pytest.approx(15.0)


def test_percentile_errors() -> None:
    """Empty input and out-of-range q raise ValueError."""
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# --------------------------------------------------------------------------- SQuAD


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Cat", "cat"),
        ("  a   dog\tand\nAN apple ", "dog and apple"),
        ("Theater anthem", "theater anthem"),  # articles only as whole words
        ("Hello, World!", "hello world"),
        ("U.S.A.", "usa"),
        ("brown-fox", "brownfox"),  # punctuation is deleted, not replaced by space
        ("the", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    """Case, punctuation, articles and whitespace as in the SQuAD v1.1 script."""
    assert normalize_answer(raw) == expected


def test_exact_match() -> None:
    """EM compares normalised strings."""
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("cats", "cat") == 0.0
    assert exact_match("an  apple", "Apple.") == 1.0


def test_f1_partial() -> None:
    """pred "cat sat" vs gold "cat sat on mat": P = 2/2, R = 2/4, F1 = 2*1*0.5/1.5 = 2/3."""
    assert f1_score("the cat sat", "cat sat on mat") == pytest.approx(2 / 3)


def test_f1_bag_of_tokens() -> None:
    """pred [cat, and, cat] vs gold [cat]: common = 1, P = 1/3, R = 1, F1 = 0.5."""
    assert f1_score("a cat and a cat", "the cat") == pytest.approx(0.5)
    # pred [cat, cat] vs gold [cat, cat, dog]: common = 2, P = 1, R = 2/3, F1 = 0.8.
    assert f1_score("cat cat", "cat cat dog") == pytest.approx(0.8)


def test_f1_edges() -> None:
    """No overlap -> 0; both empty after normalisation -> 1; one empty -> 0."""
    assert f1_score("dog", "cat") == 0.0
    assert f1_score("The", "a.") == 1.0
    assert f1_score("the", "cat") == 0.0
    assert f1_score("cat", "") == 0.0
    assert f1_score("Cat sat", "cat, sat") == 1.0


def test_max_over_golds() -> None:
    """Best score over golds; empty golds -> 0."""
    assert max_over_golds(exact_match, "Paris", ["London", "paris."]) == 1.0
    assert max_over_golds(f1_score, "the cat sat", ["dog", "cat sat on mat"]) == pytest.approx(
        2 / 3
    )
    assert max_over_golds(f1_score, "anything", []) == 0.0


# --------------------------------------------------------------------------- project scoring


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("India and Pakistan were granted independence", "india and pakistan", True),
        ("He moved to the New Yorker offices", "new york", False),
        ("He moved to New York.", "new york", True),
        ("The answer is 42.", "42", True),
        ("The answer is 420.", "42", False),
        ("Made in the USA", "U.S.A.", True),
        ("anything at all", "the", False),  # empty normalised gold never matches
        ("", "", False),
        ("", "cat", False),
    ],
)
def test_contains_answer(prediction: str, gold: str, expected: bool) -> None:
    """Normalised substring match on word boundaries."""
    assert contains_answer(prediction, gold) is expected


def test_answer_score_list_fraction() -> None:
    """Two of three list items present -> 2/3; all -> 1; none -> 0."""
    golds = ["red", "green", "blue"]
    assert answer_score("Red and blue.", golds, "list") == pytest.approx(2 / 3)
    assert answer_score("red, green and blue", golds, "list") == 1.0
    assert answer_score("purple", golds, "list") == 0.0


def test_golds_in_unspaced_scripts_and_other_spellings() -> None:
    assert contains_answer("上海合作组织峰会在青岛举行[4]。", "青岛")
    assert not contains_answer("峰会在北京举行。", "青岛")
    assert contains_answer("活动于2018年11月27日举行[1]。", "2018")
    assert not contains_answer("活动于20189年举行。", "2018")
    assert contains_answer("L'Inde et le Pakistan", "Inde")
    assert contains_answer("Mr Alimov’s remarks", "Alimov")
    assert not contains_answer("Qingdaoxx", "Qingdao")  # spaced scripts keep word boundaries
    golds = ["Bangkok", "Vienna|Vienne|Wien"]
    assert answer_score("à New York, Bangkok et Vienne", golds, "list") == 1.0
    assert answer_score("à New York et Bangkok", golds, "list") == 0.5
    assert answer_score("in Wien", ["Vienna|Wien"], "fact") == 1.0


def test_answer_score_require_all() -> None:
    """require_all is all-or-nothing, whatever the kind."""
    golds = ["red", "green", "blue"]
    assert answer_score("Red and blue.", golds, "list", require_all=True) == 0.0
    assert answer_score("blue, green, red", golds, "list", require_all=True) == 1.0
    assert answer_score("1947 in Delhi", ["1947", "Delhi"], "fact", require_all=True) == 1.0
    assert answer_score("1947", ["1947", "Delhi"], "fact", require_all=True) == 0.0


def test_answer_score_any() -> None:
    """Non-list kinds: any acceptable answer is enough."""
    golds = ["1947", "fourteenth of August 1947"]
    assert answer_score("It happened in 1947.", golds, "fact") == 1.0
    assert answer_score("It happened in 1948.", golds, "fact") == 0.0


def test_answer_score_empty_raises() -> None:
    """Unanswerable questions are scored elsewhere."""
    with pytest.raises(ValueError):
        answer_score("anything", [], "fact")


# --------------------------------------------------------------------------- property

DOC_IDS = st.sampled_from([f"d{i}" for i in range(8)])


@given(
    qrels=st.dictionaries(DOC_IDS, st.integers(min_value=0, max_value=3), max_size=8),
    ranked=st.lists(DOC_IDS, max_size=12),
    k=st.integers(min_value=0, max_value=15),
)
def test_metrics_bounded_and_perfect(qrels: dict[str, int], ranked: list[str], k: int) -> None:
    """All metrics lie in [0, 1]; the ideal ranking scores 1.0."""
    for value in (
        ndcg_at_k(ranked, qrels, k),
        recall_at_k(ranked, qrels, k),
        mrr_at_k(ranked, qrels, k),
    ):
        assert 0.0 <= value <= 1.0 + 1e-12

    relevant = [d for d, g in qrels.items() if g > 0]
    if not relevant or k == 0:
        return
    ideal = sorted(relevant, key=lambda d: -qrels[d])
    assert ndcg_at_k(ideal, qrels, k) == pytest.approx(1.0)
    assert mrr_at_k(ideal, qrels, k) == 1.0
    assert recall_at_k(ideal, qrels, max(k, len(ideal))) == 1.0
    assert recall_at_k(ideal, qrels, k) == pytest.approx(min(k, len(ideal)) / len(ideal))
