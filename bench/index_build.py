"""Index build throughput (chunks/s) and peak RSS on a BEIR corpus (default: SciFact).

Run: python bench/index_build.py [--beir ../shared/data/scifact] [--engine local|ray]
`--engine ray` starts a local Ray cluster on this machine's cores (object store 500 MB) and
builds through Ray Data as `qa index build --engine ray` does; the cluster's start-up is
reported apart from the build.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, peak_rss_mib, print_facts

from qa.config import Settings
from qa.eval.beir import beir_documents, load_beir
from qa.index.embedding import Embedder
from qa.index.engine import Engine, LocalEngine
from qa.index.store import build_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beir", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    args = parser.parse_args()
    print_facts(f"index build throughput ({args.engine} engine)")
    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    started = time.perf_counter()
    embedder.encode(["warm up"])
    load_s = time.perf_counter() - started
    engine: Engine = LocalEngine()
    if args.engine == "ray":
        from qa.index.ray_engine import RayEngine

        started = time.perf_counter()
        engine = RayEngine(settings)
        print(f"{'ray':>12}: local cluster of {engine.actors} CPUs started in "
              f"{time.perf_counter() - started:.1f} s (not counted below)")
    documents, _ = beir_documents(load_beir(args.beir, "test").corpus)
    marks: dict[str, float] = {}

    def report(what: str, done: int, total: int) -> None:
        marks.setdefault("first_batch", time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = build_index([], Path(tmp) / "index", settings, embedder, report,
                             documents=documents, engine=engine)
        total_s = time.perf_counter() - started
    chunks = len(result.index.chunks)
    chars = sum(len(d.text) for d in documents)
    print(f"{'corpus':>12}: {args.beir} ({len(documents)} documents, {chars} characters)")
    print(f"{'settings':>12}: chunk_tokens {settings.chunk_tokens}, overlap "
          f"{settings.chunk_overlap_tokens}, threads {settings.threads}")
    print(f"{'model load':>12}: {load_s:.1f} s (not counted below)")
    print(f"{'chunks':>12}: {chunks} ({chunks / len(documents):.2f} per document)")
    print(f"{'chunking':>12}: {marks.get('first_batch', started) - started:.1f} s "
          "(until the first embedded batch)")
    print(f"{'total':>12}: {total_s:.1f} s -> {chunks / total_s:.1f} chunks/s, "
          f"{len(documents) / total_s:.1f} documents/s")
    print(f"{'peak RSS':>12}: {peak_rss_mib():.0f} MiB (whole process)")


if __name__ == "__main__":
    main()
