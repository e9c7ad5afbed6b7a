"""Index builds on a Ray cluster (`qa index build --engine ray`): Ray Data reads the files,
chunks the documents and embeds the chunks (`map_batches`, one embedder per worker actor);
qa.index.store then writes, verifies and swaps the index as for a local build.

Ray is an optional extra (`pip install '.[ray]'`). Every node needs this package and the
embedder installed (the same versions), as the driver has them; Ray restarts an actor whose
process dies and retries its batch, and a build that fails anyway leaves the old index as it
was (nothing is written before every vector is back).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import EmbedBackend, Settings
from qa.errors import IndexWriteError, UsageError
from qa.index.embedding import Embedder
from qa.index.engine import batches, chunk_one
from qa.index.store import document_of_row
from qa.ingest.corpus import Skipped, collected, files_under, load_file
from qa.progress import Reporter
from qa.types import Chunk, Document

RAY_VERSION = "2.60.0"
INSTALL = f"pip install '.[ray]' (or pip install 'ray[data]=={RAY_VERSION}')"
OBJECT_STORE_MB = 500  # a local cluster's shared-memory object store


def _read_files(batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """A Ray Data batch of (path, source) -> the document (JSON) and skip (JSON) of each."""
    docs, skips = [], []
    for path, source in zip(batch["path"], batch["source"], strict=True):
        doc, skip = load_file(Path(str(path)), str(source))
        docs.append(json.dumps(asdict(doc)) if doc is not None else "")
        skips.append(json.dumps({"path": str(skip.path), "reason": skip.reason,
                                 "partial": skip.partial}) if skip is not None else "")
    return {"path": [str(p) for p in batch["path"]], "doc": docs, "skip": skips}


class _Worker:
    """What one Ray actor holds: an embedder, loaded once (its tokenizer chunks too)."""

    def __init__(self, settings: dict[str, Any], backend: EmbedBackend) -> None:
        self.settings = Settings(**{**settings, "corpus_dir": Path(settings["corpus_dir"]),
                                    "index_dir": Path(settings["index_dir"]),
                                    "cache_dir": Path(settings["cache_dir"])})
        self.embedder = Embedder(threads=1, backend=backend, cache_dir=self.settings.cache_dir)
        if self.embedder.backend != backend:  # a torch fallback would give other vectors
            raise RuntimeError(f"the embedder runs on {self.embedder.backend} on this node, "
                               f"not {backend} as on the driver")


class _Chunker(_Worker):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out = []
        for raw in batch["doc"]:
            doc = document_of_row(json.loads(str(raw)))
            out.append(json.dumps([asdict(c) for c in chunk_one(doc, self.embedder,
                                                                 self.settings)]))
        return {"i": batch["i"], "chunks": out}


class _Encoder(_Worker):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows: list[int] = []
        vectors = []
        for start, raw in zip(batch["start"], batch["texts"], strict=True):
            texts = json.loads(str(raw))
            vectors.append(self.embedder.encode(texts))
            rows.extend(range(int(start), int(start) + len(texts)))
        return {"row": np.array(rows, dtype=np.int64), "vector": np.concatenate(vectors)}


def _reachable(address: str) -> None:
    """UsageError unless a head's host:port accepts a connection (ray.init would wait for
    minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address must be 'auto' or a head's host:port, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: "
                         f"{exc.strerror or exc}") from None


def _settings_dict(settings: Settings) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}


class RayEngine:
    """Loading, chunking and embedding as Ray Data tasks on a cluster: `address` ('auto', or
    a head's address) or, by default, a local one of num_cpus CPUs."""

    name = "ray"

    def __init__(self, settings: Settings, address: str | None = None,
                 num_cpus: int | None = None, object_store_mb: int = OBJECT_STORE_MB) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(f"--engine ray needs Ray: {INSTALL}") from None
        self.ray = ray
        self.settings = settings
        if not ray.is_initialized():
            env = {"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                "OMP_NUM_THREADS": "1"}}
            if address and address != "auto" and "://" not in address:
                _reachable(address)
            try:
                if address:
                    ray.init(address=address, runtime_env=env, log_to_driver=False)
                else:
                    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                             object_store_memory=object_store_mb * 2**20, runtime_env=env,
                             log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"cannot start or reach the Ray cluster "
                                 f"{address or '(local)'}: {exc}") from None
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-stage plan lines
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        self.actors = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]

    def _failed(self, exc: Exception) -> IndexWriteError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return IndexWriteError(f"the Ray build failed ({type(exc).__name__}: {first}); "
                               "the previous index is unchanged")

    def _map(self, rows: list[dict[str, Any]], worker: type[_Worker], backend: EmbedBackend,
             ) -> Any:
        ds = self.ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows),
                                                                           4 * self.actors)))
        pool = self.ray.data.ActorPoolStrategy(size=min(self.actors, len(rows)))
        return ds.map_batches(worker, batch_size=1, num_cpus=1, compute=pool,
                              fn_constructor_kwargs={"settings": _settings_dict(self.settings),
                                                     "backend": backend})

    def load(self, paths: Sequence[str | Path]) -> tuple[list[Document], list[Skipped]]:
        files, skipped = files_under(paths)
        if not files:
            return collected([], skipped)
        rows = [{"path": str(p), "source": s} for p, s in files]
        try:
            ds = self.ray.data.from_items(rows, override_num_blocks=min(len(rows),
                                                                        4 * self.actors))
            out = ds.map_batches(_read_files, batch_size=8).take_all()
        except self.ray.exceptions.RayError as exc:
            raise self._failed(exc) from exc
        results = []
        for row in out:
            doc = document_of_row(json.loads(row["doc"])) if row["doc"] else None
            skip = Skipped(**{**json.loads(row["skip"]), "path": Path(json.loads(
                row["skip"])["path"])}) if row["skip"] else None
            results.append((Path(row["path"]), doc, skip))
        return collected(results, skipped)

    def chunk(self, documents: list[Document], embedder: Embedder,
              settings: Settings) -> list[list[Chunk]]:
        if not documents:
            return []
        rows = [{"i": i, "doc": json.dumps(asdict(d))} for i, d in enumerate(documents)]
        per_doc: list[list[Chunk]] = [[] for _ in documents]
        try:
            for row in self._map(rows, _Chunker, embedder.backend).iter_rows():
                per_doc[int(row["i"])] = [Chunk(**c) for c in json.loads(row["chunks"])]
        except self.ray.exceptions.RayError as exc:
            raise self._failed(exc) from exc
        return per_doc

    def embed(self, texts: list[str], embedder: Embedder, report: Reporter) -> np.ndarray:
        out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
        if not texts:
            return out
        rows, start = [], 0
        for group in batches(texts):
            rows.append({"start": start, "texts": json.dumps(group)})
            start += len(group)
        done = 0
        try:
            for batch in self._map(rows, _Encoder, embedder.backend).iter_batches(
                    batch_size=None, batch_format="numpy"):
                out[batch["row"]] = batch["vector"]
                done += len(batch["row"])
                report("Embedding chunks", done, len(texts))
        except self.ray.exceptions.RayError as exc:
            raise self._failed(exc) from exc
        if done != len(texts):
            raise IndexWriteError(f"the Ray build returned {done} of {len(texts)} vectors; "
                                  "the previous index is unchanged")
        return out
