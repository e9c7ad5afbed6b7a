"""BEIR-format retrieval evaluation: load, index (cached), retrieve, collapse, score."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.errors import BeirFormatError, IndexLoadError
from qa.eval.jsonl import jsonl_rows
from qa.eval.metrics import mean, mrr_at_k, ndcg_at_k, recall_at_k
from qa.index.embedding import Embedder
from qa.index.lexical import BM25_PARAMS
from qa.index.store import FORMAT_VERSION, Index, build_index, load_index
from qa.ingest.corpus import document_id
from qa.progress import Reporter, silent_reporter
from qa.types import Document, Hit

MODES = ("dense", "bm25", "hybrid")
DOC_DEPTH = 100  # documents ranked per query (enough for Recall@100)



@dataclass(frozen=True)
class BeirData:
    """A BEIR data set: corpus rows (id, title, text), queries and graded qrels of one split."""

    corpus: list[tuple[str, str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    try:
        for number, row in jsonl_rows(path, BeirFormatError):
            if not isinstance(row, dict) or "_id" not in row:
                raise BeirFormatError(f"{path}:{number}: needs an '_id'")
            yield row
    except FileNotFoundError:
        raise BeirFormatError(f"{path} is missing (not a BEIR folder?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BeirFormatError(f"cannot read {path}: {exc}") from None


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {corpus id: grade} from a BEIR qrels TSV (header line optional)."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for number, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
                if not row or (number == 1 and row[0] == "query-id"):
                    continue
                if len(row) != 3:
                    raise BeirFormatError(f"{path}:{number}: expected 3 tab-separated fields")
                try:
                    grade = int(float(row[2]))
                except ValueError:
                    raise BeirFormatError(f"{path}:{number}: score is not a number") from None
                qrels.setdefault(row[0], {})[row[1]] = grade
    except FileNotFoundError:
        raise BeirFormatError(f"{path} is missing (no such split?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BeirFormatError(f"cannot read {path}: {exc}") from None
    return qrels


def load_beir(folder: Path, split: str = "test") -> BeirData:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv of a BEIR folder."""
    folder = Path(folder)
    corpus = [(str(r["_id"]), str(r.get("title") or ""), str(r.get("text") or ""))
              for r in _read_jsonl(folder / "corpus.jsonl")]
    queries = {str(r["_id"]): str(r.get("text") or "")
               for r in _read_jsonl(folder / "queries.jsonl")}
    return BeirData(corpus=corpus, queries=queries,
                    qrels=read_qrels(folder / "qrels" / f"{split}.tsv"))


def beir_text(title: str, text: str) -> str:
    """The document text indexed for a BEIR row: title, blank line, text."""
    return f"{title}\n\n{text}" if title.strip() else text


def beir_documents(corpus: Sequence[tuple[str, str, str]],
                   ) -> tuple[list[Document], dict[str, list[str]]]:
    """Documents (content-hash ids) and doc id -> BEIR ids (several if texts are identical)."""
    documents: dict[str, Document] = {}
    id_map: dict[str, list[str]] = {}
    for beir_id, title, text in corpus:
        full = beir_text(title, text)
        if not full.strip():
            continue
        doc_id = document_id(full)
        documents.setdefault(doc_id, Document(id=doc_id, source=beir_id, title=title or beir_id,
                                              text=full))
        id_map.setdefault(doc_id, []).append(beir_id)
    return list(documents.values()), id_map


def collapse(hits: Sequence[Hit], id_map: dict[str, list[str]] | None = None) -> list[str]:
    """Ranked document ids from ranked chunk hits: each document at its best chunk's place."""
    ranked: list[str] = []
    seen: set[str] = set()
    for hit in sorted(hits, key=lambda h: h.rank):
        doc_id = hit.chunk.doc_id
        if doc_id in seen:
            continue
        seen.add(doc_id)
        ranked.extend(id_map.get(doc_id, [doc_id]) if id_map is not None else [doc_id])
    return ranked


def score_run(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over the queries that have qrels."""
    judged = [q for q in run if qrels.get(q)]
    return {
        "ndcg@10": round(mean(ndcg_at_k(run[q], qrels[q], 10) for q in judged), 4),
        "recall@10": round(mean(recall_at_k(run[q], qrels[q], 10) for q in judged), 4),
        "recall@100": round(mean(recall_at_k(run[q], qrels[q], 100) for q in judged), 4),
        "mrr@10": round(mean(mrr_at_k(run[q], qrels[q], 10) for q in judged), 4),
    }


def cache_key(documents: Sequence[Document], settings: Settings, embedder: Embedder) -> str:
    """Hash of the documents and of every setting that changes the built index."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(json.dumps([doc.id, doc.source, doc.title]).encode())
    digest.update(json.dumps({
        "format": FORMAT_VERSION, "embedder": embedder.record, "bm25": BM25_PARAMS,
        "chunk_tokens": settings.chunk_tokens, "overlap": settings.chunk_overlap_tokens,
    }, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cached_index(name: str, documents: list[Document], settings: Settings, embedder: Embedder,
                 report: Reporter = silent_reporter) -> tuple[Index, bool]:
    """Load the index of these documents from the cache, or build it there; (index, built)."""
    key = cache_key(documents, settings, embedder)
    folder = Path(settings.cache_dir) / "eval" / f"{name}-{key}"
    try:
        return load_index(folder), False
    except IndexLoadError:
        pass
    return build_index([], folder, settings, embedder, report, documents=documents).index, True


def depth_for(index: Index, docs: int = DOC_DEPTH) -> int:
    """Chunks to retrieve so that about `docs` distinct documents come back."""
    per_doc = len(index.chunks) / max(1, len(index.documents))
    return min(len(index.chunks), max(docs, int(docs * per_doc * 2)))


def run_queries(retriever: Any, queries: dict[str, str], mode: str, depth: int,
                id_map: dict[str, list[str]] | None = None,
                report: Reporter = silent_reporter) -> tuple[dict[str, list[str]], list[float]]:
    """Ranked document ids per query for one mode, and each query's latency in ms."""
    run: dict[str, list[str]] = {}
    latencies: list[float] = []
    for i, (qid, text) in enumerate(queries.items(), 1):
        started = time.perf_counter()
        hits = retriever.search(text, depth, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        run[qid] = collapse(hits, id_map)[:DOC_DEPTH]
        report(f"Retrieving ({mode})", i, len(queries))
    return run, latencies


def evaluate_beir(data: BeirData, index: Index, embedder: Embedder, settings: Settings,
                  modes: Sequence[str] = MODES, depth: int | None = None,
                  report: Reporter = silent_reporter) -> dict[str, dict[str, float]]:
    """Scores per mode over the judged queries of data (chunks collapsed to documents)."""
    from qa.retrieve.hybrid import Retriever

    _, id_map = beir_documents(data.corpus)
    retriever = Retriever(index, embedder, settings)
    queries = {q: data.queries[q] for q in data.qrels if q in data.queries and data.qrels[q]}
    depth = depth or depth_for(index)
    results = {}
    for mode in modes:
        run, _ = run_queries(retriever, queries, mode, depth, id_map, report)
        results[mode] = score_run(run, data.qrels)
    return results
