"""Visitors' uploaded documents: each browser session's own index, in a folder of its own
under the server's upload folder; `UploadStore` bounds them all (one indexed at a time from a
bounded queue, a cap on their total size with the least recently used deleted first, idle
sessions deleted, everything deleted at shutdown); a session's PDFs get random ids for the
browser's viewer."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from qa.config import Settings
from qa.errors import IndexLoadError, UploadError
from qa.index.embedding import Embedder
from qa.index.store import Index, build_index
from qa.ingest.corpus import SUPPORTED_SUFFIXES, Skipped, load_paths
from qa.ingest.isolated import isolated_reader, too_long
from qa.progress import Reporter, silent_reporter
from qa.types import Document

log = logging.getLogger("qa.serve")
UPLOAD_SUFFIXES = SUPPORTED_SUFFIXES
Clock = Callable[[], float]
PDF_MAGIC = b"%PDF-"


@dataclass
class Uploads:
    """One browser session's own index of uploaded files, in its own folder."""

    folder: Path
    index: Index
    names: list[str]
    skipped: list[str] = field(default_factory=list)  # "name: reason" of files not indexed
    size: int = 0  # bytes on disk
    used: float = field(default_factory=time.monotonic)  # when a question last used them
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    pdfs: dict[str, str] = field(default_factory=dict)  # random id -> name, of the PDF files
    removed: str = ""  # why the files were deleted ("": they are still there)

    def close(self, reason: str = "they were removed") -> None:
        """Delete the session's files (their PDFs are no longer served); `removed` says why."""
        self.pdfs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.removed = self.removed or reason


def check_uploads(paths: Sequence[str | Path], settings: Settings) -> None:
    """UploadError when the files break the count, size or type limits of settings."""
    mb, count = settings.max_upload_mb, settings.max_upload_files
    if not paths:
        raise UploadError("no files were uploaded")
    if len(paths) > count:
        raise UploadError(f"too many files: {len(paths)} uploaded, at most {count} allowed")
    for path in map(Path, paths):
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise UploadError(f"{path.name}: unsupported file type (use "
                              f"{', '.join(UPLOAD_SUFFIXES)})")
        try:
            size = path.stat().st_size
        except OSError:
            continue  # gone already: that file's own line when it is copied
        if size > mb * 1024 * 1024:
            raise UploadError(f"{path.name} is {size / 1024 / 1024:.1f} MB; the limit is "
                              f"{mb:g} MB per file")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _within(documents: list[Document], limit: int) -> tuple[list[Document], list[str]]:
    """The documents, in order, while their text fits limit characters; lines for the rest."""
    kept, lines, total = [], [], 0
    for doc in documents:
        if total + len(doc.text) > limit:
            lines.append(f"{doc.source}: {too_long(len(doc.text), limit)}")
            continue
        total += len(doc.text)
        kept.append(doc)
    return kept, lines


def _line(skip: Skipped, docs: Path) -> str:
    name = skip.path.relative_to(docs) if skip.path.is_relative_to(docs) else skip.path.name
    return f"{name}: {skip.reason}"


def index_uploads(paths: Sequence[str | Path], settings: Settings, embedder: Embedder,
                  report: Reporter = silent_reporter, parent: Path | None = None) -> Uploads:
    """Check the limits, copy the files to a fresh folder (under parent), read each in a
    child process (qa.ingest.isolated) and index them there. A file that cannot be read, or
    whose text passes the session's limit, is left out with its line in `skipped`;
    UploadError when no file is left."""
    check_uploads(paths, settings)
    folder = Path(tempfile.mkdtemp(prefix="qa-upload-", dir=parent))
    try:
        docs = folder / "docs"
        docs.mkdir()
        names, lines = [], []
        for path in map(Path, paths):
            try:
                shutil.copyfile(path, docs / path.name)
            except OSError as exc:  # renamed or deleted since it was given
                lines.append(f"{path.name}: could not be read during the upload "
                             f"({exc.strerror or type(exc).__name__}); not indexed")
                continue
            names.append(path.name)
        read = isolated_reader(settings.upload_read_seconds, settings.upload_read_mb,
                               settings.max_upload_chars)
        documents, skipped = load_paths([docs], read)
        documents, over = _within(documents, settings.max_upload_chars)
        lines += [_line(s, docs) for s in skipped] + over
        if not documents:
            raise UploadError("no usable text in your files: " + "; ".join(lines))
        try:
            result = build_index([docs], folder / "index", settings, embedder, report,
                                 documents=documents, max_chunks=settings.max_upload_chunks)
        except IndexLoadError as exc:
            raise UploadError(str(exc).replace(str(docs) + os.sep, "")) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    lines += [_line(s, docs) for s in result.skipped]
    sources = {d.source for d in result.index.documents.values()}
    kept = [n for n in names if n in sources]
    pdfs = {secrets.token_urlsafe(16): name for name in dict.fromkeys(kept)
            if _is_pdf(docs / name)}
    return Uploads(folder=folder, index=result.index, names=kept, skipped=lines,
                   size=_folder_bytes(folder), pdfs=pdfs)


