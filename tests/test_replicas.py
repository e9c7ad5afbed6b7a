"""Two app processes over one index folder pick up a new build without a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import build_index
from tests.conftest import ROOT
from tests.test_app import free_port

NEW_DOC = ("# Harbour cranes\n\nThe harbour of Tellmouth runs eleven cranes. The tallest crane "
           "lifts forty tonnes and was built in 1961.\n")


def started(port: int, corpus: Path, index: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QA_CORPUS_DIR": str(corpus),
           "QA_INDEX_DIR": str(index), "QA_INDEX_POLL_SECONDS": "2",
           "QA_RATE_LIMIT_PER_MINUTE": "100000", "QA_RATE_LIMIT_BURST": "10000",
           "QA_MAX_CONCURRENT_GENERATIONS": "4"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.replica_server", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def wait_ready(url: str, child: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert child.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            health = httpx.get(f"{url}/api/health", timeout=5).json()
            if health.get("status") == "ok":
                return str(health["index"]["build_id"])
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not start: {log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def replicas(tmp_path: Path, settings: Settings,
             embedder: Embedder) -> Iterator[tuple[list[str], Path, Path, str]]:
    corpus, index = tmp_path / "corpus", tmp_path / "shared" / "index"
    shutil.copytree(ROOT / "corpus", corpus)
    first = build_index([corpus], index, settings, embedder).index.version
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"replica{n}.log" for n in range(2)]
    children = [started(port, corpus, index, log) for port, log in zip(ports, logs,
                                                                           strict=True)]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        assert [wait_ready(u, c, g) for u, c, g in zip(urls, children, logs,
                                                       strict=True)] == [first, first]
        yield urls, corpus, index, first
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)


def test_replicas_swap_in_a_new_build_while_answering(replicas, settings: Settings,
                                                      embedder: Embedder) -> None:
    urls, corpus, index, first = replicas
    seen: list[tuple[int, int, str]] = []  # (replica, status, build id or answer)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not stop.is_set():
                url = urls[n % 2]
                if n % 4 < 2:
                    reply = http.post(f"{url}/api/search", json={"query": "harbour cranes"})
                    seen.append((n % 2, reply.status_code, reply.json().get("build_id", "")))
                else:
                    reply = http.post(f"{url}/api/ask", json={"question": "Who became members?"})
                    seen.append((n % 2, reply.status_code, reply.json().get("text", "")))
                n += 1
                time.sleep(0.1)

    asker = threading.Thread(target=client, daemon=True)
    asker.start()
    time.sleep(1.0)
    (corpus / "cranes.md").write_text(NEW_DOC, encoding="utf-8")
    new = build_index([corpus], index, settings, embedder).index.version
    built = time.monotonic()
    assert new != first
    on_new = set()
    while len(on_new) < 2 and time.monotonic() - built < 10:
        on_new = {n for n, url in enumerate(urls)
                  if httpx.get(f"{url}/api/health").json()["index"]["build_id"] == new}
        time.sleep(0.1)
    assert on_new == {0, 1}, f"not every replica serves {new} within 10 s"
    time.sleep(1.0)
    stop.set()
    asker.join(30)
    assert seen and all(status == 200 for _, status, _ in seen), \
        [s for s in seen if s[1] != 200][:5]
    searches = [(n, build) for n, status, build in seen if build in (first, new)]
    for replica in (0, 1):
        builds = [build for n, build in searches if n == replica]
        # Each replica answered from the old build, then from the new one, never back.
        assert builds[0] == first and builds[-1] == new
        assert builds == sorted(builds, key=lambda b: b == new)
    for url in urls:
        hits = httpx.post(f"{url}/api/search", json={"query": "How many cranes does the "
                                                     "harbour of Tellmouth run?"}).json()["hits"]
        assert hits[0]["source"] == "cranes.md"


def test_the_watcher_swaps_verified_builds_only(tmp_path: Path, settings: Settings,
                                                embedder: Embedder) -> None:
    from qa.answer.pipeline import QA
    from qa.serve.replica import IndexWatcher
    from tests.fakes import ScriptedGenerator

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(ROOT / "corpus", corpus)
    qa = QA(settings, build_index([corpus], index, settings, embedder).index, embedder,
            ScriptedGenerator("x"))
    watcher = IndexWatcher(qa, index, seconds=60)
    old = qa.index
    assert not watcher.check() and qa.index is old  # the same build: nothing to do
    (corpus / "cranes.md").write_text(NEW_DOC, encoding="utf-8")
    second = build_index([corpus], index, settings, embedder).index.version
    assert watcher.check() and qa.index.version == second
    assert "cranes.md" in {d.source for d in qa.index.documents.values()}
    # A build whose files fail verification is not swapped in; the index in use stays.
    (corpus / "more.md").write_text("# More\n\nA third document about tide tables.\n")
    build_index([corpus], index, settings, embedder)
    with open(index / "chunks.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n")
    assert not watcher.check() and qa.index.version == second
    shutil.rmtree(index)  # a folder gone (mid-swap, say): the index in use stays too
    assert not watcher.check() and qa.index.version == second
