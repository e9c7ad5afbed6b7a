"""The `qa` command line, run as a user would, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa.config import Settings
from tests.conftest import ROOT


def qa(*args: str, stdin: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa", *args], input=stdin, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("args", "status", "message"), [
    (("ask", ""), 2, "qa: error: the question is empty"),
    (("ask", "Anything?", "--index", "/nonexistent/index"), 1,
     "qa: error: no index at /nonexistent/index (run: qa index build)"),
    (("ask", "x", "--top-k", "many"), 2, "qa: error: argument --top-k: invalid int value"),
    (("ask", "x", "--model", "gpt-9"), 2, "qa: error: model must be one of qwen2.5-coder-1.5b"),
    (("ask", "x", "--bogus"), 2, "qa: error: unrecognized arguments: --bogus"),
    (("eval", "qa", "--questions", "/nonexistent.jsonl"), 2, "qa: error: cannot read"),
    (("index", "build", "/nonexistent/folder", "--out", "/tmp/qa-never"), 1,
     "qa: error: no documents to index"),
])
def test_errors_are_one_clear_line_and_non_zero(args: tuple[str, ...], status: int,
                                                 message: str) -> None:
    result = qa(*args)
    assert result.returncode == status
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr


def test_bad_setting_in_environment_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_TOP_K", "0")
    result = qa("ask", "x")
    assert result.returncode == 2
    assert result.stderr.strip() == "qa: error: top_k must be positive, got 0"


def test_index_build_reports_counts_and_skipped_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("# Note\n\nThe meeting in Oslo lasted two days.\n")
    (docs / "blob.bin").write_bytes(b"\x00\x01")
    result = qa("index", "build", str(docs), "--out", str(tmp_path / "idx"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"indexed 1 documents, 1 chunks (1 embedded, 0 reused) -> "
                                     f"{tmp_path / 'idx'}")
    assert f"qa: skipped {docs / 'blob.bin'}: unsupported file type '.bin'" in result.stderr
    status = qa("index", "status", str(docs), "--index", str(tmp_path / "idx"))
    assert status.returncode == 0 and status.stdout.strip().endswith("up to date")


def test_committed_index_status_is_up_to_date() -> None:
    result = qa("index", "status")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == f"{ROOT / 'index'}: up to date"


@pytest.mark.model
def test_ask_json_prints_the_answer_with_spans() -> None:
    result = qa("ask", "--json", "Which countries were granted full SCO membership?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert "India and Pakistan" in answer["text"] and answer["refused"] is False
    citation = answer["citations"][0]
    text = (ROOT / "corpus" / citation["source"]).read_text(encoding="utf-8")
    assert text[citation["start"]:citation["end"]] == citation["snippet"]
    assert set(citation) >= {"n", "source", "start", "end", "snippet", "supported"}
    assert {"retrieve_ms", "first_token_ms", "total_ms"} <= set(answer["timings"])
    assert len(answer["hits"]) == Settings().top_k


@pytest.mark.model
def test_interactive_session_keeps_the_conversation() -> None:
    result = qa("ask", stdin="Which countries were granted full SCO membership?\n"
                             "And when did that happen?\n")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n> ")[1:3]
    assert "India and Pakistan" in first and "Sources:" in first
    # The follow-up was rewritten with the conversation before retrieval.
    assert second.startswith("(searching for: ")
    rewritten = second.splitlines()[0]
    assert "India" in rewritten or "Pakistan" in rewritten


@pytest.mark.model
def test_eval_qa_scores_a_question_file(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "q": "Who is the SCO Secretary-General?",
                    "answers": ["Rashid Alimov", "Alimov"], "kind": "fact"}) + "\n"
        + json.dumps({"id": "b", "q": "What is the boiling point of water?", "answers": [],
                      "kind": "unanswerable"}) + "\n")
    result = qa("eval", "qa", "--questions", str(questions), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["answer_accuracy"] == 1.0 and report["refusal_accuracy"] == 1.0
    assert report["citation_accuracy"] == 1.0
    assert report["model"] == "qwen2.5-coder-1.5b"
    assert [r["id"] for r in report["rows"]] == ["a", "b"]
    assert set(report) >= {"p50_first_token_ms", "p95_first_token_ms", "p50_total_ms",
                           "p95_total_ms", "rows"}


def test_eval_qa_rejects_a_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "fine", "answers": []}\n{"q": 3}\n')
    result = qa("eval", "qa", "--questions", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"qa: error: {bad}:2: needs 'q' (text) and 'answers' "
                                     "(list of text)")


def test_eval_retrieval_on_a_tiny_beir_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = [("d1", "Volcanoes", "Lava flows from erupting volcanoes in Iceland."),
            ("d2", "Bees", "Honey bees pollinate apple orchards in spring."),
            ("d3", "Tides", "The moon's gravity causes ocean tides.")]
    (beir / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    (beir / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "What pollinates apple trees?"}) + "\n"
        + json.dumps({"_id": "q2", "text": "Why are there ocean tides?"}) + "\n"
        + json.dumps({"_id": "q3", "text": "A query without judgements"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n")
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    result = qa("eval", "retrieval", "--beir", str(beir), "--mode", "all", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report) == ["dense", "bm25", "hybrid"]
    for figures in report.values():
        assert figures == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