_Job = tuple[list[str], Reporter, "Future[Uploads]"]


class UploadStore:
    """Every session's uploads on this server: indexed one at a time by a worker from a queue
    of at most `upload_queue`, their total size kept under `max_upload_storage_mb` (the least
    recently used deleted first), sessions unused for `upload_idle_minutes` deleted."""

    def __init__(self, settings: Settings, embedder: Embedder,
                 clock: Clock = time.monotonic) -> None:
        self.settings, self.embedder, self.clock = settings, embedder, clock
        self.root = Path(tempfile.mkdtemp(prefix="qa-uploads-"))
        self.sessions: list[Uploads] = []
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=settings.upload_queue)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._index_jobs, name="qa-upload-indexer",
                                          daemon=True),
                         threading.Thread(target=self._sweep_idle, name="qa-upload-sweeper",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def idle_seconds(self) -> float:
        return self.settings.upload_idle_minutes * 60

    def index(self, paths: Sequence[str | Path], report: Reporter = silent_reporter) -> Uploads:
        """The session's new uploads, indexed when their turn in the queue comes; UploadError
        when the queue is full or a limit is broken."""
        check_uploads(paths, self.settings)  # at once, before waiting in the queue
        if self._stop.is_set():
            raise UploadError("the server is shutting down; upload again later")
        job: _Job = ([str(p) for p in paths], report, Future())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise UploadError("the server is busy indexing other visitors' uploads; try again "
                              "in a minute") from None
        return job[2].result()

    def _index_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            paths, report, future = job
            try:
                uploads = index_uploads(paths, self.settings, self.embedder, report, self.root)
                if self._stop.is_set():  # closed meanwhile: keep nothing
                    uploads.close("the server restarted")
                    raise UploadError("the server is shutting down; upload again later")
                self._add(uploads)
                future.set_result(uploads)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting visitor
                future.set_exception(exc)

    def _add(self, uploads: Uploads) -> None:
        """Keep uploads; delete the least recently used others while all exceed the cap."""
        cap = self.settings.max_upload_storage_mb * 1024 * 1024
        uploads.used = self.clock()
        with self._lock:
            self.sessions.append(uploads)
            for old in sorted(self.sessions[:-1], key=lambda u: u.used):
                if sum(u.size for u in self.sessions) <= cap:
                    break
                self._drop(old, "they were deleted to make room for newer uploads")

    def _drop(self, uploads: Uploads, reason: str) -> None:
        uploads.close(reason)
        self.sessions.remove(uploads)
        log.info("deleted uploads %s: %s", uploads.folder.name, reason)

    def touch(self, uploads: Uploads) -> None:
        """Note that a question used these uploads (they are not idle)."""
        uploads.used = self.clock()

    def release(self, uploads: Uploads | None) -> None:
        """Delete a session's uploads now (it replaced or left them)."""
        if uploads is None:
            return
        with self._lock:
            if uploads in self.sessions:
                self._drop(uploads, "they were replaced")
            else:
                uploads.close("they were replaced")

    def sweep(self) -> None:
        """Delete the uploads unused for longer than upload_idle_minutes."""
        now = self.clock()
        with self._lock:
            for uploads in [u for u in self.sessions if now - u.used > self.idle_seconds]:
                self._drop(uploads, f"they were unused for {self.settings.upload_idle_minutes:g}"
                                    " minutes")

    def _sweep_idle(self) -> None:
        while not self._stop.wait(min(60.0, max(0.1, self.idle_seconds / 4))):
            self.sweep()

    def close(self) -> None:
        """Stop the worker and delete every session's uploads (at shutdown)."""
        self._stop.set()
        while True:  # visitors still waiting in the queue get an answer
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[2].set_exception(UploadError("the server is shutting down; upload again "
                                                 "later"))
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(None)
        with self._lock:
            for uploads in list(self.sessions):
                self._drop(uploads, "the server restarted")
        shutil.rmtree(self.root, ignore_errors=True)


def _is_pdf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return path.suffix.lower() == ".pdf" and fh.read(len(PDF_MAGIC)) == PDF_MAGIC
