"""Ours vs LlamaIndex's default pipeline on the same corpus, MiniLM folder and FAISS flat index.

Needs the bench extra: pip install -e '.[bench]'
Run: python bench/peer_llamaindex.py [--beir ../shared/data/scifact] [--docs N]
Theirs: `VectorStoreIndex.from_documents` with its defaults (SentenceSplitter 1,024 tokens,
200 overlap; HuggingFaceEmbedding on the packaged MiniLM folder, batch 10, PyTorch) into a
`FaissVectorStore` over `faiss.IndexFlatL2`. Ours: `build_index` (chunking, embedding with
QA_EMBED_BACKEND, FAISS + BM25, manifest) as `qa index build` runs it. Both builds in this one
process, one after the other; model loading is not timed on either side. Our index is then
kept in the evaluation cache, where `qa eval retrieval` finds it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, pct, print_facts

from qa.config import Settings
from qa.eval.beir import beir_documents, cache_key, evaluate_beir, load_beir, score_run
from qa.index.embedding import Embedder, embedder_path
from qa.index.store import build_index, load_index


def rss_mib(field: str = "VmRSS") -> float:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beir", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--docs", type=int, default=0, help="first N documents (0: all)")
    args = parser.parse_args()
    import faiss
    import llama_index.core
    from llama_index.core import Document as LIDocument
    from llama_index.core import Settings as LISettings
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    print_facts("peer comparison: ours vs LlamaIndex")
    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    embedder.encode(["warm up"])
    print(f"{'llama-index':>12}: core {llama_index.core.__version__}; ours: embed backend "
          f"{embedder.backend}, threads {settings.threads}")
    data = load_beir(args.beir, "test")
    documents, id_map = beir_documents(data.corpus)
    documents = documents[: args.docs] if args.docs else documents
    judged = {q: data.queries[q] for q in data.qrels if q in data.queries and data.qrels[q]}

    before = rss_mib()
    reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build_index([], Path(tmp) / "index", settings, embedder, documents=documents)
        ours_s = time.perf_counter() - started
        ours_peak = rss_mib("VmHWM")
        cached = Path(settings.cache_dir) / "eval" / (
            f"{args.beir.resolve().name}-{cache_key(documents, settings, embedder)}")
        if not args.docs and not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(Path(tmp) / "index", cached)
        ours = load_index(cached) if not args.docs else load_index(Path(tmp) / "index")

    embed = HuggingFaceEmbedding(model_name=str(embedder_path()), device="cpu")
    LISettings.embed_model = embed
    LISettings.llm = None
    embed.get_text_embedding("warm up")
    theirs_before = rss_mib()
    reset_peak()
    started = time.perf_counter()
    store = FaissVectorStore(faiss_index=faiss.IndexFlatL2(embedder.dimension))
    theirs = VectorStoreIndex.from_documents(
        [LIDocument(text=d.text, id_=d.id) for d in documents],
        storage_context=StorageContext.from_defaults(vector_store=store))
    theirs_s = time.perf_counter() - started
    theirs_peak = rss_mib("VmHWM")
    nodes = len(theirs.docstore.docs)

    n = len(documents)
    print(f"\ncorpus {args.beir.name}: {n} documents")
    print(f"build   ours   {ours_s:7.1f} s  {n / ours_s:6.1f} documents/s  "
          f"{len(ours.chunks)} chunks (dense + BM25)  peak RSS {ours_peak:.0f} MiB "
          f"(from {before:.0f})")
    print(f"build   theirs {theirs_s:7.1f} s  {n / theirs_s:6.1f} documents/s  "
          f"{nodes} nodes (dense)  peak RSS {theirs_peak:.0f} MiB (from {theirs_before:.0f})")
    print(f"ratio   ours/theirs {ours_s / theirs_s:.2f} (goal <= 0.67)")

    queries = list(judged.values())
    ours_ms, theirs_ms = [], []
    for q in queries:
        started = time.perf_counter()
        embedder.encode([q])
        ours_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        embed.get_query_embedding(q)
        theirs_ms.append((time.perf_counter() - started) * 1000)
    print(f"query embedding p50 / p95: ours {pct(ours_ms, 50):.1f} / {pct(ours_ms, 95):.1f} ms, "
          f"theirs {pct(theirs_ms, 50):.1f} / {pct(theirs_ms, 95):.1f} ms")
    if args.docs:
        print("(quality needs the whole corpus: run without --docs)")
        return
    scores = evaluate_beir(data, ours, embedder, settings, ("hybrid", "dense"))
    retriever = theirs.as_retriever(similarity_top_k=400)
    run: dict[str, list[str]] = {}
    for qid, text in judged.items():
        ranked = dict.fromkeys(h.node.ref_doc_id for h in retriever.retrieve(text))
        run[qid] = [b for d in ranked if d is not None for b in id_map[d]][:100]
    print(f"quality ours hybrid {scores['hybrid']}")
    print(f"quality ours dense  {scores['dense']}")
    print(f"quality theirs      {score_run(run, data.qrels)}")


if __name__ == "__main__":
    main()
