"""Schemathesis against the API's own OpenAPI schema on a loopback server, plus hand-made
hostile bodies: never a 5xx, every answer within the time bound, bounded memory growth."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from qa.config import Settings
from qa.serve.middleware import MAX_BODY_BYTES
from tests.loadgen import QUESTION, load_app, rss_mib
from tests.test_api import running

TIME_BOUND_S = 10.0  # every answer, whatever the input (the fake generator answers at once)
MEMORY_BOUND_MIB = 100.0
EXAMPLES = 1000 if os.environ.get("QA_SOAK") == "1" else 100
CONFIG = Settings.from_env(rate_limit_per_minute=600_000, rate_limit_burst=100_000,
                           max_answer_seconds=TIME_BOUND_S)
BASELINE: dict[str, float] = {}


@pytest.fixture(scope="module")
def api_url(corpus_index, embedder) -> Iterator[str]:
    """The API over the test index with an instant fake generator, warmed up."""
    with running(load_app(corpus_index, embedder, 0.0, CONFIG)) as url:
        assert httpx.post(f"{url}/api/ask", json={"question": QUESTION},
                          timeout=60).status_code == 200
        BASELINE["rss_mib"] = rss_mib()
        yield url


def _fuzz(operation: Any, mode: GenerationMode, api_url: str) -> int:
    """Run EXAMPLES generated cases of operation; the number of calls made."""
    calls: list[int] = []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        started = time.perf_counter()
        response = case.call(base_url=api_url, timeout=TIME_BOUND_S + 5)
        elapsed = time.perf_counter() - started
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500, response.text[:300]
        assert elapsed < TIME_BOUND_S, (case.path, elapsed)
        calls.append(response.status_code)

    run()
    return len(calls)


def test_generated_requests_never_get_a_server_error(api_url: str) -> None:
    """Positive (valid) cases for every documented operation, negative (schema-breaking)
    ones for those that take a body."""
    schema = schemathesis.openapi.from_url(f"{api_url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "POST /api/ask", "POST /api/ask/stream", "POST /api/search", "GET /api/health",
        "GET /api/documents", "POST /v1/chat/completions", "GET /v1/models"}
    calls: dict[str, int] = {}
    for operation in operations:
        calls[operation.label] = _fuzz(operation, GenerationMode.POSITIVE, api_url)
        if operation.method.upper() == "POST":
            calls[f"{operation.label} (negative)"] = _fuzz(operation, GenerationMode.NEGATIVE,
                                                           api_url)
    print(f"schemathesis calls: {calls}")
    assert all(n >= EXAMPLES // 2 for label, n in calls.items() if "POST" in label), calls


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


MEGABYTE = "why " * 262_144
HOSTILE: list[tuple[str, bytes, int]] = [
    ("1 MB question", json.dumps({"question": MEGABYTE}).encode(), 413),
    ("1 MB query", json.dumps({"query": MEGABYTE}).encode(), 413),
    ("deeply nested history",
     b'{"question": "hi", "history": ' + _nested(50_000).encode() + b"}", 400),
    ("deeply nested turn content", b'{"question": "hi", "history": [{"role": "user", '
     b'"content": ' + (b'{"a": ' * 20_000) + b"1" + b"}" * 20_000 + b"}]}", 400),
    ("huge history of short turns", json.dumps(
        {"question": "hi", "history": [{"role": "user", "content": "x"}] * 5_000}).encode(), 422),
    ("huge history over the body limit", json.dumps(
        {"question": "hi", "history": [{"role": "user", "content": "x" * 100}] * 5_000}).encode(),
     413),
    ("NUL and control characters only", json.dumps({"question": "\x00\x01\x1b"}).encode(), 422),
    ("lone surrogates, right-to-left, zero-width", b'{"question": "\\ud800 \\u202e \\u200b '
     b'Which countries joined? \\udfff"}', 200),
]


@pytest.mark.parametrize("path", ["/api/ask", "/api/ask/stream", "/api/search"])
def test_hostile_bodies_get_4xx_quickly(api_url: str, path: str) -> None:
    with httpx.Client(base_url=api_url, timeout=TIME_BOUND_S + 5) as client:
        for name, body, status in HOSTILE:
            if path == "/api/search":  # the same bodies with the search field name
                body = body.replace(b'"question"', b'"query"').replace(b'"history"',
                                                                      b'"top_k"')
            started = time.perf_counter()
            reply = client.post(path, content=body, headers={"Content-Type": "application/json"})
            elapsed = time.perf_counter() - started
            assert elapsed < TIME_BOUND_S, (name, elapsed)
            assert reply.status_code < 500, (name, reply.status_code, reply.text[:300])
            assert reply.status_code == status, (name, reply.status_code, reply.text[:300])
            if reply.status_code >= 400:
                assert set(reply.json()) >= {"error"}, (name, reply.text[:300])
    with httpx.Client(base_url=api_url, timeout=TIME_BOUND_S + 5) as client:
        chunks = (MEGABYTE.encode()[i:i + 65_536] for i in range(0, 4 * MAX_BODY_BYTES, 65_536))
        reply = client.post(path, content=chunks, headers={"Content-Type": "application/json"})
        assert reply.status_code == 413  # no Content-Length: cut off while reading


def test_memory_growth_over_the_run_is_bounded(api_url: str) -> None:
    """Runs after the fuzzing above (same module, same server)."""
    growth = rss_mib() - BASELINE["rss_mib"]
    print(f"RSS growth over the fuzz run: {growth:.1f} MiB")
    assert growth < MEMORY_BOUND_MIB
