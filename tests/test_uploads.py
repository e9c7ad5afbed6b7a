"""Visitors' uploads are bounded: per-session text and passages, one indexed at a time from a
bounded queue that answers interleave with, a cap on their total size (least recently used
deleted first), idle sessions deleted, everything deleted at shutdown."""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import UploadError
from qa.index.engine import EMBED_BATCH
from qa.serve.api import create_api
from qa.serve.gradio_app import ChatHandlers
from qa.serve.state import Models
from qa.serve.uploads import UploadStore
from tests.fakes import ScriptedGenerator
from tests.test_api import OPEN, REPLY, running
from tests.test_app import MEMBERS

ZOO = ("Zoo notes\n\nThe zebra named Oswald lives in the Lisbon zoo since 2019. He eats hay "
       "and carrots.\n")


def notes(folder: Path, name: str, sentences: int, start: int = 0) -> Path:
    """A text file of distinct sentences (no two passages alike)."""
    path = folder / name
    path.write_text("\n".join(f"Record {i}: the barge number {i * 7 + 3} carried {i % 97} "
                              f"crates of pepper to the harbour of Port {i % 31}."
                              for i in range(start, start + sentences)), encoding="utf-8")
    return path


@pytest.fixture
def stores(embedder) -> list[UploadStore]:
    made: list[UploadStore] = []
    yield made
    for store in made:
        store.close()


def store_with(stores: list[UploadStore], embedder, **settings: object) -> UploadStore:
    store = UploadStore(Settings.from_env(**settings), embedder)
    stores.append(store)
    return store


def test_per_session_limits_on_text_and_passages(stores, embedder, tmp_path: Path) -> None:
    big = notes(tmp_path, "big.txt", 400)  # about 36,000 characters, 60 passages
    store = store_with(stores, embedder, max_upload_chars=20_000)
    with pytest.raises(UploadError) as caught:
        store.index([big])
    assert str(caught.value) == (
        f"no usable text in your files: big.txt: its {len(big.read_text()):,} characters of "
        "text would pass the limit of 20,000 per session; not indexed")
    both = store.index([notes(tmp_path, "first.txt", 100), big])  # the first fits
    assert both.names == ["first.txt"] and both.skipped == [
        f"big.txt: its {len(big.read_text()):,} characters of text would pass the limit of "
        "20,000 per session; not indexed"]
    store = store_with(stores, embedder, max_upload_chunks=10)
    with pytest.raises(UploadError, match=r"^no document fits the limit of 10 passages: big.txt: "
                                          r"its \d+ passages would pass the limit of 10; not "
                                          r"indexed$"):
        store.index([big])
    assert list(store.root.iterdir()) == []  # nothing kept
    small = notes(tmp_path, "small.txt", 20)
    uploads = store.index([small])
    assert uploads.names == ["small.txt"] and 0 < len(uploads.index.chunks) <= 10
    assert uploads.folder.parent == store.root and uploads.size > small.stat().st_size


def test_the_queue_is_bounded(stores, embedder, tmp_path: Path) -> None:
    store = store_with(stores, embedder, upload_queue=1)
    gate, busy = threading.Event(), threading.Event()

    def held(what: str, done: int, total: int) -> None:
        busy.set()
        assert gate.wait(60)

    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(
        store.index([notes(tmp_path, "a.txt", 20)], held)))
    first.start()
    assert busy.wait(60)  # the worker indexes the first upload
    second = threading.Thread(target=lambda: results.append(
        store.index([notes(tmp_path, "b.txt", 20)])))
    second.start()
    deadline = time.monotonic() + 30
    while store._jobs.qsize() < 1:  # the second waits in the queue
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(UploadError, match=r"^the server is busy indexing other visitors' "
                                          r"uploads; try again in a minute$"):
        store.index([notes(tmp_path, "c.txt", 20)])
    gate.set()
    first.join(60)
    second.join(60)
    assert sorted(u.names[0] for u in results) == ["a.txt", "b.txt"]  # type: ignore[attr-defined]


