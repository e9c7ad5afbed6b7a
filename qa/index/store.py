"""The on-disk index: FAISS + BM25 + chunk and document tables + manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings
from qa.errors import IndexLoadError, IndexWriteError
from qa.files import exclusive, sha256_file
from qa.index.dense import build_dense, configure
from qa.index.embedding import Embedder
from qa.index.engine import Engine, LocalEngine
from qa.index.lexical import BM25_FILES, BM25_PARAMS, build_bm25, load_bm25
from qa.ingest.corpus import Skipped, load_paths
from qa.progress import Reporter, silent_reporter
from qa.types import Chunk, Document

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA_FILES = ("chunks.jsonl", "documents.jsonl", "dense.faiss",
              *(f"bm25/{name}" for name in BM25_FILES))




@dataclass
class Index:
    """A verified, loaded index."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: Any  # faiss.Index
    bm25: Any  # bm25s.BM25

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Chunk id -> its row in the dense index."""
        return {c.id: i for i, c in enumerate(self.chunks)}

    @property
    def version(self) -> str:
        """Identifies this build (hash of the manifest)."""
        return str(self.manifest.get("build_id", ""))


@dataclass(frozen=True)
class BuildResult:
    """What a build did: the new index, how many chunks were embedded or reused."""

    index: Index
    encoded: int
    reused: int
    skipped: list[Skipped]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _settings_record(settings: Settings, embedder: Embedder) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "embedder": embedder.record,
        "chunking": {"chunk_tokens": settings.chunk_tokens,
                     "chunk_overlap_tokens": settings.chunk_overlap_tokens},
        "bm25": BM25_PARAMS,
    }


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _document_row(doc: Document) -> dict[str, Any]:
    """A document as a row of documents.jsonl; `pages` only for a paged file, so that an
    index without any stays byte for byte what it was before pages were kept."""
    row = asdict(doc)
    if not doc.pages:
        del row["pages"]
    return row


def document_of_row(row: dict[str, Any]) -> Document:
    """A row of documents.jsonl (of any version) as a Document."""
    pages = tuple((int(a), int(b)) for a, b in row.pop("pages", ()))
    return Document(**row, pages=pages)


def _corpus_row(doc: Document) -> dict[str, Any]:
    row: dict[str, Any] = {"source": doc.source, "doc_id": doc.id, "title": doc.title,
                           "chars": len(doc.text)}
    if doc.pages:
        row["pages"] = len(doc.pages)
    return row


def _lock(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def recover(out: Path) -> None:
    """After a crash: restore an index moved aside by an interrupted swap and delete stale
    temporary folders (waits for a build in progress to finish)."""
    out = Path(out)
    if out.parent.is_dir():
        with exclusive(_lock(out)):
            cleanup_leftovers(out)


def cleanup_leftovers(out: Path) -> None:
    """Restore an index moved aside by an interrupted swap; delete stale temporary folders.
    Call only while holding the index's build lock (see `recover`)."""
    parent = out.parent
    if not parent.is_dir():
        return
    old = sorted(parent.glob(f".{out.name}.old-*"))
    if not out.exists() and old:
        os.replace(old[-1], out)
        old = old[:-1]
    for leftover in [*old, *parent.glob(f".{out.name}.tmp-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace out by tmp; a crash in between leaves the old index to restore."""
    if out.exists():
        aside = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, aside)
        os.replace(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, out)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reusable_vectors(out: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Vectors of a previous valid build with the same embedder, keyed by chunk text hash."""
    try:
        old = load_index(out)
    except IndexLoadError:
        return {}
    if old.manifest.get("embedder") != record["embedder"]:
        return {}
    return {_text_key(c.text): old.vectors[i] for i, c in enumerate(old.chunks)}


def build_index(paths: Sequence[str | Path], out: Path, settings: Settings,
                embedder: Embedder, report: Reporter = silent_reporter,
                documents: list[Document] | None = None,
                max_chunks: int | None = None, engine: Engine | None = None) -> BuildResult:
    """Load, chunk and embed documents (on engine: default, in this process); write the index
    to out atomically (one build of the same folder at a time). IndexLoadError, before any
    embedding, when there are more than max_chunks chunks."""
    engine = engine or LocalEngine()
    skipped: list[Skipped] = []
    if documents is None:
        documents, skipped = engine.load(paths)
    if not documents:
        raise IndexLoadError("no documents to index" + "".join(f"\n  {s}" for s in skipped))
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(_lock(out)):
            cleanup_leftovers(out)
            return _build(documents, skipped, out, settings, embedder, report, engine,
                          max_chunks)
    except OSError as exc:  # the folder or its lock file cannot be made
        raise IndexWriteError(f"could not write the index to {out}: "
                              f"{exc.strerror or exc}") from None


def _within_chunks(per_doc: list[tuple[Document, list[Chunk]]], limit: int,
                   skipped: list[Skipped]) -> tuple[list[tuple[Document, list[Chunk]]],
                                                    list[Skipped]]:
    """The documents, in order, while their chunks fit limit; the others skipped (an
    IndexLoadError when none fits)."""
    kept, total, skipped = [], 0, list(skipped)
    for doc, chunks in per_doc:
        if total + len(chunks) > limit:
            skipped.append(Skipped(Path(doc.source), f"its {len(chunks)} passages would pass "
                                                     f"the limit of {limit}; not indexed"))
            continue
        total += len(chunks)
        kept.append((doc, chunks))
    if not kept:
        raise IndexLoadError(f"no document fits the limit of {limit} passages: "
                             + "; ".join(f"{s.path}: {s.reason}" for s in skipped))
    return kept, skipped


def _build(documents: list[Document], skipped: list[Skipped], out: Path, settings: Settings,
           embedder: Embedder, report: Reporter, engine: Engine,
           max_chunks: int | None = None) -> BuildResult:
    import faiss

    record = _settings_record(settings, embedder)

    per_doc = list(zip(documents, engine.chunk(documents, embedder, settings), strict=True))
    if max_chunks is not None:
        per_doc, skipped = _within_chunks(per_doc, max_chunks, skipped)
    documents = [doc for doc, _ in per_doc]
    chunks = [c for _, doc_chunks in per_doc for c in doc_chunks]
    known = _reusable_vectors(out, record)
    # Similar lengths side by side: the embedder pads each batch to its longest text.
    todo = sorted((c.text for c in chunks if _text_key(c.text) not in known), key=len)
    fresh = {_text_key(text): vec for text, vec in
             zip(todo, engine.embed(todo, embedder, report), strict=True)}
    keys = [_text_key(c.text) for c in chunks]
    vectors = np.stack([fresh[k] if k in fresh else known[k] for k in keys]).astype(np.float32)

    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        _write_jsonl(tmp / "chunks.jsonl", [asdict(c) for c in chunks])
        _write_jsonl(tmp / "documents.jsonl", [_document_row(d) for d in documents])
        dense, dense_record = build_dense(vectors, settings)
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        (tmp / "bm25").mkdir()
        build_bm25([c.text for c in chunks], tmp / "bm25")
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)}
                 for name in DATA_FILES}
        manifest = {
            **record,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dimension": int(vectors.shape[1]),
            "dense": dense_record,
            "counts": {"documents": len(documents), "chunks": len(chunks)},
            "corpus": [_corpus_row(d) for d in documents],
            "files": files,
        }
        manifest["build_id"] = hashlib.sha256(
            json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
        _fsync_tree(tmp)
        _swap_in(tmp, out)
    except (OSError, RuntimeError) as exc:  # faiss reports a failed write as RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise IndexWriteError(f"could not write the index to {out}: {reason}; "
                              "the previous index is unchanged") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(index=load_index(out, settings), encoded=len(todo),
                       reused=len(chunks) - len(todo), skipped=skipped)


def read_manifest(path: Path) -> dict[str, Any]:
    """The parsed manifest, or IndexLoadError saying why it cannot be read."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexLoadError(f"no index at {path} (run: qa index build)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexLoadError(f"unreadable manifest in {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexLoadError(f"index at {path} has an unknown format (expected {FORMAT_VERSION})")
    return manifest


def verify(path: Path) -> dict[str, Any]:
    """Check every listed file's size and sha256 against the manifest; return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(DATA_FILES):
        raise IndexLoadError(f"index at {path}: manifest does not list the expected files")
    for name, meta in files.items():
        target = path / name
        if not target.is_file():
            raise IndexLoadError(f"index at {path}: {name} is missing")
        if target.stat().st_size != meta.get("bytes"):
            raise IndexLoadError(
                f"index at {path}: {name} has the wrong size (truncated or changed)")
        if sha256_file(target) != meta.get("sha256"):
            raise IndexLoadError(f"index at {path}: {name} fails its sha256 check (corrupt)")
    return manifest


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_index(path: Path, settings: Settings | None = None) -> Index:
    """Verify hashes, then load; IndexLoadError with a clear reason on any problem.
    settings: the search parameters of an approximate index (default: the recorded ones)."""
    import faiss

    path = Path(path)
    manifest = verify(path)
    try:
        chunks = [Chunk(**row) for row in _read_jsonl(path / "chunks.jsonl")]
        documents = {row["id"]: document_of_row(row)
                     for row in _read_jsonl(path / "documents.jsonl")}
        dense = configure(faiss.read_index(str(path / "dense.faiss")), manifest.get("dense"),
                          settings or Settings())
        bm25 = load_bm25(path / "bm25")
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexLoadError(f"index at {path} cannot be loaded: {exc}") from None
    counts = manifest.get("counts", {})
    if (len(chunks) != counts.get("chunks") or dense.ntotal != len(chunks)
            or len(documents) != counts.get("documents")
            or dense.d != manifest.get("dimension")):
        raise IndexLoadError(f"index at {path}: counts or dimension disagree with the manifest")
    for c in chunks:
        doc = documents.get(c.doc_id)
        if doc is None or doc.text[c.start:c.end] != c.text:
            raise IndexLoadError(f"index at {path}: chunk {c.id} does not match its document")
    vectors = dense.reconstruct_n(0, dense.ntotal)
    return Index(path=path, manifest=manifest, documents=documents, chunks=chunks,
                 vectors=vectors, dense=dense, bm25=bm25)


def stale_reasons(path: Path, paths: Sequence[str | Path], settings: Settings,
                  embedder: Embedder) -> list[str]:
    """Why the index at path does not match the corpus and settings (empty when fresh)."""
    try:
        manifest = read_manifest(path)
    except IndexLoadError as exc:
        return [str(exc)]
    reasons = []
    for key, value in _settings_record(settings, embedder).items():
        if manifest.get(key) != value:
            reasons.append(f"{key} changed: index has {manifest.get(key)!r}, now {value!r}")
    documents, _ = load_paths(paths)
    # A paged file indexed before pages were kept counts as changed: rebuilt, it cites pages.
    now = {(d.source, d.id, len(d.pages)) for d in documents}
    then = {(row.get("source"), row.get("doc_id"), row.get("pages", 0))
            for row in manifest.get("corpus", [])}
    if now != then:
        added = sorted(s for s, _, _ in now - then)
        removed = sorted(str(s) for s, _, _ in then - now)
        reasons.append(f"corpus changed: new or edited {added}, removed or edited {removed}")
    return reasons
