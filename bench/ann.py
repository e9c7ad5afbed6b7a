"""Exact FAISS (IndexFlatIP) vs approximate (IVF-Flat, HNSW) on synthetic clustered vectors.

Run: python bench/ann.py [--n 1000000] [--hnsw-n 200000] [--queries 200] [--kinds ivf,hnsw,qa]
     python bench/ann.py --exact-sizes 200000,300000,400000   # exact search only, by size
The `qa` kind is the dense index `qa index build` writes for n vectors (qa.index.dense, with
the default settings): its type, parameters, recall and latency.
Vectors are unit-length mixtures of Gaussians around random cluster centres (like sentence
embeddings, which cluster by topic); queries are fresh draws from the same clusters.
Each index is built, measured and freed in turn so peak memory stays near 2 copies of the data.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from common import pct, peak_rss_mib, print_facts

from qa.config import Settings
from qa.index.dense import build_dense


def clustered(n: int, d: int, centres: np.ndarray, rng: np.random.Generator,
              spread: float = 1.5, batch: int = 100_000):
    """Yield float32 unit vectors in batches: centre + Gaussian noise of norm ~spread."""
    for start in range(0, n, batch):
        m = min(batch, n - start)
        # Pick a centre per row, add isotropic noise, project back to the unit sphere.
        x = centres[rng.integers(0, len(centres), m)]
        x += rng.standard_normal((m, d), dtype=np.float32) * np.float32(spread / np.sqrt(d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x


def timed_search(index: faiss.Index, xq: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Search one query at a time on one thread (as a server does); ids and per-query ms."""
    ids, times = [], []
    build_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # OpenMP on one query only adds sync cost on 2 busy cores
    for q in xq:
        started = time.perf_counter()
        _, i = index.search(q[None, :], k)
        times.append((time.perf_counter() - started) * 1000)
        ids.append(i[0])
    faiss.omp_set_num_threads(build_threads)
    return np.array(ids), times


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k."""
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact,
                                                                        strict=True)]))


def line(name: str, build_s: float, times: list[float], rec: float | None) -> None:
    shown = "  exact" if rec is None else f"  recall@10 {rec:.3f}"
    print(f"{name:<28} build {build_s:7.1f} s  p50 {pct(times, 50):7.2f} ms  "
          f"p95 {pct(times, 95):7.2f} ms{shown}  (peak RSS {peak_rss_mib():.0f} MiB)")


def measure(n: int, d: int, nq: int, kinds: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(100, n // 500), d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    xq = next(clustered(nq, d, centres, rng))
    print(f"\n-- {n:,} x {d} vectors, {len(centres)} clusters, {nq} queries, k=10")
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    for x in clustered(n, d, centres, rng):
        flat.add(x)
    exact, times = timed_search(flat, xq, 10)
    line("IndexFlatIP (exact)", time.perf_counter() - started, times, None)
    # A zero-copy view of the vectors stored in the flat index, to feed the other indexes.
    xb = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
    if "ivf" in kinds:
        nlist = 1024 if n >= 500_000 else 256
        started = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(xb[rng.choice(n, min(n, 64 * nlist), replace=False)])
        for s in range(0, n, 100_000):
            ivf.add(xb[s:s + 100_000])
        build = time.perf_counter() - started
        for nprobe in (8, 16, 32, 64, 128):
            ivf.nprobe = nprobe
            ids, times = timed_search(ivf, xq, 10)
            line(f"IVF{nlist},Flat nprobe={nprobe}", build, times, recall(ids, exact))
        del ivf
    if "hnsw" in kinds:
        started = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        for s in range(0, n, 100_000):
            hnsw.add(xb[s:s + 100_000])
        build = time.perf_counter() - started
        for ef in (16, 32, 64, 128, 256):
            hnsw.hnsw.efSearch = ef
            ids, times = timed_search(hnsw, xq, 10)
            line(f"HNSW32 efSearch={ef}", build, times, recall(ids, exact))
        del hnsw
    if "qa" in kinds:
        started = time.perf_counter()
        built, record = build_dense(xb, Settings())
        build = time.perf_counter() - started
        ids, times = timed_search(built, xq, 10)
        params = ", ".join(f"{k} {v}" for k, v in record.items() if k != "type")
        line(f"qa build: {record['type']}", build, times, recall(ids, exact))
        print(f"{'':<28} ({params or 'exact'})")
        del built
    del xb, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors for exact vs IVF")
    parser.add_argument("--hnsw-n", type=int, default=200_000, help="vectors for HNSW (0: skip)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="threads for building")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="ivf,hnsw,qa",
                        help="approximate indexes to measure: ivf, hnsw, qa (what qa builds)")
    parser.add_argument("--exact-sizes", default="",
                        help="comma-separated sizes: measure exact search only, at each")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    print_facts("exact vs approximate FAISS")
    print(f"{'faiss':>12}: {faiss.__version__}, {args.threads} threads to build, 1 to search")
    if args.exact_sizes:
        for n in (int(size) for size in args.exact_sizes.split(",")):
            measure(n, args.dim, args.queries, [], args.seed)
        return
    kinds = args.kinds.split(",")
    if args.hnsw_n == args.n:
        measure(args.n, args.dim, args.queries, kinds, args.seed)
        return
    measure(args.n, args.dim, args.queries, [k for k in kinds if k != "hnsw"], args.seed)
    if args.hnsw_n:
        measure(args.hnsw_n, args.dim, args.queries, kinds, args.seed)


if __name__ == "__main__":
    main()
