"""The embedder's backends: ONNX Runtime (int8, float32) against PyTorch, the export cache,
the fallback to PyTorch, and indexes that record the backend."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.onnx_encoder import cache_file
from qa.index.store import build_index, stale_reasons
from qa.ingest.chunking import chunk_document
from qa.ingest.corpus import load_paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def torch_embedder(cache: Path) -> Embedder:
    return Embedder(backend="torch", cache_dir=cache)


@pytest.fixture(scope="module")
def texts(torch_embedder: Embedder) -> list[str]:
    """Every chunk of the default corpus, and two short queries."""
    documents, _ = load_paths([ROOT / "corpus"])
    chunks = [c.text for d in documents
              for c in chunk_document(d, torch_embedder.token_offsets, 128, 32)]
    return [*chunks, "Who chaired the meeting?", "When did it take place?"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def test_onnx_float32_matches_torch(cache: Path, torch_embedder: Embedder,
                                    texts: list[str]) -> None:
    onnx = Embedder(backend="onnx", cache_dir=cache)
    reference, vectors = torch_embedder.encode(texts), onnx.encode(texts)
    assert onnx.backend == "onnx" and vectors.shape == reference.shape == (len(texts), 384)
    # The same float32 graph: the vectors differ by rounding only.
    assert cosines(vectors, reference).min() > 0.99999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_int8_stays_close_to_torch(cache: Path, torch_embedder: Embedder,
                                        texts: list[str]) -> None:
    int8 = Embedder(backend="onnx-int8", cache_dir=cache)
    reference, vectors = torch_embedder.encode(texts), int8.encode(texts)
    assert int8.backend == "onnx-int8"
    found = cosines(vectors, reference)
    # int8 weights cost a little: every vector within 0.985 cosine of torch's, on average
    # within 0.99; similarities between texts move by less than 0.05. Each query's best chunk
    # by int8 is torch's best or a near tie of it (within 0.01 by torch's scores: int8 kernels
    # differ between CPUs, and one query's top two are 0.003 apart), and torch's best is in
    # int8's top three.
    assert found.min() > 0.985 and found.mean() > 0.99
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors @ vectors.T - reference @ reference.T).max() < 0.05
    chunks = len(texts) - 2
    ours = vectors[chunks:] @ vectors[:chunks].T
    theirs = reference[chunks:] @ reference[:chunks].T
    picked = theirs[np.arange(len(theirs)), ours.argmax(1)]
    assert np.all(theirs.max(1) - picked < 0.01)
    top3 = np.argsort(-ours, axis=1)[:, :3]
    assert all(best in row for best, row in zip(theirs.argmax(1), top3, strict=True))
    # One text per run: a text's vector does not depend on the texts embedded with it.
    alone = np.stack([int8.encode([text])[0] for text in texts])
    assert np.array_equal(alone, vectors)


def test_the_export_is_made_once_and_reused(tmp_path: Path) -> None:
    first = Embedder(backend="onnx-int8", cache_dir=tmp_path)
    vector = first.encode(["the export cache"])
    file = cache_file(tmp_path, first.sha256, int8=True)
    assert first.onnx is not None and first.onnx.file == file and file.is_file()
    assert cache_file(tmp_path, first.sha256, int8=False).is_file()  # the float32 export
    stamp = file.stat().st_mtime_ns, file.stat().st_ino
    second = Embedder(backend="onnx-int8", cache_dir=tmp_path)
    assert np.array_equal(second.encode(["the export cache"]), vector)
    assert (file.stat().st_mtime_ns, file.stat().st_ino) == stamp
    assert "model" not in second.__dict__  # the PyTorch model was never loaded to export


def test_without_onnxruntime_it_falls_back_to_torch_with_one_log_line(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cache: Path,
        torch_embedder: Embedder) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as where the wheel is missing
    embedder = Embedder(backend="onnx-int8", cache_dir=cache)
    with caplog.at_level(logging.WARNING):
        vector = embedder.encode(["a fallback"])
    assert [r.getMessage() for r in caplog.records] == [
        "embedder: the onnx-int8 backend cannot load (import of onnxruntime halted; None in "
        "sys.modules); using torch"]
    assert embedder.backend == "torch" and "backend" not in embedder.record
    assert np.array_equal(vector, torch_embedder.encode(["a fallback"]))


def test_a_corrupt_export_falls_back_to_torch(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    embedder = Embedder(backend="onnx", cache_dir=tmp_path)
    file = cache_file(tmp_path, embedder.sha256, int8=False)
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING):
        assert embedder.backend == "torch"
    [record] = caplog.records
    assert record.getMessage().startswith("embedder: the onnx backend cannot load (")
    assert record.getMessage().endswith("); using torch")


def test_an_index_records_its_backend_and_goes_stale_when_it_changes(
        tmp_path: Path, settings: Settings, cache: Path, torch_embedder: Embedder,
        corpus_copy: Path) -> None:
    out = tmp_path / "index"
    first = build_index([corpus_copy], out, settings, torch_embedder)
    assert first.index.manifest["embedder"] == {"name": torch_embedder.name,
                                                "sha256": torch_embedder.sha256}
    int8 = Embedder(backend="onnx-int8", cache_dir=cache)
    assert stale_reasons(out, [corpus_copy], settings, torch_embedder) == []
    assert stale_reasons(out, [corpus_copy], settings, int8) == [
        f"embedder changed: index has {first.index.manifest['embedder']!r}, now "
        f"{int8.record!r}"]
    assert int8.record["backend"] == "onnx-int8"
    second = build_index([corpus_copy], out, settings, int8)  # no vector of torch reused
    assert second.encoded == len(second.index.chunks) and second.reused == 0
    assert second.index.manifest["embedder"] == int8.record
    assert stale_reasons(out, [corpus_copy], settings, int8) == []


def test_the_setting_chooses_the_backend(cache: Path) -> None:
    settings = Settings.from_env({"QA_EMBED_BACKEND": "torch", "QA_CACHE_DIR": str(cache)})
    embedder = Embedder.from_settings(settings)
    assert (embedder.requested, embedder.cache_dir) == ("torch", cache)
    assert embedder.onnx is None and embedder.backend == "torch"
    assert Embedder.from_settings(Settings.from_env({})).requested == "onnx-int8"


def test_onnx_tokens_and_offsets_equal_transformers_and_torch_is_never_imported(
        torch_embedder: Embedder, texts: list[str], settings: Settings) -> None:
    import subprocess

    onnx = Embedder(cache_dir=settings.cache_dir)
    long = " ".join(texts)  # beyond the 256-token limit: truncated the same way
    for text in [*texts, long, "naïve café — “quoted” 2018年"]:
        assert onnx.token_offsets(text) == torch_embedder.token_offsets(text)
        assert onnx.onnx.tokenizer.encode(text).ids == torch_embedder.model.tokenizer(  # type: ignore[union-attr]
            text, truncation=True, max_length=onnx.onnx.max_tokens)["input_ids"]  # type: ignore[union-attr]
    # Answering loads the ONNX embedder only: no torch (about half a gigabyte) in the process.
    onnx.encode(["made above: the export is cached"])
    script = ("import sys; from qa.config import Settings; from qa.index.embedding import "
              "Embedder; Embedder.from_settings(Settings.from_env()).encode(['a']);"
              "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=300)
