"""Ours vs LangChain on the same corpus, embedder and FAISS: build time, latency, quality.

Needs the optional bench extra (not a project dependency):
    pip install langchain-community==0.4.2 langchain-text-splitters==1.1.3
Run: python bench/peer_langchain.py [--beir ../shared/data/scifact] [--docs N] [--queries 300]
LangChain's usual pipeline: RecursiveCharacterTextSplitter(1000, 200) + FAISS.from_documents +
similarity_search (dense only), with our MiniLM wrapped as a LangChain `Embeddings`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, pct, print_facts

from qa.config import Settings
from qa.eval.beir import beir_documents, collapse, load_beir, score_run
from qa.index.embedding import Embedder
from qa.index.store import build_index
from qa.retrieve.hybrid import Retriever


def langchain_embeddings(embedder: Embedder):
    """Our embedder behind LangChain's Embeddings interface (same model, same vectors)."""
    from langchain_core.embeddings import Embeddings

    class MiniLM(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.encode(texts, batch_size=64).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.encode([text])[0].tolist()

    return MiniLM()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beir", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--docs", type=int, default=0, help="first N documents (0: all)")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    import langchain_community
    import langchain_text_splitters
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    print_facts("peer comparison: ours vs LangChain")
    print(f"{'langchain':>12}: community {langchain_community.__version__}, text-splitters "
          f"{getattr(langchain_text_splitters, '__version__', '1.1.3')}")
    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    embedder.encode(["warm up"])
    data = load_beir(args.beir, "test")
    documents, id_map = beir_documents(data.corpus)
    documents = documents[: args.docs] if args.docs else documents
    judged = {q: data.queries[q] for q in data.qrels if q in data.queries}
    queries = list(judged.values())[: args.queries]

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ours = build_index([], Path(tmp) / "index", settings, embedder,
                           documents=documents).index
        ours_build = time.perf_counter() - started
    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    lc_docs = splitter.split_documents(
        [LCDocument(page_content=d.text, metadata={"doc_id": d.id}) for d in documents])
    store = FAISS.from_documents(lc_docs, langchain_embeddings(embedder))
    theirs_build = time.perf_counter() - started
    print(f"\ncorpus {args.beir.name}: {len(documents)} documents; ours: fusion "
          f"{settings.fusion} (rrf_k {settings.rrf_k}, dense_weight {settings.dense_weight}), "
          f"top_k {settings.top_k}, candidates {settings.candidates}")
    print(f"build   ours {ours_build:7.1f} s ({len(ours.chunks)} chunks, dense + BM25)   "
          f"theirs {theirs_build:7.1f} s ({len(lc_docs)} chunks, dense)   "
          f"ours/theirs {ours_build / theirs_build:.2f}   per chunk "
          f"{(ours_build / len(ours.chunks)) / (theirs_build / len(lc_docs)):.2f}")

    retriever = Retriever(ours, embedder, settings)
    timings: dict[str, list[float]] = {"ours hybrid": [], "ours dense": [], "theirs": []}
    for q in queries:
        for name, call, kwargs in (
                ("ours hybrid", retriever.search, {}),
                ("ours dense", retriever.search, {"mode": "dense"}),
                ("theirs", store.similarity_search, {"k": settings.top_k})):
            started = time.perf_counter()
            call(q, **kwargs)
            timings[name].append((time.perf_counter() - started) * 1000)
    base = pct(timings["theirs"], 50)
    for name, values in timings.items():
        print(f"latency {name:<12} p50 {pct(values, 50):6.1f} ms  p95 {pct(values, 95):6.1f} ms"
              f"  p50 ours/theirs {pct(values, 50) / base:.2f}" if name != "theirs" else
              f"latency {name:<12} p50 {pct(values, 50):6.1f} ms  p95 {pct(values, 95):6.1f} ms")
    if args.docs:
        print("(quality needs the whole corpus: run without --docs)")
        return
    runs: dict[str, dict[str, list[str]]] = {"ours hybrid": {}, "ours dense": {}, "theirs": {}}
    for qid, text in judged.items():
        runs["ours hybrid"][qid] = collapse(retriever.search(text, 400), id_map)[:100]
        runs["ours dense"][qid] = collapse(retriever.search(text, 400, mode="dense"),
                                           id_map)[:100]
        found = store.similarity_search(text, k=400)
        ranked = list(dict.fromkeys(d.metadata["doc_id"] for d in found))
        runs["theirs"][qid] = [b for d in ranked for b in id_map[d]][:100]
    for name, run in runs.items():
        print(f"quality {name:<12} {score_run(run, data.qrels)}")


if __name__ == "__main__":
    main()
