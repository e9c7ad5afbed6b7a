"""The on-disk index: format, verification, atomic replace, incremental builds, staleness."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from qa.config import Settings
from qa.errors import IndexLoadError
from qa.files import sha256_file
from qa.index.embedding import Embedder
from qa.index.store import DATA_FILES, build_index, cleanup_leftovers, load_index, stale_reasons
from tests.conftest import ROOT


def test_committed_index_is_fresh_for_corpus_and_settings(settings: Settings,
                                                           embedder: Embedder) -> None:
    reasons = stale_reasons(ROOT / "index", [ROOT / "corpus"], settings, embedder)
    assert reasons == [], "index/ is stale: run `qa index build` and commit index/"
    index = load_index(ROOT / "index")
    assert [d.source for d in index.documents.values()] == ["sco-un-special-event-2018.txt"]


def test_index_layout_manifest_and_no_pickle(corpus_index) -> None:
    folder = corpus_index.path
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == sorted(["manifest.json", *DATA_FILES])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dimension"] == 384
    assert manifest["counts"] == {"documents": 1, "chunks": len(corpus_index.chunks)}
    assert manifest["embedder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["chunking"] == {"chunk_tokens": 128, "chunk_overlap_tokens": 32}
    for name in DATA_FILES:
        assert manifest["files"][name]["bytes"] == (folder / name).stat().st_size
    for npy in folder.rglob("*.npy"):
        # np.load without pickle must succeed: nothing in the index is a pickled object.
        assert np.load(npy, allow_pickle=False).dtype != object


def test_dense_index_matches_brute_force(corpus_index, embedder: Embedder) -> None:
    query = embedder.encode(["Which countries became full members?"])[0]
    scores, rows = corpus_index.dense.search(query[None, :], 3)
    reference = corpus_index.vectors @ query  # brute force over the stored unit vectors
    assert rows[0].tolist() == np.argsort(-reference)[:3].tolist()
    assert np.allclose(scores[0], np.sort(reference)[::-1][:3], atol=1e-5)
    assert np.allclose(np.linalg.norm(corpus_index.vectors, axis=1), 1.0, atol=1e-5)


def test_chunks_and_documents_round_trip(corpus_index) -> None:
    for chunk in corpus_index.chunks:
        assert corpus_index.documents[chunk.doc_id].text[chunk.start:chunk.end] == chunk.text


def _built(tmp_path: Path, settings: Settings, embedder: Embedder) -> Path:
    out = tmp_path / "index"
    build_index([ROOT / "corpus"], out, settings, embedder)
    return out


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "delete"])
def test_damaged_files_are_detected_before_loading(tmp_path: Path, settings: Settings,
                                                   embedder: Embedder, damage: str) -> None:
    out = _built(tmp_path, settings, embedder)
    target = out / "dense.faiss"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        target.unlink()
    with pytest.raises(IndexLoadError, match=r"dense\.faiss"):
        load_index(out)


def test_manifest_that_lies_about_counts_is_rejected(tmp_path: Path, settings: Settings,
                                                     embedder: Embedder) -> None:
    out = _built(tmp_path, settings, embedder)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["counts"]["chunks"] += 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="counts or dimension disagree"):
        load_index(out)


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match=r"no index at .* \(run: qa index build\)"):
        load_index(tmp_path / "nowhere")


def test_adding_a_file_embeds_only_new_chunks(tmp_path: Path, settings: Settings,
                                              corpus_copy: Path) -> None:
    counting = Embedder()
    out = tmp_path / "index"
    first = build_index([corpus_copy], out, settings, counting)
    assert first.encoded == len(first.index.chunks) and first.reused == 0
    (corpus_copy / "extra.md").write_text("# Extra\n\nThe extra note says the meeting was short.\n")
    before = counting.encoded
    second = build_index([corpus_copy], out, settings, counting)
    assert counting.encoded - before == second.encoded == 1
    assert second.reused == len(first.index.chunks)
    assert second.index.manifest["counts"] == {"documents": 2,
                                               "chunks": len(first.index.chunks) + 1}
    # Reused vectors equal freshly computed ones.
    fresh = Embedder().encode([c.text for c in second.index.chunks])
    assert np.allclose(second.index.vectors, fresh, atol=1e-5)


def test_stale_reasons_name_what_changed(tmp_path: Path, settings: Settings,
                                         embedder: Embedder, corpus_copy: Path) -> None:
    out = tmp_path / "index"
    build_index([corpus_copy], out, settings, embedder)
    assert stale_reasons(out, [corpus_copy], settings, embedder) == []
    (corpus_copy / "new.txt").write_text("A new document about something else entirely.\n")
    assert stale_reasons(out, [corpus_copy], settings, embedder) == [
        "corpus changed: new or edited ['new.txt'], removed or edited []"]
    other = Settings.from_env(chunk_tokens=64)
    reasons = stale_reasons(out, [corpus_copy], other, embedder)
    assert reasons[0].startswith("chunking changed")


def test_rebuild_replaces_atomically_and_cleans_leftovers(tmp_path: Path, settings: Settings,
                                                          embedder: Embedder) -> None:
    out = _built(tmp_path, settings, embedder)
    # Leftovers of an interrupted build: a temporary folder, and the old index moved aside
    # while the new one was not yet in place.
    (tmp_path / ".index.tmp-dead").mkdir()
    out.rename(tmp_path / ".index.old-dead")
    cleanup_leftovers(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]
    assert load_index(out).manifest["counts"]["documents"] == 1


def test_building_nothing_is_a_clear_error(tmp_path: Path, settings: Settings,
                                           embedder: Embedder) -> None:
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(IndexLoadError, match="no documents to index"):
        build_index([tmp_path], tmp_path / "index", settings, embedder)
    assert not (tmp_path / "index").exists()


def test_wrong_dimension_is_rejected(tmp_path: Path, settings: Settings,
                                     embedder: Embedder) -> None:
    out = _built(tmp_path, settings, embedder)
    manifest = json.loads((out / "manifest.json").read_text())
    faiss.write_index(faiss.IndexFlatIP(8), str(out / "dense.faiss"))
    manifest["files"]["dense.faiss"] = {"bytes": (out / "dense.faiss").stat().st_size,
                                        "sha256": sha256_file(out / "dense.faiss")}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="counts or dimension disagree"):
        load_index(out)
