"""The HTTP API served by a real uvicorn server on a loopback port, and its limits."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from gradio_client import Client

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.serve.api import create_api
from qa.serve.gradio_app import EMPTY_SOURCES
from qa.serve.middleware import MAX_BODY_BYTES
from qa.serve.routes import MAX_HISTORY
from qa.serve.state import Models
from qa.types import Message
from tests.fakes import ScriptedGenerator
from tests.test_app import MEMBERS, free_port

REPLY = "India and Pakistan were granted full membership [1]."
OPEN = Settings.from_env(rate_limit_per_minute=6000, rate_limit_burst=1000)  # no rate limit


class PacedGenerator(ScriptedGenerator):
    """A ScriptedGenerator that waits before each piece (a delay, or until `gate` is set) and
    records how many pieces it produced and whether its stream was closed."""

    def __init__(self, *replies: str, delay: float = 0.0,
                 gate: threading.Event | None = None, piece: int = 3) -> None:
        super().__init__(*replies, piece=piece)
        self.delay, self.gate = delay, gate
        self.started, self.closed = threading.Event(), threading.Event()
        self.produced = 0

    def pieces(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        self.started.set()
        try:
            for piece in super().pieces(messages, max_new_tokens):
                if self.gate is not None:
                    self.gate.wait(60)
                time.sleep(self.delay)
                self.produced += 1
                yield piece
        finally:
            self.closed.set()


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve app with uvicorn in a thread on a free loopback port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


Serve = Callable[..., tuple[str, ScriptedGenerator, QA]]


@pytest.fixture
def serve(corpus_index, embedder) -> Iterator[Serve]:
    """Start create_api over the test index with a scripted generator; stop it afterwards."""
    with contextlib.ExitStack() as stack:

        def start(*replies: str, generator: ScriptedGenerator | None = None,
                  config: Settings = OPEN, mount_ui: bool = False,
                  models: Callable[[QA], Models] | None = None) -> tuple[str, Any, QA]:
            generator = generator or ScriptedGenerator(*(replies or (REPLY,)))
            qa = QA(Settings.from_env(), corpus_index, embedder, generator)
            app = create_api(qa, models(qa) if models else None, settings=config,
                             mount_ui=mount_ui)
            return stack.enter_context(running(app)), generator, qa

        yield start


def sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """(event name, JSON data) of a text/event-stream, comments skipped."""
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def test_ask_returns_the_answer_with_exact_cited_spans(serve: Serve, corpus_index) -> None:
    url, generator, _ = serve()
    reply = httpx.post(f"{url}/api/ask", json={"question": f"  {MEMBERS} "}, timeout=60)
    assert reply.status_code == 200
    answer = reply.json()
    assert answer["question"] == MEMBERS and answer["text"] == REPLY
    assert answer["refused"] is False and answer["model"] == "scripted"
    assert {"first_token_ms", "total_ms"} <= set(answer["timings"])
    [citation] = answer["citations"]
    document = corpus_index.documents[citation["doc_id"]]
    assert citation["n"] == 1 and citation["supported"] is True
    assert citation["source"] == "sco-un-special-event-2018.txt"
    assert document.text[citation["start"]:citation["end"]] == citation["snippet"]
    assert " ".join(citation["snippet"].split()).endswith(
        "granting of full membership to India and Pakistan.")  # the text has no-break spaces
    assert len(generator.calls) == 1


def test_stream_sends_tokens_then_citations_then_the_answer(serve: Serve) -> None:
    url, _, _ = serve()
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": MEMBERS},
                      timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["cache-control"] == "no-cache"
        events = list(sse(reply.iter_lines()))
    names = [name for name, _ in events]
    tokens = names.count("token")
    assert tokens > 5 and names == ["token"] * tokens + ["citation", "done"]
    assert "".join(data["text"] for name, data in events if name == "token") == REPLY
    done = events[-1][1]
    assert done["text"] == REPLY and done["refused"] is False
    assert events[-2][1] == done["citations"][0]


def test_refusal_and_follow_up_history(serve: Serve) -> None:
    url, generator, _ = serve("India and Pakistan [1].", "When did this happen?", REPLY)
    refusal = httpx.post(f"{url}/api/ask", json={"question": "What is the capital of France?"},
                         timeout=60).json()
    assert refusal["refused"] is True and refusal["text"] == "The documents do not say."
    assert refusal["citations"] == [] and generator.calls == []
    history = [{"role": "user", "content": MEMBERS},
               {"role": "assistant", "content": "India and Pakistan [1]."}]
    reply = httpx.post(f"{url}/api/ask", json={"question": "And when?", "history": history,
                                               "top_k": 3}, timeout=60)
    assert reply.status_code == 200
    rewrite = generator.calls[0][-1]["content"]  # the follow-up was rewritten with the history
    assert "India and Pakistan." in rewrite and "And when?" in rewrite
    assert len(reply.json()["hits"]) <= 3


LONG = "x" * 2001
CASES = [
    ({"question": ""}, 422, "the question is empty"),
    ({"question": "   \n"}, 422, "the question is empty"),
    ({"question": LONG}, 413, "the question is longer than 2000 characters"),
    (b"{\"question\": ", 400, "the request body is not valid JSON"),
    ({"question": 5}, 422, "question: Input should be a valid string"),
    ({"question": "hi", "top_k": "3"}, 422, "top_k: Input should be a valid integer"),
    ({"question": "hi", "top_k": 0}, 422, "top_k: Input should be greater than or equal to 1"),
    ({"question": "hi", "mode": "x"}, 422, "mode: Extra inputs are not permitted"),
    ({}, 422, "question: Field required"),
    ([MEMBERS], 422, "Input should be a valid dictionary"),
    ({"question": "hi", "history": [{"role": "system", "content": "x"}]}, 422,
     "history.0.role: Input should be 'user' or 'assistant'"),
    ({"question": "hi", "history": [{"role": "user", "content": "x"}] * (MAX_HISTORY + 1)},
     422, "history: List should have at most 20 items"),
    ({"question": "hi" * MAX_BODY_BYTES}, 413, f"larger than {MAX_BODY_BYTES} bytes"),
]


@pytest.mark.parametrize("path", ["/api/ask", "/api/ask/stream"])
def test_invalid_requests_get_clear_errors(serve: Serve, path: str) -> None:
    url, generator, _ = serve()
    with httpx.Client(base_url=url, timeout=30) as client:
        for body, status, message in CASES:
            if isinstance(body, bytes):
                reply = client.post(path, content=body,
                                    headers={"Content-Type": "application/json"})
            else:
                reply = client.post(path, json=body)
            assert (reply.status_code, message in reply.json()["error"]) == (status, True), \
                (body if len(str(body)) < 200 else str(body)[:200], reply.text[:300])
        plain = client.post(path, content=json.dumps({"question": MEMBERS}),
                            headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415 and "Content-Type: application/json" in plain.text
        assert client.get(path).status_code == 405
        assert client.get("/api/nothing").json() == {"error": "no such endpoint: /api/nothing"}
    assert generator.calls == []


def test_search_returns_ranked_hits_of_one_index_version(serve: Serve, corpus_index) -> None:
    url, generator, _ = serve()
    reply = httpx.post(f"{url}/api/search", json={"query": f" {MEMBERS}\x00 ", "top_k": 3},
                       timeout=60)
    assert reply.status_code == 200
    found = reply.json()
    assert found["query"] == MEMBERS and found["build_id"] == corpus_index.version
    assert [hit["rank"] for hit in found["hits"]] == [1, 2, 3]
    top = found["hits"][0]
    assert top["source"] == "sco-un-special-event-2018.txt"
    assert "full membership to India and Pakistan" in " ".join(top["chunk"]["text"].split())
    document = corpus_index.documents[top["chunk"]["doc_id"]]
    assert document.text[top["chunk"]["start"]:top["chunk"]["end"]] == top["chunk"]["text"]
    for body, status, message in [({"query": "\x00 "}, 422, "the query is empty"),
                                  ({"query": LONG}, 413, "longer than 2000 characters"),
                                  ({"query": "hi", "top_k": 21}, 422, "top_k")]:
        reply = httpx.post(f"{url}/api/search", json=body, timeout=30)
        assert (reply.status_code, message in reply.json()["error"]) == (status, True)
    assert generator.calls == []  # retrieval only


def test_health_and_documents(serve: Serve, corpus_index) -> None:
    url, _, _ = serve()
    health = httpx.get(f"{url}/api/health").json()
    assert health["status"] == "ok"
    assert health["model"] == {"name": "scripted", "state": "loads on first question",
                               "ready": True}
    assert health["index"]["documents"] == 1
    assert health["index"]["chunks"] == len(corpus_index.chunks)
    assert health["index"]["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert health["limits"]["max_question_chars"] == 2000
    assert health["limits"]["busy_generations"] == 0
    [document] = httpx.get(f"{url}/api/documents").json()
    assert document["source"] == "sco-un-special-event-2018.txt"
    assert document["title"].startswith("SCO Secretary-General: Combatting Global Challenges")
    assert document["chars"] == 3858 and document["chunks"] == len(corpus_index.chunks)


def test_one_app_serves_ui_widget_demo_and_docs(serve: Serve) -> None:
    url, _, _ = serve(mount_ui=True)
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert Client(f"{url}/", verbose=False).predict(api_name="/clear") == ("", [],
                                                                               EMPTY_SOURCES)
        widget = client.get("/widget.js")
        assert widget.status_code == 200
        assert widget.headers["content-type"] == "text/javascript; charset=utf-8"
        assert widget.headers["x-content-type-options"] == "nosniff"
        assert len(widget.content) < 30_000
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(",
                             widget.text)  # never HTML from strings
        assert "customElements.define" in widget.text
        demo = client.get("/widget/demo")
        assert demo.status_code == 200
        assert (f'&lt;script src="{url}/widget.js" data-title="Ask about the documents" '
                "defer&gt;&lt;/script&gt;") in demo.text  # the snippet to copy
        assert f'<script src="{url}/widget.js" data-title="Ask about the documents" defer>' \
            in demo.text
        paths = client.get("/api/openapi.json").json()["paths"]
        assert {"/api/ask", "/api/ask/stream", "/api/health", "/api/documents"} <= set(paths)
        assert client.get("/api/docs").status_code == 200
        assert client.post("/api/ask", json={"question": MEMBERS}).json()["text"] == REPLY


def cors_headers(reply: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.startswith("access-control-")}


def test_cors_allows_listed_origins_only(serve: Serve) -> None:
    config = Settings.from_env(allowed_origins="https://site.example,http://localhost:*",
                       rate_limit_per_minute=600, rate_limit_burst=100)
    url, generator, _ = serve(config=config)
    port = url.rsplit(":", 1)[1]
    with httpx.Client(base_url=url, timeout=30) as client:
        for origin in ("https://site.example", "http://localhost:5173", "http://localhost",
                       f"http://127.0.0.1:{port}"):  # the last one: the app's own origin
            reply = client.get("/api/health", headers={"Origin": origin})
            assert cors_headers(reply) == {"access-control-allow-origin": origin,
                                           "access-control-expose-headers": "Retry-After"}
            assert reply.headers["vary"] == "Origin"
            preflight = client.options("/api/ask/stream", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "Content-Type" in preflight.headers["access-control-allow-headers"]
            assert "access-control-allow-credentials" not in preflight.headers
        for origin in ("https://evil.example", "http://site.example", "https://site.example.evil",
                       "http://localhost.evil.example", "null", "http://127.0.0.1:1"):
            reply = client.get("/api/health", headers={"Origin": origin})
            assert reply.status_code == 200 and cors_headers(reply) == {}
            preflight = client.options("/api/ask", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert preflight.status_code == 403 and cors_headers(preflight) == {}
        # Allowed origin, but a header outside the list: refused.
        odd = client.options("/api/ask", headers={
            "Origin": "https://site.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-forwarded-for"})
        assert odd.status_code == 403 and cors_headers(odd) == {}
    assert generator.calls == []


def test_wildcard_origin_never_comes_with_credentials(serve: Serve) -> None:
    url, _, _ = serve(config=Settings.from_env(allowed_origins="*"))
    reply = httpx.get(f"{url}/api/health", headers={"Origin": "https://any.example"})
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in reply.headers


def test_rate_limit_answers_429_with_retry_after_per_address(serve: Serve) -> None:
    config = Settings.from_env(rate_limit_per_minute=1, rate_limit_burst=2)
    url, _, _ = serve(config=config)
    headers = {"Origin": "http://localhost:3000"}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):  # each request costs a token, even an invalid one
            assert client.post("/api/ask", json={"question": ""}).status_code == 422
        limited = client.post("/api/ask/stream", json={"question": MEMBERS}, headers=headers)
        assert limited.status_code == 429
        assert 55 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"].startswith("too many questions from your address")
        # The widget on an allowed page can read the reason and the Retry-After header.
        assert limited.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert client.get("/api/health").status_code == 200  # reads are not limited
    other = httpx.Client(base_url=url, timeout=30,
                         transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with other:
        assert other.post("/api/ask", json={"question": ""}).status_code == 422


def test_busy_answers_503_instead_of_waiting(serve: Serve) -> None:
    gate = threading.Event()
    generator = PacedGenerator(REPLY, gate=gate)
    url, _, _ = serve(generator=generator)
    first: dict[str, Any] = {}

    def ask_first() -> None:
        first["reply"] = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60)

    worker = threading.Thread(target=ask_first)
    worker.start()
    try:
        assert generator.started.wait(30)
        busy = httpx.post(f"{url}/api/ask/stream", json={"question": MEMBERS}, timeout=30)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert busy.json() == {"error": "busy answering other questions; retry in a few seconds"}
        assert httpx.get(f"{url}/api/health").json()["limits"]["busy_generations"] == 1
    finally:
        gate.set()
        worker.join(60)
    assert first["reply"].json()["text"] == REPLY
    assert httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60).status_code == 200


def test_client_disconnect_stops_generation(serve: Serve) -> None:
    generator = PacedGenerator("India and Pakistan " * 100 + "[1].", delay=0.05)
    total = len(generator.replies[0]) // 3 + 1
    url, _, _ = serve(generator=generator)
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": MEMBERS},
                      timeout=60) as reply:
        for name, _ in sse(reply.iter_lines()):
            if name == "token":
                break
    assert generator.closed.wait(10), "the model kept generating after the client left"
    assert generator.produced < total / 2
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/api/health").json()["limits"]["busy_generations"]:
        assert time.monotonic() < deadline, "the generation slot was not given back"
        time.sleep(0.1)


def test_answers_are_cut_at_the_time_limit(serve: Serve) -> None:
    generator = PacedGenerator("India and Pakistan " * 100 + "[1].", delay=0.1)
    url, _, _ = serve(generator=generator,
                      config=Settings.from_env(max_answer_seconds=2, rate_limit_per_minute=600,
                                               rate_limit_burst=50))
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": MEMBERS},
                      timeout=60) as reply:
        events = list(sse(reply.iter_lines()))
    assert events[-1] == ("error", {"error": "the answer took longer than 2 s and was stopped",
                                    "status": 504})
    assert {name for name, _ in events[:-1]} <= {"token"}
    assert generator.closed.wait(5)
    reply = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60)
    assert reply.status_code == 504 and "took longer than 2 s" in reply.json()["error"]


def test_model_still_loading_answers_503(serve: Serve) -> None:
    holder: dict[str, Models] = {}

    def models(qa: QA) -> Models:
        holder["models"] = Models(qa)  # not loading yet
        return holder["models"]

    url, _, _ = serve(models=models)
    reply = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=30)
    assert reply.status_code == 503 and reply.headers["retry-after"] == "10"
    assert reply.json() == {"error": "the model is still loading; retry shortly"}
    assert httpx.get(f"{url}/api/health").json()["status"] == "loading"
    holder["models"].load_in_background().join(30)
    assert httpx.get(f"{url}/api/health").json()["status"] == "ok"
    assert httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60).status_code == 200
