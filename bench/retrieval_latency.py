"""Retrieval latency p50/p95 per mode on the SciFact index (built once into the cache).

Run: python bench/retrieval_latency.py [--beir ../shared/data/scifact] [--queries 300]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import SHARED_DATA, pct, peak_rss_mib, print_facts

from qa.config import Settings
from qa.eval.beir import MODES, beir_documents, cached_index, load_beir
from qa.index.embedding import Embedder
from qa.progress import print_reporter
from qa.retrieve.hybrid import Retriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beir", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--faiss-threads", type=int, default=0,
                        help="OpenMP threads for FAISS (0: its default, one per core)")
    args = parser.parse_args()
    if args.faiss_threads:
        import faiss

        faiss.omp_set_num_threads(args.faiss_threads)
    print_facts("retrieval latency")
    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    data = load_beir(args.beir, "test")
    documents, _ = beir_documents(data.corpus)
    index, _ = cached_index(args.beir.resolve().name, documents, settings, embedder,
                            print_reporter)
    queries = list(data.queries.values())[: args.queries]
    retriever = Retriever(index, embedder, settings)
    for q in queries[:10]:  # warm up
        retriever.search(q)
    print(f"{'index':>12}: {len(index.chunks)} chunks, {len(index.documents)} documents")
    print(f"{'settings':>12}: top_k {settings.top_k}, candidates {settings.candidates}, "
          f"fusion {settings.fusion}; {len(queries)} queries, one at a time; "
          f"FAISS threads {args.faiss_threads or 'default'}")
    embed_ms = []
    for q in queries:
        started = time.perf_counter()
        embedder.encode([q])
        embed_ms.append((time.perf_counter() - started) * 1000)
    print(f"{'embed only':>12}: p50 {pct(embed_ms, 50):6.1f} ms  p95 {pct(embed_ms, 95):6.1f} ms")
    for mode in MODES:
        times = []
        for q in queries:
            started = time.perf_counter()
            retriever.search(q, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
        print(f"{mode:>12}: p50 {pct(times, 50):6.1f} ms  p95 {pct(times, 95):6.1f} ms "
              "(query embedding + FAISS + BM25 + fusion)")
    print(f"{'peak RSS':>12}: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