def test_the_total_is_capped_least_recently_used_first(stores, embedder, tmp_path: Path) -> None:
    probe = store_with(stores, embedder)
    size = probe.index([notes(tmp_path, "probe.txt", 200)]).size
    store = store_with(stores, embedder, max_upload_storage_mb=2.5 * size / 1024 / 1024)
    a = store.index([notes(tmp_path, "a.txt", 200, 1000)])
    b = store.index([notes(tmp_path, "b.txt", 200, 2000)])
    store.touch(a)  # a was used after b was uploaded
    c = store.index([notes(tmp_path, "c.txt", 200, 3000)])
    assert store.sessions == [a, c]
    assert b.removed == "they were deleted to make room for newer uploads"
    assert not b.folder.exists() and a.folder.exists() and c.folder.exists()
    assert sum(u.size for u in store.sessions) <= store.settings.max_upload_storage_mb * 2**20


def test_idle_uploads_are_deleted_and_the_chat_says_so(stores, embedder, corpus_index,
                                                       tmp_path: Path) -> None:
    store = store_with(stores, embedder, upload_idle_minutes=0.01)  # 0.6 s
    (tmp_path / "zoo.txt").write_text(ZOO, encoding="utf-8")
    uploads = store.index([tmp_path / "zoo.txt"])
    deadline = time.monotonic() + 30
    while uploads.folder.exists():
        assert time.monotonic() < deadline, "idle uploads were not deleted"
        time.sleep(0.1)
    assert uploads.removed == "they were unused for 0.01 minutes" and store.sessions == []
    qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator(REPLY))
    handlers = ChatHandlers(qa, Models(qa), store)
    *_, (box, chat, _, _) = handlers.ask("Where does Oswald live?", [], 3, False, "", [],
                                         uploads)
    assert box == "Where does Oswald live?"
    assert html.unescape(chat[-1]["content"]).count(
        "Sorry, your uploaded documents are gone: they were unused for 0.01 minutes. Upload "
        "them again, or use the default documents.") == 1


@pytest.mark.slow  # embeds about 800 passages: a minute or two
def test_an_answer_does_not_wait_for_a_large_upload(corpus_index, embedder,
                                                    tmp_path: Path) -> None:
    generator = ScriptedGenerator(REPLY)
    qa = QA(Settings.from_env(), corpus_index, embedder, generator)
    app = create_api(qa, None, settings=OPEN)
    store: UploadStore = app.state.uploads
    large = notes(tmp_path, "large.txt", 5000)  # about 800 passages: many embedding batches
    progress: list[tuple[int, int]] = []
    indexed: list[object] = []
    with running(app) as url:
        upload = threading.Thread(target=lambda: indexed.append(store.index(
            [large], lambda what, done, total: progress.append((done, total)))))
        upload.start()
        deadline = time.monotonic() + 300
        while not progress:
            assert time.monotonic() < deadline, "the upload never started embedding"
            time.sleep(0.01)
        before = progress[-1][0]
        answer = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=300)
        after, total = progress[-1]
        upload.join(300)
    assert answer.status_code == 200 and answer.json()["text"] == REPLY
    # The answer's compute jobs each waited for at most the batch under way: it was done
    # while the upload still had most of its batches to go.
    assert total >= 10 * EMBED_BATCH and after < total
    assert after - before < total // 2, (before, after, total)
    assert len(indexed) == 1  # and the upload finished afterwards


def test_uploads_are_deleted_at_shutdown(corpus_index, embedder, tmp_path: Path) -> None:
    qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator(REPLY))
    app = create_api(qa, None, settings=OPEN)
    store: UploadStore = app.state.uploads
    (tmp_path / "zoo.txt").write_text(ZOO, encoding="utf-8")
    with running(app) as url:
        client = Client(url, verbose=False)
        note, *_ = client.predict([handle_file(tmp_path / "zoo.txt")], api_name="/upload")
        assert "Indexed zoo.txt (1 passage)" in html.unescape(note)
        [uploads] = store.sessions
        assert uploads.folder.is_dir() and uploads.folder.parent == store.root
        client.close()  # its heartbeat stream would hold the server's shutdown
    assert not store.root.exists() and uploads.removed == "the server restarted"
