"""QA_BACKEND=openai against llama.cpp's OpenAI-compatible server (llama-cpp-python[server])
with the packaged 0.5B GGUF file, on a loopback port: answers through QA.answer, `qa ask`
and /api/ask, log-probabilities, a server stopped mid-answer. A server that stalls mid-reply
is in tests/test_openai_http.py: paused with SIGSTOP and resumed, llama-cpp-python's server
sometimes left the next request unanswered for over 30 s, which would tie this module's
tests together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import GeneratorUnavailable
from qa.generate.models import GENERATORS, assemble_gguf
from qa.generate.openai_backend import OpenAIGenerator
from qa.generate.registry import describe
from qa.serve.api import create_api
from tests.conftest import DEV_SET, ROOT
from tests.test_api import running
from tests.test_app import free_port

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
pytestmark = pytest.mark.model
KEY = "sk-test-secret-4711"  # must never show in output, errors or health


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    url: str  # the OpenAI base URL, .../v1
    model: str  # the id it lists


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` with the 0.5B GGUF file on a free loopback port."""
    gguf = assemble_gguf(GENERATORS["qwen2.5-coder-0.5b"], Settings().cache_dir)
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
             "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the llama.cpp server did not start"
            try:
                models = httpx.get(f"{url}/models", timeout=5).json()
                break
            except httpx.TransportError:
                time.sleep(0.5)
        yield LlamaServer(process, url, models["data"][0]["id"])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def dev_question(qid: str) -> dict[str, Any]:
    if not DEV_SET.is_file():
        pytest.skip(f"{DEV_SET} is absent")
    rows = [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return next(row for row in rows if row["id"] == qid)


def openai_settings(server: LlamaServer, **overrides: Any) -> Settings:
    return Settings.from_env(backend="openai", openai_base_url=server.url, **overrides)


def assert_cited(answer: dict[str, Any], gold: list[str], qa: QA) -> None:
    """Not refused, names a gold answer, every citation an exact span of its document."""
    assert answer["refused"] is False, answer
    assert any(g.lower() in answer["text"].lower() for g in gold), answer["text"]
    assert answer["citations"], answer["text"]
    for c in answer["citations"]:
        assert qa.index.documents[c["doc_id"]].text[c["start"]:c["end"]] == c["snippet"]
    assert any(c["supported"] for c in answer["citations"])


def test_qa_answer_over_the_server_is_cited_and_reads_its_logprobs(
        llama_server: LlamaServer, corpus_index, embedder, monkeypatch) -> None:
    monkeypatch.setenv("QA_OPENAI_API_KEY", KEY)
    row = dev_question("d04")  # Which countries were granted full membership of the SCO?
    qa = QA(openai_settings(llama_server), corpus_index, embedder)
    answer = qa.answer(row["q"])
    assert_cited(answer.to_dict(), row["answers"], qa)
    assert answer.model == llama_server.model
    generator = qa.generator
    assert isinstance(generator, OpenAIGenerator) and generator.logprobs is True
    assert answer.signals["reply_logprob"] < 0  # the server's token log-probabilities
    assert "refusal_logprob" not in answer.signals  # this backend cannot score it
    assert describe(qa.settings, generator) == {
        "backend": "openai", "model": llama_server.model, "where": llama_server.url,
        "refusal_signals": ["reply_logprob", "top_similarity", "support", "grounded",
                            "retried", "citations"],
        "logprobs": "returned by the server"}
    assert generator.count_tokens("Hello world") == 2  # the server's own tokenizer


def test_qa_ask_json_names_the_server_and_never_the_key(llama_server: LlamaServer) -> None:
    row = dev_question("d05")  # Where did the SCO summit take place?
    env = {**os.environ, "QA_BACKEND": "openai", "QA_OPENAI_BASE_URL": llama_server.url,
           "QA_OPENAI_API_KEY": KEY}
    result = subprocess.run([sys.executable, "-m", "qa", "ask", "--json", row["q"]], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["refused"] is False and "Qingdao" in answer["text"]
    assert answer["citations"] and answer["model"] == llama_server.model
    assert answer["generator"]["backend"] == "openai"
    assert answer["generator"]["where"] == llama_server.url
    assert answer["generator"]["model"] == llama_server.model
    assert KEY not in result.stdout + result.stderr


def test_api_ask_and_health_over_the_server(llama_server: LlamaServer, corpus_index,
                                            embedder) -> None:
    row = dev_question("d01")  # Where was the UN-SCO high-level event held?
    qa = QA(openai_settings(llama_server), corpus_index, embedder)
    with running(create_api(qa, mount_ui=False)) as url:
        reply = httpx.post(f"{url}/api/ask", json={"question": row["q"]}, timeout=600)
        assert reply.status_code == 200, reply.text
        assert_cited(reply.json(), row["answers"], qa)
        health = httpx.get(f"{url}/api/health", timeout=30).json()
    assert health["generator"]["backend"] == "openai"
    assert health["generator"]["where"] == llama_server.url


def test_server_stopped_mid_answer_gives_a_clean_error(llama_server: LlamaServer, corpus_index,
                                                       embedder, monkeypatch) -> None:
    """Runs last: it kills the module's server."""
    monkeypatch.setenv("QA_OPENAI_API_KEY", KEY)
    row = dev_question("d07")  # Which UN offices does the SCO interact with? (a list)
    qa = QA(openai_settings(llama_server, openai_timeout=10), corpus_index, embedder)
    outcome: list[Exception | str] = []

    def ask() -> None:
        try:
            for event in qa.stream(row["q"]):
                if event.kind == "token" and llama_server.process.poll() is None:
                    llama_server.process.kill()  # mid-answer
                    llama_server.process.wait(30)
            outcome.append("finished without an error")
        except Exception as exc:  # noqa: BLE001 (any error is kept for the assertions)
            outcome.append(exc)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(120)  # bounded: connect and read timeouts of 10 s, three tries
    assert not thread.is_alive(), "the answer hangs after the server stopped"
    [error] = outcome
    assert isinstance(error, GeneratorUnavailable), error
    message = str(error)
    assert message.startswith(f"the generator at {llama_server.url} ")
    assert ("stopped answering: the server closed the connection" in message
            or "stopped answering: the connection broke" in message
            or "is unreachable: connection refused (after 3 tries)" in message), message
    assert KEY not in message and "\n" not in message
    with running(create_api(qa, mount_ui=False)) as url:
        reply = httpx.post(f"{url}/api/ask", json={"question": row["q"]}, timeout=120)
    assert reply.status_code == 503
    assert reply.json() == {"error": f"the generator at {llama_server.url} is unreachable: "
                                     "connection refused (after 3 tries); check that it runs "
                                     "and QA_OPENAI_BASE_URL"}
