"""Abandoned answers give their generation back: a stalled or vanished HTTP client, and a
closed Gradio tab (a real server on loopback, a paced fake generator)."""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx

from qa.config import Settings
from tests.test_api import REPLY, PacedGenerator, Serve, serve, sse  # noqa: F401 - the fixture
from tests.test_app import MEMBERS

LONG = "India and Pakistan joined. " * 4000 + "[1]."


def busy(url: str) -> int:
    return int(httpx.get(f"{url}/api/health", timeout=30).json()["limits"]["busy_generations"])


def wait_free(url: str, seconds: float) -> None:
    """Poll until no generation is under way; fail after `seconds` (a hang)."""
    deadline = time.monotonic() + seconds
    while busy(url):
        assert time.monotonic() < deadline, f"the slot was still taken after {seconds} s"
        time.sleep(0.05)


def test_a_stalled_reader_frees_the_slot_within_max_answer_seconds(serve: Serve) -> None:  # noqa: F811
    limit = 5.0
    generator = PacedGenerator(LONG, REPLY, delay=0.2, piece=2000)  # 11 s of pieces
    url, _, _ = serve(generator=generator, config=Settings.from_env(
        max_answer_seconds=limit, rate_limit_per_minute=6000, rate_limit_burst=1000))
    parts = urlsplit(url)
    body = f'{{"question": "{MEMBERS}"}}'.encode()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server's sends block
    stalled.connect((parts.hostname, parts.port))
    try:
        stalled.sendall(b"POST /api/ask/stream HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        b"application/json\r\nContent-Length: " + str(len(body)).encode() +
                        b"\r\n\r\n" + body)
        stalled.settimeout(30)
        seen = b""
        while b"event: token" not in seen:  # one event read, then nothing more
            more = stalled.recv(1024)
            assert more, seen.decode(errors="replace")
            seen += more
        assert busy(url) == 1
        assert generator.closed.wait(limit + 5), "the generation ran past max_answer_seconds"
        wait_free(url, 2)
        assert generator.produced < len(LONG) // 2000  # cut, not run to its end
        # The stalled client still holds its connection; the next question is answered.
        answer = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60)
        assert answer.status_code == 200 and answer.json()["text"] == REPLY
    finally:
        stalled.close()


def test_a_client_that_disconnects_frees_the_slot_within_a_second(serve: Serve) -> None:  # noqa: F811
    generator = PacedGenerator(LONG, REPLY, delay=0.05, piece=20)
    url, _, _ = serve(generator=generator)
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": MEMBERS},
                      timeout=60) as reply:
        events = sse(reply.iter_lines())  # kept: closing it would close the connection
        for name, _ in events:
            if name == "token":
                break
        assert busy(url) == 1
    assert generator.closed.wait(1.0), "the model kept generating a second after the client left"
    wait_free(url, 1)
    answer = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60)
    assert answer.json()["text"] == REPLY


def test_a_closed_gradio_tab_stops_its_generation(serve: Serve) -> None:  # noqa: F811
    generator = PacedGenerator(LONG, delay=0.05, piece=20)
    url, _, qa = serve(generator=generator, mount_ui=True)
    config = httpx.get(f"{url}/config", timeout=30).json()
    ask = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "ask")
    session = uuid.uuid4().hex
    # What the page does: join the queue, then read the session's event stream.
    joined = httpx.post(f"{url}/gradio_api/queue/join", timeout=30, json={
        "data": [MEMBERS, [], 4, False, qa.settings.model, None, None], "fn_index": ask,
        "session_hash": session, "event_data": None, "trigger_id": None})
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session},
                      timeout=60) as events:
        for line in events.iter_lines():
            if generator.produced >= 3 and "process_generating" in line:
                break  # an answer under way; the tab closes
    assert generator.closed.wait(10), "the model kept generating after the tab closed"
    assert generator.produced < len(LONG) // 20 // 2
