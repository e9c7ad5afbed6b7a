"""Load on the real API over loopback, with a generator of fixed latency: no errors below
capacity, overload answered with 429 or 503 within 1 s, retrieval at 10 requests/s.

CI runs a few seconds per phase; QA_SOAK=1 (`make soak`) runs 60 s per phase and the
10-minute memory soak. bench/load.py prints the figures for BENCHMARKS.md.
"""

from __future__ import annotations

import os

import pytest

from qa.config import Settings
from tests.loadgen import (
    REJECTED,
    REPLY,
    clients,
    latency_ms,
    load_app,
    paced,
    rss_mib,
    statuses,
)
from tests.test_api import running

SOAK = os.environ.get("QA_SOAK") == "1"
SECONDS = 60.0 if SOAK else 5.0
CLIENTS = 20
OVERLOAD_BOUND_S = 1.0  # acceptance: a refused request is answered within 1 s, never a hang
ALL_PATHS = ("/api/ask", "/api/ask/stream", "/api/search")


def test_no_errors_below_capacity(corpus_index, embedder) -> None:
    # Capacity: a generation slot per client and a rate limit above what a client sends.
    config = Settings.from_env(rate_limit_per_minute=600, rate_limit_burst=50,
                               max_concurrent_generations=CLIENTS)
    with running(load_app(corpus_index, embedder, 0.2, config)) as url:
        outcomes = clients(url, CLIENTS, SECONDS, ALL_PATHS, think=0.2)
    assert statuses(outcomes) == {200: len(outcomes)}, [o for o in outcomes if o.status != 200][:5]
    # Every client finished at least one request and every path was served (counts beyond
    # that depend on how busy the cores are, so they are printed, not asserted).
    assert len(outcomes) >= CLIENTS and {o.path for o in outcomes} == set(ALL_PATHS)
    for outcome in outcomes:
        expected = corpus_index.version if outcome.path == "/api/search" else REPLY
        assert outcome.text == expected, outcome
    print(f"below capacity: {len(outcomes)} requests, p95 {latency_ms(outcomes, 95):.0f} ms")


def test_overload_is_refused_quickly_never_hangs(corpus_index, embedder) -> None:
    # Two slots for 1 s answers (2 answers/s) against 20 clients, 30 questions a minute each.
    config = Settings.from_env(rate_limit_per_minute=30, rate_limit_burst=3,
                               max_concurrent_generations=2)
    with running(load_app(corpus_index, embedder, 1.0, config)) as url:
        outcomes = clients(url, CLIENTS, SECONDS, ("/api/ask", "/api/ask/stream"), think=0.1)
    counts = statuses(outcomes)
    assert set(counts) <= {200, *REJECTED}, [o for o in outcomes if o.status not in
                                             (200, *REJECTED)][:5]
    assert counts.get(200, 0) > 0 and counts.get(429, 0) > 0 and counts.get(503, 0) > 0, counts
    refused = [o for o in outcomes if o.status in REJECTED]
    assert max(o.seconds for o in refused) < OVERLOAD_BOUND_S, sorted(
        o.seconds for o in refused)[-5:]
    assert {o.text for o in outcomes if o.status == 200} == {REPLY}
    assert {o.text for o in outcomes if o.status == 503} == {
        "busy answering other questions; retry in a few seconds"}
    assert all(o.text.startswith("too many questions") for o in outcomes if o.status == 429)
    print(f"overload: {counts}, slowest refusal {max(o.seconds for o in refused) * 1000:.0f} ms")


def test_retrieval_at_ten_requests_per_second(corpus_index, embedder) -> None:
    config = Settings.from_env(rate_limit_per_minute=600, rate_limit_burst=50)
    with running(load_app(corpus_index, embedder, 0.0, config)) as url:
        outcomes = paced(url, 10.0, SECONDS, "/api/search")
    assert len(outcomes) == int(10 * SECONDS)
    assert statuses(outcomes) == {200: len(outcomes)}
    assert {o.text for o in outcomes} == {corpus_index.version}
    # Wall time is reported, not asserted (bench/load.py checks the 300 ms target).
    print(f"retrieval: p50 {latency_ms(outcomes, 50):.0f} ms, "
          f"p95 {latency_ms(outcomes, 95):.0f} ms")


@pytest.mark.skipif(not SOAK, reason="the 10-minute soak runs with QA_SOAK=1 (make soak)")
def test_memory_drift_under_ten_percent_over_ten_minutes(corpus_index, embedder) -> None:
    config = Settings.from_env(rate_limit_per_minute=600, rate_limit_burst=50,
                               max_concurrent_generations=CLIENTS)
    samples: list[float] = []
    with running(load_app(corpus_index, embedder, 0.2, config)) as url:
        clients(url, CLIENTS, 60, ALL_PATHS, think=0.2)  # warm-up: caches and pools fill
        for _ in range(10):  # 10 x 60 s under load, memory sampled after each minute
            outcomes = clients(url, CLIENTS, 60, ALL_PATHS, think=0.2)
            assert statuses(outcomes) == {200: len(outcomes)}
            samples.append(rss_mib())
    drift = (samples[-1] - samples[0]) / samples[0]
    print(f"RSS per minute (MiB): {[round(s) for s in samples]}, drift {drift:+.1%}")
    assert drift < 0.10, samples
