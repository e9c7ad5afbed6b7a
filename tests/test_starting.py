"""Start-up: the server is up at once and says what it is doing, then serves the built app."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gradio_client import Client

from qa.answer.pipeline import QA
from qa.config import PROJECT_ROOT, Settings
from qa.errors import IndexLoadError
from qa.serve.api import create_api
from qa.serve.gradio_app import build_app
from qa.serve.starting import StartingApp
from qa.serve.state import Models
from tests.fakes import ScriptedGenerator
from tests.test_api import OPEN, REPLY, running
from tests.test_app import MEMBERS, ask, free_port, text_of

STATE = "Embedding chunks 40% <b>"


def _wait_for_app(client: httpx.Client, starting: StartingApp) -> dict:
    deadline = time.monotonic() + 120
    while (health := client.get("/api/health").json())["status"] == "starting":
        assert starting.error is None and time.monotonic() < deadline, "the app was not built"
        time.sleep(0.1)
    return health


def test_the_start_up_page_answers_until_the_app_is_built(corpus_index, embedder) -> None:
    gate = threading.Event()
    events: list[str] = []

    def build() -> FastAPI:
        assert gate.wait(60)
        qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator(REPLY))
        models = Models(qa)
        app = create_api(qa, models, settings=OPEN, ui=build_app(qa, models))
        models.load_in_background()
        own = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def recorded(app: FastAPI) -> AsyncIterator[Any]:
            async with own(app) as state:
                events.append("started")
                yield state
            events.append("stopped")

        app.router.lifespan_context = recorded
        return app

    starting = StartingApp(build, lambda: STATE, lambda exc: events.append(f"failed {exc}"),
                           model="qwen2.5-coder-1.5b")
    with running(starting) as url, httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-store"
        assert '<meta http-equiv="refresh" content="2">' in page.text
        assert '<p class="state" id="qa-starting">Embedding chunks 40% &lt;b&gt;</p>' in page.text
        head = client.head("/")
        assert head.status_code == 200 and head.content == b""
        assert client.get("/api/health").json() == {
            "status": "starting", "state": STATE,
            "model": {"name": "qwen2.5-coder-1.5b", "state": "waiting for start-up",
                      "ready": False}}
        for reply in (client.post("/api/ask", json={"question": MEMBERS}),
                      client.get("/widget.js"), client.post("/", json={})):
            assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
            assert reply.json() == {"error": f"the app is starting ({STATE}); retry shortly"}
        assert events == []

        gate.set()
        health = _wait_for_app(client, starting)
        assert health["status"] == "ok" and health["index"]["chunks"] == len(corpus_index.chunks)
        assert events == ["started"]  # the built app's own start-up ran, once
        assert client.post("/api/ask", json={"question": MEMBERS}).json()["text"] == REPLY
        assert "gradio" in client.get("/").text.lower()
        # The chat UI's queue (started by the app's lifespan) streams answers.
        _, (_, chat, _) = ask(Client(f"{url}/", verbose=False), MEMBERS)
        assert text_of(chat[-1]).startswith("India and Pakistan were granted full membership")
    assert events == ["started", "stopped"]
    assert starting.error is None


def test_a_failed_start_up_stops_the_server_and_keeps_the_error() -> None:
    stopped: list[BaseException] = []

    def build() -> FastAPI:
        raise IndexLoadError("no documents to index")

    starting = StartingApp(build, lambda: "", stopped.append)
    with running(starting) as url:
        deadline = time.monotonic() + 30
        while not stopped:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert isinstance(starting.error, IndexLoadError)
        assert stopped == [starting.error]
        reply = httpx.get(f"{url}/api/health", timeout=10)
        assert reply.json()["status"] == "starting" and starting.app is None


def test_app_py_reports_a_corpus_with_nothing_to_index_and_exits(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(free_port()),
           "QA_CORPUS_DIR": str(tmp_path / "corpus"), "QA_INDEX_DIR": str(tmp_path / "index")}
    done = subprocess.run([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "app.py: error: no documents to index"
    assert "Traceback" not in done.stderr


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_stopping_during_the_build_does_not_wait_for_it(corpus_index, embedder) -> None:
    gate, built = threading.Event(), threading.Event()

    def build() -> FastAPI:
        gate.wait(60)
        try:
            return create_api(QA(Settings.from_env(), corpus_index, embedder), mount_ui=False)
        finally:
            built.set()

    starting = StartingApp(build, lambda: "opening the index", lambda exc: None)
    with running(starting) as url:
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/", timeout=10)  # stopped while the build still waits
    gate.set()
    assert built.wait(60)
    time.sleep(0.5)  # the build thread hands its result to the closed loop: nothing breaks
    assert starting.app is None and starting.error is None
