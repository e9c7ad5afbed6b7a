"""BEIR and SQuAD loaders, chunk-to-document collapse and scoring on tiny hand-made data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from qa.errors import BeirFormatError, SquadFormatError
from qa.eval.beir import beir_documents, beir_text, collapse, load_beir, score_run
from qa.eval.commands import add_eval_commands
from qa.eval.squad import SquadQuestion, load_squad, sample_questions, score_prediction, summarize
from qa.ingest.corpus import document_id
from qa.types import Chunk, Hit

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact"


def _write_beir(folder: Path) -> Path:
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr."},
        {"_id": "d2", "title": "", "text": "Dogs bark."},
        {"_id": "d3", "title": "Cats", "text": "Cats purr."},  # same text as d1
    ]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    queries = [{"_id": "q1", "text": "purring?"}, {"_id": "q2", "text": "barking?"},
               {"_id": "q3", "text": "no judgements"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries) + "\n\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\t2\nq2\td2\t1\n")
    return folder


def _hit(doc_id: str, rank: int) -> Hit:
    chunk = Chunk(id=f"{doc_id}-{rank}", doc_id=doc_id, text="x", start=0, end=1)
    return Hit(chunk=chunk, score=1.0 / rank, rank=rank)


def test_load_beir_reads_corpus_queries_and_graded_qrels(tmp_path: Path) -> None:
    data = load_beir(_write_beir(tmp_path), "test")
    assert data.corpus == [("d1", "Cats", "Cats purr."), ("d2", "", "Dogs bark."),
                           ("d3", "Cats", "Cats purr.")]
    assert data.queries == {"q1": "purring?", "q2": "barking?", "q3": "no judgements"}
    assert data.qrels == {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 1}}


def test_load_beir_names_missing_split_and_bad_lines(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path)
    with pytest.raises(BeirFormatError, match=r"train\.tsv is missing"):
        load_beir(folder, "train")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\n{oops\n')
    with pytest.raises(BeirFormatError, match=r"queries\.jsonl:2: not JSON"):
        load_beir(folder, "test")


def test_beir_documents_join_title_and_map_identical_texts() -> None:
    docs, id_map = beir_documents([("d1", "Cats", "Cats purr."), ("d2", "", "Dogs bark."),
                                   ("d3", "Cats", "Cats purr.")])
    assert [d.text for d in docs] == ["Cats\n\nCats purr.", "Dogs bark."]
    assert beir_text("", "Dogs bark.") == "Dogs bark."
    assert docs[0].id == document_id("Cats\n\nCats purr.")
    assert id_map == {docs[0].id: ["d1", "d3"], docs[1].id: ["d2"]}


def test_collapse_keeps_each_document_at_its_best_chunk() -> None:
    hits = [_hit("b", 2), _hit("a", 1), _hit("a", 3), _hit("c", 4), _hit("b", 5)]
    assert collapse(hits) == ["a", "b", "c"]
    assert collapse(hits, {"a": ["A1", "A2"], "b": ["B"]}) == ["A1", "A2", "B", "c"]


def test_score_run_skips_queries_without_qrels() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}}
    run = {"q1": ["d1", "x"], "q2": ["x", "d3"], "q3": ["d9"]}
    scores = score_run(run, qrels)
    # q1: perfect. q2: d3 at rank 2 of 2 relevant -> nDCG (1/log2 3) / (1 + 1/log2 3).
    ndcg_q2 = 0.63093 / (1 + 0.63093)
    assert scores["ndcg@10"] == pytest.approx((1 + ndcg_q2) / 2, abs=1e-4)
    assert scores["recall@10"] == pytest.approx(0.75)
    assert scores["recall@100"] == pytest.approx(0.75)
    assert scores["mrr@10"] == pytest.approx(0.75)


def _write_squad(path: Path, v2: bool) -> Path:
    qas = [{"id": "a", "question": "Who purrs?", "answers": [{"text": "Cats",
                                                              "answer_start": 0}]}]
    if v2:
        qas[0]["is_impossible"] = False
        qas.append({"id": "b", "question": "Who meows?", "answers": [], "is_impossible": True})
    data = {"version": "x", "data": [
        {"title": "Pet_animals", "paragraphs": [
            {"context": "Cats purr.", "qas": qas},
            {"context": "Dogs bark.", "qas": [{"id": "c", "question": "Who barks?",
                                                "answers": [{"text": "Dogs", "answer_start": 0},
                                                            {"text": "dogs"}]}]}]}]}
    path.write_text(json.dumps(data))
    return path


def test_load_squad_makes_titled_paragraph_documents(tmp_path: Path) -> None:
    data = load_squad(_write_squad(tmp_path / "v1.json", v2=False))
    assert not data.v2
    assert [(d.title, d.text, d.id) for d in data.documents] == [
        ("Pet animals", "Cats purr.", document_id("Cats purr.")),
        ("Pet animals", "Dogs bark.", document_id("Dogs bark."))]
    assert data.questions[1] == SquadQuestion(id="c", question="Who barks?",
                                              answers=["Dogs", "dogs"], is_impossible=False,
                                              doc_id=document_id("Dogs bark."))
    v2 = load_squad(_write_squad(tmp_path / "v2.json", v2=True))
    assert v2.v2 and [q.is_impossible for q in v2.questions] == [False, True, False]


def test_load_squad_rejects_other_json(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"rows": []}')
    with pytest.raises(SquadFormatError, match="no 'data' list"):
        load_squad(tmp_path / "x.json")


def test_sample_is_seeded_and_bounded() -> None:
    qs = [SquadQuestion(str(i), "q", ["a"], False, "d") for i in range(50)]
    assert sample_questions(qs, 10, 7) == sample_questions(qs, 10, 7)
    assert sample_questions(qs, 10, 7) != sample_questions(qs, 10, 8)
    assert len(sample_questions(qs, 500, 0)) == 50


def test_refusal_scores_as_empty_prediction() -> None:
    answerable = SquadQuestion("a", "q", ["the Cats", "cats!"], False, "d")
    impossible = SquadQuestion("b", "q", [], True, "d")
    assert score_prediction("Cats", answerable) == (1.0, 1.0)
    assert score_prediction("", answerable) == (0.0, 0.0)
    assert score_prediction("", impossible) == (1.0, 1.0)
    assert score_prediction("Cats", impossible) == (0.0, 0.0)
    assert score_prediction("black cats", answerable)[1] == pytest.approx(2 / 3)


def test_summarize_counts_refusal_precision_and_recall() -> None:
    def row(impossible: bool, refused: bool, rank: int | None, cited: bool | None) -> dict:
        return {"is_impossible": impossible, "refused": refused, "em": 0.0, "f1": 0.0,
                "f1_sentence": 0.0, "refusal": "model" if refused else "", "contains": False,
                "gold_rank": rank, "gold_in_context": rank == 1,
                "citation_ok": cited, "latency_ms": 100.0, "first_token_ms": 50.0}

    rows = [row(True, True, 1, None), row(True, False, 2, False), row(False, True, 1, None),
            row(False, False, 6, True), row(False, False, None, False)]
    out = summarize(rows, "m", 3, v2=True)
    assert out["refusal_rate"] == 0.4
    assert out["refusal_precision"] == 0.5 and out["refusal_recall"] == 0.5
    assert out["retrieval_recall@1"] == round(1 / 3, 4)
    assert out["retrieval_recall@5"] == round(1 / 3, 4)
    assert out["citation_accuracy"] == 0.5
    assert out["answerable_refused_by"] == {"model": 1}  # the impossible one is not counted


def test_summarize_splits_the_misses_into_retrieval_and_reading() -> None:
    def row(contains: bool, in_context: bool) -> dict:
        return {"is_impossible": False, "refused": False, "em": 0.0, "f1": 0.0,
                "f1_sentence": 0.0, "refusal": "", "contains": contains,
                "gold_rank": 1 if in_context else None,
                "gold_in_context": in_context, "citation_ok": True, "latency_ms": 1.0,
                "first_token_ms": 1.0}

    rows = [row(True, True), row(False, True), row(False, False), row(False, False),
            row(True, False)]  # a right answer without its paragraph is no miss
    out = summarize(rows, "m", 3, v2=False)
    assert (out["misses"], out["misses_from_retrieval"], out["misses_from_reading"]) == (
        3, round(2 / 3, 4), round(1 / 3, 4))
    assert summarize([row(True, True)], "m", 1, v2=False)["misses"] == 0


def test_eval_commands_parse_the_documented_options() -> None:
    parser = argparse.ArgumentParser()
    add_eval_commands(parser.add_subparsers(dest="eval_command"))
    args = parser.parse_args(["retrieval", "--beir", "x", "--mode", "bm25", "--json",
                              "--fusion", "weighted"])
    assert (args.split, args.mode, args.json, args.fusion) == ("test", "bm25", True, "weighted")
    args = parser.parse_args(["squad", "--file", "f.json", "--limit", "5", "--seed", "3",
                              "--model", "qwen2.5-coder-0.5b"])
    assert (args.limit, args.seed, args.model, args.json) == (5, 3, "qwen2.5-coder-0.5b", False)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="../shared/data/scifact is absent")
def test_scifact_counts() -> None:
    data = load_beir(SCIFACT, "test")
    docs, id_map = beir_documents(data.corpus)
    assert len(data.corpus) == 5183 and len(docs) == 5183
    assert sum(len(v) for v in id_map.values()) == 5183
    assert len(data.qrels) == 300
    assert sum(len(v) for v in data.qrels.values()) == 339
    assert all(q in data.queries for q in data.qrels)
