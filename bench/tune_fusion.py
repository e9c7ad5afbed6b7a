"""Tune BM25 (k1, b) and hybrid fusion (rrf_k, dense_weight) on a BEIR *train* split.

Run: python bench/tune_fusion.py [--beir ../shared/data/scifact] [--split train]
Dense and BM25 scores of every chunk are computed once per query; fusion is then replayed in
NumPy exactly as `qa.retrieve.hybrid.Retriever` does it (checked against it on the first queries),
so a grid of settings takes seconds. Documents are ranked by their best chunk.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import bm25s
import numpy as np
from common import SHARED_DATA, print_facts

from qa.config import Settings
from qa.eval.beir import beir_documents, cached_index, collapse, depth_for, load_beir, score_run
from qa.index.embedding import Embedder
from qa.index.lexical import BM25_PARAMS, bm25_scores, load_bm25, tokenize
from qa.progress import print_reporter


def bm25_variant(texts: list[str], k1: float, b: float):
    """A BM25 model over texts with other k1/b (saved and loaded like the store does)."""
    model = bm25s.BM25(k1=k1, b=b, method=BM25_PARAMS["method"])
    model.index(tokenize(texts), show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, allow_pickle=False, show_progress=False)
        return load_bm25(Path(tmp))


def fuse(dense: np.ndarray, sparse: np.ndarray, mode: str, pool: int, depth: int,
         fusion: str = "rrf", rrf_k: int = 60, w: float = 0.5) -> list[int]:
    """Chunk rows ranked like Retriever.search (same candidates, scores and tie-breaks)."""
    dense_rows = [int(r) for r in np.argsort(-dense, kind="stable")[:pool]]
    sparse_rows = [int(r) for r in np.argsort(-sparse, kind="stable")[:pool] if sparse[r] > 0]
    cand = list(dict.fromkeys(dense_rows + sparse_rows))
    if mode == "dense":
        fused = {r: float(dense[r]) for r in cand}
    elif mode == "bm25":
        fused = {r: float(sparse[r]) for r in cand}
    elif fusion == "rrf":
        fused = dict.fromkeys(cand, 0.0)
        for ranked in (dense_rows, sparse_rows):
            for rank, row in enumerate(ranked, 1):
                fused[row] += 1.0 / (rrf_k + rank)
    else:
        top = max((float(sparse[r]) for r in cand), default=0.0) or 1.0
        fused = {r: w * float(dense[r]) + (1 - w) * float(sparse[r]) / top for r in cand}
    return sorted(cand, key=lambda r: (-fused[r], r))[:depth]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beir", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    print_facts(f"fusion tuning on {args.beir.name} {args.split}")
    from qa.retrieve.hybrid import Retriever

    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    data = load_beir(args.beir, args.split)
    documents, id_map = beir_documents(data.corpus)
    index, _ = cached_index(args.beir.resolve().name, documents, settings, embedder,
                            print_reporter)
    qids = [q for q in data.qrels if q in data.queries]
    texts = [data.queries[q] for q in qids]
    depth = depth_for(index)
    pool = max(settings.candidates, depth)
    n = len(index.chunks)
    doc_of = [c.doc_id for c in index.chunks]
    print(f"{len(qids)} judged queries, depth {depth} chunks per query", flush=True)
    qvecs = embedder.encode(texts, batch_size=64)
    dense = qvecs @ index.vectors.T  # cosine of every query with every chunk

    def run(bm25, mode: str, **kw) -> dict[str, float]:
        out = {}
        for i, q in enumerate(qids):
            sparse = bm25_scores(bm25, texts[i], n)
            rows = fuse(dense[i], sparse, mode, pool, depth, **kw)
            out[q] = collapse_rows(rows)
        return score_run(out, data.qrels)

    def collapse_rows(rows: list[int]) -> list[str]:
        ranked = list(dict.fromkeys(doc_of[r] for r in rows))
        return [b for d in ranked for b in id_map[d]][:100]

    # Check the replay against the real Retriever on a few queries.
    retriever = Retriever(index, embedder, settings)
    for i in range(5):
        real = collapse(retriever.search(texts[i], depth, mode="hybrid"), id_map)[:100]
        sparse = bm25_scores(index.bm25, texts[i], n)
        replay = collapse_rows(fuse(dense[i], sparse, "hybrid", pool, depth, settings.fusion,
                                    settings.rrf_k, settings.dense_weight))
        assert real[:20] == replay[:20], f"replay differs from Retriever on query {qids[i]}"
    print("replay matches Retriever.search on 5 queries", flush=True)

    print(f"dense: {run(index.bm25, 'dense')}", flush=True)
    chunk_texts = [c.text for c in index.chunks]
    variants = {}
    for k1 in (0.9, 1.2, 1.5):
        for b in (0.5, 0.75, 0.9):
            bm25 = index.bm25 if (k1, b) == (BM25_PARAMS["k1"], BM25_PARAMS["b"]) else \
                bm25_variant(chunk_texts, k1, b)
            variants[(k1, b)] = (run(bm25, "bm25"), bm25)
            print(f"bm25 k1={k1} b={b}: {variants[(k1, b)][0]}", flush=True)
    best = max(variants, key=lambda kb: variants[kb][0]["ndcg@10"])
    for kb in dict.fromkeys([(BM25_PARAMS["k1"], BM25_PARAMS["b"]), best]):
        bm25 = variants[kb][1]
        rows = [(run(bm25, "hybrid", fusion="rrf", rrf_k=k), f"rrf k={k}")
                for k in (5, 10, 20, 30, 40, 60, 100)]
        rows += [(run(bm25, "hybrid", fusion="weighted", w=w), f"weighted w={w}")
                 for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)]
        print(f"\nhybrid with bm25 k1={kb[0]} b={kb[1]}, best first:")
        for scores, name in sorted(rows, key=lambda r: -r[0]["ndcg@10"]):
            print(f"  {name:<16} {scores}", flush=True)

    # The pipeline keeps `candidates` chunks per list; rank only that many (depth = pool).
    print("\ncandidate pool (depth = pool chunks; nDCG@10 and MRR@10 over what it returns):")
    for fusion, kw in (("rrf", {"rrf_k": settings.rrf_k}), ("weighted", {"w": 0.7})):
        for c in (10, 20, 30, 50, 100, 200):
            out = {}
            for i, q in enumerate(qids):
                sparse = bm25_scores(index.bm25, texts[i], n)
                out[q] = collapse_rows(fuse(dense[i], sparse, "hybrid", c, c, fusion, **kw))
            scores = score_run(out, data.qrels)
            print(f"  {fusion} {kw} candidates={c:<4} ndcg@10 {scores['ndcg@10']}  "
                  f"mrr@10 {scores['mrr@10']}", flush=True)


if __name__ == "__main__":
    main()
