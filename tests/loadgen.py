"""Load generation against the HTTP API, shared by tests/test_load.py and bench/load.py: a
generator of fixed latency, clients on their own loopback addresses, and the figures."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.eval.metrics import percentile
from qa.index.embedding import Embedder
from qa.index.store import Index
from qa.serve.api import create_api
from qa.types import Message
from tests.fakes import FakeGenerator

QUESTION = "Which countries were granted full membership of the SCO?"
REPLY = "India and Pakistan were granted full membership [1]."
TIMEOUT_S = 30.0  # a request without an answer by then counts as a hang (status 0)
REJECTED = (429, 503)  # the overload answers: rate limited, busy


class FixedLatencyGenerator(FakeGenerator):
    """Streams the same reply in `parts` parts spread over `latency` seconds."""

    name = "fixed-latency"

    def __init__(self, latency: float, reply: str = REPLY, parts: int = 8) -> None:
        self.latency, self.reply, self.parts = latency, reply, parts

    def pieces(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        size = -(-len(self.reply) // self.parts)
        for i in range(0, len(self.reply), size):
            time.sleep(self.latency / self.parts)
            yield self.reply[i:i + size]


def load_app(index: Index, embedder: Embedder, latency: float, config: Settings) -> Any:
    """The real API (without the Gradio UI) over index, answering with a fixed latency."""
    qa = QA(Settings.from_env(), index, embedder, FixedLatencyGenerator(latency))
    return create_api(qa, settings=config, mount_ui=False)


@dataclass(frozen=True)
class Outcome:
    """One request: its path, status (0: no answer in TIMEOUT_S) and seconds to answer."""

    path: str
    status: int
    seconds: float
    text: str = ""  # the answer's text, the query's build id, or the error


BODIES: dict[str, dict[str, Any]] = {"/api/ask": {"question": QUESTION},
                                     "/api/ask/stream": {"question": QUESTION},
                                     "/api/search": {"query": QUESTION}}


def _text(path: str, reply: httpx.Response) -> tuple[int, str]:
    """The status and what the test checks of a reply: answer text, search build id or the
    error (a stream that ends with an `error` event has that event's status)."""
    if path == "/api/ask/stream" and reply.status_code == 200:
        events = [json.loads(line.removeprefix("data: ")) for line in reply.text.splitlines()
                  if line.startswith("data: ")]
        last = events[-1] if events else {}
        if "error" in last:
            return int(last.get("status", 500)), str(last["error"])
        return 200, str(last.get("text", last))
    if reply.status_code != 200:
        try:
            return reply.status_code, str(reply.json().get("error", reply.text))
        except (ValueError, AttributeError):  # not a JSON object: uvicorn's own reply
            return reply.status_code, reply.text[:200]
    data = reply.json()
    return 200, str(data["build_id"] if path == "/api/search" else data["text"])


def send(client: httpx.Client, path: str, body: dict[str, Any] | None = None,
         timeout: float = TIMEOUT_S) -> Outcome:
    """POST body (default: path's in BODIES); the whole reply (all events of a stream) is
    read; no reply within timeout is status 0."""
    started = time.perf_counter()
    try:
        reply = client.post(path, json=BODIES[path] if body is None else body, timeout=timeout)
        status, text = _text(path, reply)
        return Outcome(path, status, time.perf_counter() - started, text)
    except httpx.HTTPError as exc:
        return Outcome(path, 0, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")


def address(n: int) -> str:
    """The n-th client's own loopback address (so each has its own rate-limit bucket)."""
    return f"127.0.{1 + n // 250}.{2 + n % 250}"


def loopback_client(url: str, n: int) -> httpx.Client:
    """An HTTP client for url that connects from the n-th client's own loopback address."""
    transport = httpx.HTTPTransport(local_address=address(n))
    return httpx.Client(base_url=url, transport=transport, timeout=TIMEOUT_S)


def clients(url: str, count: int, seconds: float, paths: tuple[str, ...],
            think: float = 0.0) -> list[Outcome]:
    """`count` concurrent clients, each sending paths in turn (pausing `think` seconds after
    each answer) until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        with loopback_client(url, n) as client:
            i = n
            while time.monotonic() < deadline:
                outcome = send(client, paths[i % len(paths)])
                i += 1
                with lock:
                    outcomes.append(outcome)
                time.sleep(think)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + TIMEOUT_S + 10)
    return outcomes


def paced(url: str, rate: float, seconds: float, path: str,
          addresses: int = 10) -> list[Outcome]:
    """Open loop: one request every 1/rate seconds whatever the answers' latency, sent in
    turn from `addresses` loopback addresses."""
    pool = [loopback_client(url, n) for n in range(addresses)]
    total = int(rate * seconds)
    start = time.monotonic()

    def one(i: int) -> Outcome:
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        return send(pool[i % addresses], path)

    try:
        with ThreadPoolExecutor(max_workers=max(4, int(rate * 2))) as executor:
            return list(executor.map(one, range(total)))
    finally:
        for client in pool:
            client.close()


def statuses(outcomes: list[Outcome]) -> dict[int, int]:
    """How many requests got each status."""
    counts: dict[int, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return dict(sorted(counts.items()))


def latency_ms(outcomes: list[Outcome], q: float, wanted: tuple[int, ...] = (200,)) -> float:
    """q-th percentile latency in ms of the requests answered with a wanted status."""
    return percentile([o.seconds * 1000 for o in outcomes if o.status in wanted], q)


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default) in MiB, from /proc."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024
