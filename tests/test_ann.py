"""Approximate FAISS (IVF) above a size setting: built, recorded, loaded and searched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest

from qa.config import Settings
from qa.errors import SettingsError
from qa.index.dense import build_dense, dense_kind, ivf_params
from qa.index.embedding import Embedder
from qa.index.store import Index, build_index, load_index
from qa.retrieve.hybrid import Retriever
from tests.synthetic import TOPICS, write_synthetic


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Unit vectors around 100 random centres (like embeddings, which cluster by topic)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, d), dtype=np.float32)
    x = centres[rng.integers(0, 100, n)] + rng.standard_normal((n, d), dtype=np.float32) * 0.08
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_size_setting_picks_the_type_and_a_forced_type_wins() -> None:
    settings = Settings(ann_min_vectors=1000)
    assert dense_kind(999, settings) == "flat" and dense_kind(1000, settings) == "ivf"
    assert dense_kind(10, replace(settings, dense_index="ivf")) == "ivf"
    assert dense_kind(10**7, replace(settings, dense_index="flat")) == "flat"
    assert ivf_params(1_000_000) == {"nlist": 1024, "nprobe": 128}
    assert ivf_params(20_000) == {"nlist": 128, "nprobe": 16}
    assert ivf_params(100) == {"nlist": 2, "nprobe": 1}  # at least 39 vectors per list
    with pytest.raises(SettingsError, match="dense_index"):
        Settings.from_env({"QA_DENSE_INDEX": "hnsw"})
    with pytest.raises(SettingsError, match="ann_nprobe"):
        Settings.from_env({"QA_ANN_NPROBE": "-1"})


def test_ivf_finds_the_exact_top_ten_for_most_queries() -> None:
    vectors = clustered(20_000, 64, seed=1)
    queries = clustered(200, 64, seed=2)
    ivf, record = build_dense(vectors, Settings(dense_index="ivf"))
    assert isinstance(ivf, faiss.IndexIVFFlat) and ivf.ntotal == 20_000
    assert record == {"type": "ivf", "metric": "inner_product", "nlist": 128, "nprobe": 16,
                      "train_vectors": 8192, "train_seed": 0}
    flat, flat_record = build_dense(vectors, Settings())
    assert isinstance(flat, faiss.IndexFlatIP) and flat_record == {"type": "flat"}
    _, exact = flat.search(queries, 10)
    _, approx = ivf.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    # The same vectors, the same index: training is seeded.
    again, _ = build_dense(vectors, Settings(dense_index="ivf"))
    assert (faiss.serialize_index(again) == faiss.serialize_index(ivf)).all()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic(folder, documents=24, sentences=30)
    return folder


@pytest.fixture(scope="module")
def exact(folder: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Index:
    out = tmp_path_factory.mktemp("exact") / "index"
    return build_index([folder], out, Settings(), embedder).index


def dense_hits(index: Index, embedder: Embedder, settings: Settings,
               query: str) -> list[tuple[str, float]]:
    retriever = Retriever(index, embedder, replace(settings, candidates=10))
    return [(h.chunk.id, h.dense_score) for h in retriever.search(query, 10, mode="dense")]


def test_a_forced_ivf_build_is_recorded_loaded_and_searched(folder: Path, exact: Index,
                                                            tmp_path: Path,
                                                            embedder: Embedder) -> None:
    settings = Settings(dense_index="ivf")
    out = tmp_path / "index"
    built = build_index([folder], out, settings, embedder).index
    n = len(exact.chunks)
    params = ivf_params(n)
    assert n >= 78 and params["nlist"] >= 2
    assert built.manifest["dense"] == {"type": "ivf", "metric": "inner_product", **params,
                                       "train_vectors": min(n, 64 * params["nlist"]),
                                       "train_seed": 0}
    assert exact.manifest["dense"] == {"type": "flat"}
    index = load_index(out, settings)
    assert isinstance(index.dense, faiss.IndexIVFFlat) and index.dense.nprobe == params["nprobe"]
    # The same chunks and vectors as the exact build: only the dense index differs.
    assert [c.id for c in index.chunks] == [c.id for c in exact.chunks]
    assert np.abs(index.vectors - exact.vectors).max() == 0.0
    queries = [f"the yearly survey of {topic}" for topic in TOPICS]
    # Every list searched (nprobe = nlist): the exact results, in the same order.
    every = replace(settings, ann_nprobe=params["nlist"])
    wide = load_index(out, every)
    assert wide.dense.nprobe == params["nlist"]
    for query in queries:
        assert dense_hits(wide, embedder, every, query) == dense_hits(exact, embedder,
                                                                      settings, query)
    # The recorded nprobe: each hit is a true neighbour with its exact score, and a chunk's
    # own text finds that chunk first.
    found = total = 0
    for query in queries:
        want = dict(dense_hits(exact, embedder, settings, query))
        got = dense_hits(index, embedder, settings, query)
        assert all(abs(score - exact_score(exact, embedder, cid, query)) < 1e-5
                   for cid, score in got)
        found += len(set(dict(got)) & set(want))
        total += len(want)
    assert found / total >= 0.5
    for chunk in exact.chunks[::10]:
        assert dense_hits(index, embedder, settings, chunk.text)[0][0] == chunk.id


def exact_score(index: Index, embedder: Embedder, chunk_id: str, query: str) -> float:
    row = index.row_of[chunk_id]
    return float(index.vectors[row] @ embedder.encode([query])[0])


def test_a_manifest_that_names_another_type_is_refused(folder: Path, tmp_path: Path,
                                                       embedder: Embedder) -> None:
    import json

    from qa.errors import IndexLoadError

    out = tmp_path / "index"
    build_index([folder], out, Settings(dense_index="ivf"), embedder)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["dense"] = {"type": "flat"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="IndexIVFFlat, the manifest says 'flat'"):
        load_index(out)
